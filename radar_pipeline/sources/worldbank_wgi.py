"""World Bank Worldwide Governance Indicators (WGI) bulk CSV.

`WGIData_*.csv`: no preamble, header
`Country Name,Country Code,Indicator Name,Indicator Code,1996,1998,2000,2002,...`
(one column per year, trailing empty column), one record per country x series
(`RL.EST`, `RL.STD.ERR`, ... for CC/GE/PV/RQ/RL/VA). Some `Indicator Name`
values hold a line break inside quotes; row_ref still gives the editor line.
The registry picks the series (e.g. RL.EST for the rule-of-law proxy).
WGI lists economies only (no aggregates).
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources._csv_text import LINE, decode_text, spec_table
from radar_pipeline.sources.base import (IndicatorSpec, LandedFile, check_content, conform,
                                         empty_observations)
from radar_pipeline.sources.worldbank_wdi import read_wide_csv

SOURCE = "worldbank_wgi"
# Bulk CSV from the WGI download, or API v2 pages (source=3) in live mode.
FILE_PATTERNS = ("WGIData*.csv", "*.json")


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not files or not specs:
        return empty_observations()
    spec_df = spec_table(specs)
    frames = []
    json_files = [f for f in files if f.name.endswith(".json")]
    if json_files:
        # Same page format as WDI (live mode downloads WGI through the API v2).
        from radar_pipeline.sources import worldbank_wdi
        frames.append(worldbank_wdi.parse(json_files, specs).with_columns(source=pl.lit(SOURCE)))
    for f in (f for f in files if not f.name.endswith(".json")):
        rows = read_wide_csv(f, decode_text(f, check_content(f, "csv")))
        frames.append(rows.join(spec_df, on="series", how="inner").select(
            pl.lit(SOURCE).alias("source"), "indicator_id", pl.lit(f.vintage).alias("vintage"),
            pl.lit(f.name).alias("file"), pl.format("line {}", pl.col(LINE)).alias("row_ref"),
            "country", "code", "data_year", "value"))
    return conform(pl.concat(frames))
