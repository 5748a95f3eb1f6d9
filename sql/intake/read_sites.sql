-- A buyer's JSON Lines file as one row per site, read by DuckDB's JSON reader with the format's
-- types declared (getvariable('intake_columns'): the questionnaire from rules/saq_fields.csv). The
-- native intake of `radar score` (radar_pipeline/sites/intake/native.py) reads a file this way only
-- while msgspec checks every line's keys and JSON types: this reader alone would turn "12" into a
-- number and drop an unknown key. It refuses a repeated key and a malformed line.
-- The rows keep the file's order (insertion order is preserved), so the table native.py makes of
-- them numbers each site's line by its rowid (a row_number() window here would read the file on one
-- thread). The reader skips blank lines: a file with any is left to the line-exact reader.
select
    site_id,
    site_name,
    country,
    isic,
    saq,
    controls,
    audits
from read_json(
    getvariable('intake_file'),
    format = 'newline_delimited',
    records = true,
    columns = getvariable('intake_columns')
)
