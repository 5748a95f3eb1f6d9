"""ILOSTAT (International Labour Organization) — indicator downloads as CSV.

Read for `HOW_TEMP_SEX_ECO_NB` (mean weekly hours actually worked per employed
person, by sex and economic activity; topic working_hours), but nothing here
is specific to that indicator: the registry's `series` is the ILOSTAT
indicator code without its frequency suffix.

Two layouts, sniffed from the header (plain or gzip-compressed, any file name):

a. Bulk / rplumber CSV (`https://rplumber.ilo.org/data/indicator/?id=<ID>_A&type=code&format=.csv`,
   the bulk download facility's `<ID>_A.csv.gz`): lower-case header
   `ref_area,source,indicator,sex,classif1,time,obs_value,obs_status,note_classif,
   note_indicator,note_source` (some indicators add `classif2`). Codes:
   `ref_area` ISO3 (or `X..` aggregates), `source` like `BA:259` (survey type +
   id), `sex` `SEX_T/SEX_M/SEX_F`, `classif1` like `ECO_AGGREGATE_TOTAL`,
   `time` `2023`. `type=both` adds `<col>.label` columns (used for the
   country name and the source label); a label-only download (`type=label`)
   has no codes and is refused with a message saying so.
b. SDMX-CSV from the ILOSTAT SDMX API
   (`https://sdmx.ilo.org/rest/data/ILO,DF_<ID>/?format=csv`): upper-case header
   `DATAFLOW,REF_AREA,FREQ,MEASURE,SEX,<classification>,TIME_PERIOD,OBS_VALUE,
   OBS_STATUS,...,SOURCE,...` where the classification column is `CLASSIF1` or
   named after it (`ECO`), the indicator comes from `DATAFLOW`
   (`ILO:DF_<ID>(1.0)`) and `SOURCE` holds the source label.

Which rows count (one value per country and year):
- the indicator: `indicator` (minus `_A`/`_Q`/`_M`) or DATAFLOW's `DF_<ID>`
  equals the series; a file without either column must be named after it;
- total sex: `SEX_T` (no sex column: every row);
- total economy: `classif1` of the form `ECO_<version>_TOTAL`, preferring the
  `ECO_AGGREGATE_TOTAL` the issue names, then SECTOR, ISIC4, ISIC3, ISIC2
  (ILOSTAT repeats the total under each classification version);
- annual `time` (`2023`); a file with only quarterly/monthly periods is refused;
- aggregates (`ref_area` `X` + two digits, e.g. `X01` World) are dropped here —
  they are not countries and carry no ISO code to report against.
- Modelled vs national: a row is *modelled* when its source code starts with
  `XA:` (ILOSTAT's source type for "ILO - Modelled Estimates") or its source
  label contains "Modelled Estimates" (SDMX, `type=both`). A country that has
  modelled rows uses ONLY its modelled series (no mixing with national survey
  years, which would put a series break inside the edition window); a country
  without uses its national rows, preferring a labour force survey
  (code `BA:` or label `LFS - ...`) and then the lowest source code, so reruns
  pick the same series.
`row_ref` names the line and the source picked, e.g. `line 12, source BA:259`.
"""
from __future__ import annotations

import gzip
import re
import zlib

import polars as pl

from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    check_content,
    conform,
    empty_observations,
)
from radar_pipeline.sources.toolkit.tables import LINE, first_bad, parse_float, read_csv_text

SOURCE = "ilostat"
FILE_PATTERNS = ("*.csv", "*.csv.gz")

ECO_TOTAL_PREFERENCE = ["AGGREGATE", "SECTOR", "ISIC4", "ISIC3", "ISIC2"]
MODELLED_CODE_PREFIX = "XA:"
MODELLED_LABEL = "modelled estimates"
# SDMX-CSV column -> bulk column
_SDMX = {"time_period": "time", "structure_id": "dataflow", "eco": "classif1",
         "ref_area_label": "ref_area.label", "source_label": "source.label"}
_OUT = ["source", "indicator_id", "vintage", "file", "row_ref", "country", "code", "data_year", "value"]


def _text(file: LandedFile) -> str:
    raw = file.path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(SOURCE, f"gzip download is corrupt or truncated ({exc})",
                              file=file.name) from exc
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(SOURCE, f"not UTF-8 text at byte {exc.start} inside the gzip",
                              file=file.name) from exc
    return check_content(file, "csv").decode("utf-8-sig")


def _columns(file: LandedFile, df: pl.DataFrame) -> pl.DataFrame:
    names = {c: c.strip().lower() for c in df.columns if c != LINE}
    df = df.rename({c: _SDMX.get(n, n) for c, n in names.items()})
    if "classif1" not in df.columns:
        # SDMX names the classification after its dimension (ECO); take any column holding ECO_ codes.
        for c in df.columns:
            if c not in (LINE, "ref_area", "time", "obs_value") and df[c].dtype == pl.String and \
                    df[c].drop_nulls().head(50).str.starts_with("ECO_").any():
                df = df.rename({c: "classif1"})
                break
    if "ref_area" not in df.columns and "ref_area.label" in df.columns:
        raise SourceError(SOURCE, "this is a label-only download (type=label): codes are needed; "
                          "download with type=code or type=both", file=file.name, field="ref_area")
    missing = [c for c in ("ref_area", "time", "obs_value") if c not in df.columns]
    if missing:
        raise SourceError(SOURCE, f"missing column(s) {missing}: expected the ILOSTAT bulk CSV header "
                          "'ref_area,source,indicator,sex,classif1,time,obs_value,...' or the SDMX-CSV "
                          f"header 'DATAFLOW,REF_AREA,...,TIME_PERIOD,OBS_VALUE,...'; found "
                          f"{[c for c in df.columns if c != LINE]}", file=file.name, field=missing[0])
    return df


def _indicator_expr(file: LandedFile, df: pl.DataFrame) -> pl.Expr:
    if "indicator" in df.columns:
        return pl.col("indicator").str.strip_chars().str.replace(r"_[AQM]$", "")
    if "dataflow" in df.columns:
        return pl.col("dataflow").str.extract(r"DF_([A-Z0-9_]+)", 1).str.replace(r"_[AQM]$", "")
    stem = re.sub(r"(\.csv)?(\.gz)?$", "", file.name, flags=re.IGNORECASE)
    return pl.lit(re.sub(r"_[AQM]$", "", stem))


def _rows(file: LandedFile, specs: list[IndicatorSpec]) -> pl.DataFrame:
    df = _columns(file, read_csv_text(file, _text(file)))
    wanted = {s.series: s.indicator_id for s in specs}
    ind = _indicator_expr(file, df)
    df = df.with_columns(ind.alias("__series")).filter(pl.col("__series").is_in(list(wanted)))
    if df.height == 0:
        return pl.DataFrame()
    if "sex" in df.columns:
        df = df.filter(pl.col("sex").str.strip_chars() == "SEX_T")
    eco_rank = pl.lit(0)
    if "classif1" in df.columns:
        version = pl.col("classif1").str.strip_chars().str.extract(r"^ECO_([A-Z0-9]+)_TOTAL$", 1)
        df = df.filter(version.is_not_null())
        eco_rank = version.replace_strict(
            {v: i for i, v in enumerate(ECO_TOTAL_PREFERENCE)}, default=len(ECO_TOTAL_PREFERENCE),
            return_dtype=pl.Int32)
    time = pl.col("time").str.strip_chars()
    annual = time.str.contains(r"^\d{4}$")
    if df.height and not df.select(annual.any()).item():
        raise SourceError(SOURCE, f"no annual observations (time like '2023'); periods found e.g. "
                          f"{df['time'][0]!r} — download the annual series (<ID>_A)", file=file.name,
                          field="time")
    df = df.filter(annual & ~pl.col("ref_area").str.strip_chars().str.contains(r"^X\d{2}$"))
    code = pl.col("source").fill_null("") if "source" in df.columns else pl.lit("")
    label = pl.col("source.label").fill_null("") if "source.label" in df.columns else pl.lit("")
    modelled = (code.str.starts_with(MODELLED_CODE_PREFIX)
                | code.str.to_lowercase().str.contains(MODELLED_LABEL)
                | label.str.to_lowercase().str.contains(MODELLED_LABEL))
    df = df.with_columns(
        pl.col("ref_area").str.strip_chars().alias("code"),
        (pl.col("ref_area.label") if "ref_area.label" in df.columns else pl.lit(None, pl.String))
        .alias("country"),
        time.cast(pl.Int32).alias("data_year"),
        modelled.alias("__modelled"), eco_rank.alias("__eco"),
        pl.when(code.str.starts_with("BA:") | code.str.starts_with("LFS") | label.str.starts_with("LFS"))
        .then(0).otherwise(1).alias("__lfs"),
        pl.when(code != "").then(code).otherwise(label).alias("__source"),
    )
    first_bad(file, df, pl.col("code").fill_null("") == "", "ref_area", "ref_area", "ref_area is empty")
    df = parse_float(file, df, "obs_value", "value", "obs_value").filter(pl.col("value").is_not_null())
    # A country with a modelled series uses only that series (see module docstring).
    df = df.filter(pl.col("__modelled") | ~pl.col("__modelled").any().over("__series", "code"))
    picked = (df.sort(["__series", "code", "data_year", "__eco", "__lfs", "__source", LINE])
                .unique(["__series", "code", "data_year"], keep="first", maintain_order=True))
    return picked.select(
        pl.lit(SOURCE).alias("source"),
        pl.col("__series").replace_strict(wanted, return_dtype=pl.String).alias("indicator_id"),
        pl.lit(file.vintage).alias("vintage"), pl.lit(file.name).alias("file"),
        pl.format("line {}, source {}", pl.col(LINE), pl.col("__source")).alias("row_ref"),
        "country", "code", "data_year", "value")


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    if not files or not specs:
        return empty_observations()
    frames = [f for f in (_rows(f, specs) for f in files) if f.height]
    if not frames:
        return empty_observations()
    return conform(pl.concat([f.select(_OUT) for f in frames]))
