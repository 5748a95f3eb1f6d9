"""ILOSTAT adapter (HOW_TEMP_SEX_ECO_NB, working_hours) on SYNTHETIC files in the
publisher's two CSV layouts: the bulk/rplumber CSV (codes, optionally with labels,
optionally gzip) and the SDMX API's CSV. Values are made up."""
from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import ilostat
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, LandedFile, SourceError, specs_for

BULK_HEADER = ('"ref_area","source","indicator","sex","classif1","time","obs_value","obs_status",'
               '"note_classif","note_indicator","note_source"')
IND = "HOW_TEMP_SEX_ECO_NB_A"

# (ref_area, source, sex, classif1, time, value)
ROWS = [
    # AAA: national LFS only; the total appears under two classification versions
    ("AAA", "BA:101", "SEX_T", "ECO_SECTOR_TOTAL", "2022", "40.1"),
    ("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "40.2"),
    ("AAA", "BA:101", "SEX_M", "ECO_AGGREGATE_TOTAL", "2022", "43.0"),
    ("AAA", "BA:101", "SEX_F", "ECO_AGGREGATE_TOTAL", "2022", "37.0"),
    ("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_AGR", "2022", "50.0"),
    ("AAA", "BA:101", "SEX_T", "ECO_SECTOR_TOTAL", "2023", "40.5"),   # only SECTOR total this year
    ("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_TOTAL", "2021", ""),     # missing value
    # BBB: a national survey AND the ILO modelled series: only the modelled series is used
    ("BBB", "BX:555", "SEX_T", "ECO_AGGREGATE_TOTAL", "2021", "47.0"),
    ("BBB", "BX:555", "SEX_T", "ECO_AGGREGATE_TOTAL", "2023", "47.9"),   # national-only year: dropped
    ("BBB", "XA:2198", "SEX_T", "ECO_AGGREGATE_TOTAL", "2021", "45.5"),
    ("BBB", "XA:2198", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "45.7"),
    # CCC: two national sources for one year: the labour force survey (BA) wins
    ("CCC", "HS:900", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "39.0"),
    ("CCC", "BA:300", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "38.5"),
    # X01 = World aggregate: not a country
    ("X01", "XA:2198", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "43.1"),
]
EXPECTED = {("AAA", 2022, 40.2), ("AAA", 2023, 40.5), ("BBB", 2021, 45.5), ("BBB", 2022, 45.7),
            ("CCC", 2022, 38.5)}
LABELS = {"AAA": "Aland Test", "BBB": "Bravo, Rep. of", "CCC": "Charlie", "X01": "World"}
SOURCE_LABELS = {"BA": "LFS - Labour Force Survey", "BX": "HS - Household survey",
                 "HS": "HIES - Income and expenditure survey", "XA": "ILO - Modelled Estimates"}


def q(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def bulk_text(rows=ROWS, indicator=IND) -> str:
    lines = [BULK_HEADER]
    for area, src, sex, eco, time, value in rows:
        # ILOSTAT quotes the text fields and writes obs_value as a bare number
        lines.append(",".join([q(area), q(src), q(indicator), q(sex), q(eco), q(time)]) + f",{value},,,,")
    return "\n".join(lines) + "\n"


def both_text() -> str:
    head = ('"ref_area","ref_area.label","source","source.label","indicator","sex","classif1","time",'
            '"obs_value","obs_status"')
    lines = [head]
    for area, src, sex, eco, time, value in ROWS:
        lines.append(",".join([q(area), q(LABELS[area]), q(src), q(SOURCE_LABELS[src[:2]]), q(IND), q(sex),
                               q(eco), q(time), value, q("")]))
    return "\n".join(lines) + "\n"


def sdmx_text() -> str:
    head = ("DATAFLOW,REF_AREA,FREQ,MEASURE,SEX,ECO,TIME_PERIOD,OBS_VALUE,OBS_STATUS,UNIT_MEASURE_TYPE,"
            "UNIT_MEASURE,UNIT_MULT,SOURCE,NOTE_SOURCE,NOTE_INDICATOR,NOTE_CLASSIF,DECIMALS")
    lines = [head]
    for area, src, sex, eco, time, value in ROWS:
        label = SOURCE_LABELS[src[:2]]
        lines.append(",".join(["ILO:DF_HOW_TEMP_SEX_ECO_NB(1.0)", area, "A", "HOW_TEMP_NB", sex, eco, time, value,
                               "", "NB", "HR", "0", q(label), "", "", "", "1"]))
    return "\n".join(lines) + "\n"


def files(tmp_path: Path, name: str, data: bytes | str, vintage: str = "2024") -> list[LandedFile]:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return [LandedFile("ilostat", vintage, path)]


def parse(fs):
    return ilostat.parse(fs, specs_for("ilostat", "2024"))


def triples(df: pl.DataFrame) -> set:
    return set(df.select("code", "data_year", "value").iter_rows())


def test_registry_row_points_at_the_series():
    (spec,) = specs_for("ilostat", "2024")
    assert (spec.indicator_id, spec.topic, spec.series, spec.higher_is_riskier) == \
        ("ilo_weekly_hours", "working_hours", "HOW_TEMP_SEX_ECO_NB", True)


def test_bulk_csv_total_sex_total_economy_modelled_preferred(tmp_path):
    df = parse(files(tmp_path, f"{IND}.csv", bulk_text()))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert triples(df) == EXPECTED
    assert set(df["indicator_id"]) == {"ilo_weekly_hours"}
    refs = {(c, y): r for c, y, r in df.select("code", "data_year", "row_ref").iter_rows()}
    assert refs["AAA", 2022] == "line 3, source BA:101"      # the ECO_AGGREGATE_TOTAL line
    assert refs["BBB", 2022] == "line 12, source XA:2198"
    assert refs["CCC", 2022] == "line 14, source BA:300"


def test_gzip_bulk_download_gives_the_same_rows(tmp_path):
    plain = parse(files(tmp_path, "a.csv", bulk_text()))
    gz = parse(files(tmp_path, f"{IND}.csv.gz", gzip.compress(bulk_text().encode())))
    assert triples(gz) == triples(plain) == EXPECTED


def test_sdmx_csv_gives_the_same_rows(tmp_path):
    df = parse(files(tmp_path, "ilo_sdmx.csv", sdmx_text()))
    assert triples(df) == EXPECTED
    # modelled recognised from the SDMX source label
    assert df.filter(pl.col("code") == "BBB")["row_ref"].str.ends_with("ILO - Modelled Estimates").all()


def test_type_both_carries_country_names(tmp_path):
    df = parse(files(tmp_path, "both.csv", both_text()))
    assert triples(df) == EXPECTED
    assert dict(df.select("code", "country").unique().iter_rows()) == {
        "AAA": "Aland Test", "BBB": "Bravo, Rep. of", "CCC": "Charlie"}


def test_other_indicators_in_the_file_are_ignored(tmp_path):
    other = bulk_text([("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "99")],
                      indicator="EMP_TEMP_SEX_ECO_NB_A").split("\n", 1)[1]
    df = parse(files(tmp_path, "mixed.csv", bulk_text() + other))
    assert triples(df) == EXPECTED


def test_file_without_indicator_column_must_be_named_after_it(tmp_path):
    text = "ref_area,sex,classif1,time,obs_value\nAAA,SEX_T,ECO_AGGREGATE_TOTAL,2022,40\n"
    assert triples(parse(files(tmp_path, f"{IND}.csv", text))) == {("AAA", 2022, 40.0)}
    assert parse(files(tmp_path, "EMP_TEMP_SEX_AGE_NB_A.csv", text)).height == 0


def test_label_only_download_is_refused(tmp_path):
    text = '"ref_area.label","sex.label","time","obs_value"\n"Aland","Sex: Total","2022",40\n'
    with pytest.raises(SourceError, match="label-only") as exc:
        parse(files(tmp_path, "labels.csv", text))
    assert exc.value.file == "labels.csv"


def test_quarterly_file_is_refused(tmp_path):
    rows = [("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022Q1", "40")]
    with pytest.raises(SourceError, match=r"no annual observations.*2022Q1"):
        parse(files(tmp_path, "q.csv", bulk_text(rows, indicator="HOW_TEMP_SEX_ECO_NB_Q")))


def test_bad_value_names_line_and_field(tmp_path):
    rows = ROWS[:1] + [("AAA", "BA:101", "SEX_T", "ECO_AGGREGATE_TOTAL", "2022", "forty")]
    with pytest.raises(SourceError, match="'forty'") as exc:
        parse(files(tmp_path, "bad.csv", bulk_text(rows)))
    assert (exc.value.row, exc.value.field) == ("line 3", "obs_value")


def test_wrong_header_names_expected_layouts(tmp_path):
    with pytest.raises(SourceError, match=r"missing column\(s\) \['ref_area'.*SDMX") as exc:
        parse(files(tmp_path, "x.csv", "country,year,hours\nAland,2022,40\n"))
    assert exc.value.field == "ref_area"


@pytest.mark.parametrize("data,needle", [(b"<!DOCTYPE html><html>503</html>", "HTML"), (b"", "empty"),
                                         ("ref_area,time,obs_value\n".encode("utf-16"), "UTF-8"),
                                         (gzip.compress(BULK_HEADER.encode())[:20], "gzip")])
def test_error_pages_and_broken_downloads(tmp_path, data, needle):
    with pytest.raises(SourceError, match=needle) as exc:
        parse(files(tmp_path, f"{IND}.csv", data))
    assert exc.value.source == "ilostat" and exc.value.file == f"{IND}.csv"


def test_sample_mirror_file_through_the_registry(tmp_path):
    sample = settings.SAMPLE_MIRROR_DIR
    universe = set(un_m49.parse_countries(next((sample / "un_m49").glob("*/*.csv")))["iso3"])
    load = registry.load_source("ilostat", 2024, universe, mirror=sample, landing=tmp_path,
                                user_dir=tmp_path, log=lambda m: None)
    obs = load.observations
    assert obs.height and set(obs["indicator_id"]) == {"ilo_weekly_hours"}
    assert obs["value"].is_between(30, 60).all()
    # the sample's ILO aggregate rows never reach the resolver; nothing is left out
    assert load.notes.height == 0
    assert obs.select("iso3", "data_year").is_duplicated().sum() == 0
