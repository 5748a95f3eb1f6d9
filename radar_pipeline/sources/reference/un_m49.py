"""UN M49 country/area reference (UNSD "Standard country or area codes" overview export).

`UNSD_Methodology.csv`: semicolon separated, UTF-8 with BOM, header
`Global Code;Global Name;Region Code;Region Name;Sub-region Code;Sub-region Name;
Intermediate Region Code;Intermediate Region Name;Country or Area;M49 Code;
ISO-alpha2 Code;ISO-alpha3 Code;Least Developed Countries (LDC);
Land Locked Developing Countries (LLDC);Small Island Developing States (SIDS)`;
codes are zero-padded strings, the three group columns hold "x" or nothing.

The country universe (METHODOLOGY §1) = areas with an M49 region and an ISO3
code: Antarctica (no region) and Sark (no ISO3) are left out; plus the
economies of rules/universe_additions.csv (Taiwan, Kosovo), which M49 does not
list on their own but publishers rate and supply chains run through. They get
the sub-region/region the rule file names (so they are gap-filled from it) and
no M49 code; if a later M49 file lists one of them, the file's row wins.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from radar_pipeline.platform.settings import rules_dir
from radar_pipeline.sources.toolkit import LandedFile, SourceError
from radar_pipeline.sources.toolkit.tables import LINE, read_csv_text, with_columns_named

if TYPE_CHECKING:
    import pandera.polars as pa

SOURCE = "un_m49"
FILE_PATTERNS = ("UNSD_Methodology*.csv",)

_COLUMNS = {
    "ISO-alpha3 Code": "iso3",
    "ISO-alpha2 Code": "iso2",
    "M49 Code": "m49",
    "Country or Area": "name",
    "Region Name": "region",
    "Sub-region Name": "subregion",
    "Intermediate Region Name": "intermediate_region",
}
_FLAGS = {
    "Least Developed Countries (LDC)": "ldc",
    "Land Locked Developing Countries (LLDC)": "lldc",
    "Small Island Developing States (SIDS)": "sids",
}

@functools.cache
def country_schema() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa

    return pa.DataFrameSchema(
        {
            "iso3": pa.Column(pl.String, pa.Check.str_matches(r"^[A-Z]{3}$"), unique=True, nullable=False),
            # Namibia's ISO2 is "NA": read as text, never as a missing-value token.
            "iso2": pa.Column(pl.String, pa.Check.str_matches(r"^[A-Z]{2}$"), nullable=True),
            "m49": pa.Column(pl.String, pa.Check.str_matches(r"^\d{3}$"), unique=True, nullable=False),
            "name": pa.Column(pl.String, nullable=False),
            "region": pa.Column(pl.String, nullable=False),
            "subregion": pa.Column(pl.String, nullable=True),
            "intermediate_region": pa.Column(pl.String, nullable=True),
            "ldc": pa.Column(pl.Boolean, nullable=False),
            "lldc": pa.Column(pl.Boolean, nullable=False),
            "sids": pa.Column(pl.Boolean, nullable=False),
        },
        strict=True, ordered=True,
    )


def read_m49_file(path: Path) -> pl.DataFrame:
    """Every row of the export as text (empty -> null), publisher's column names, plus `__line`."""
    file = LandedFile(SOURCE, path.parent.name, Path(path))
    try:
        text = file.path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(SOURCE, f"not UTF-8 text at byte {exc.start}", file=file.name) from exc
    df = read_csv_text(file, text, separator=";")
    df = with_columns_named(file, df, [*_COLUMNS, *_FLAGS])
    return df


def parse_countries(path: Path) -> pl.DataFrame:
    """iso3, iso2, m49, name, region, subregion, intermediate_region, ldc, lldc, sids —
    one row per ISO3 country/area that has an M49 region."""
    raw = read_m49_file(Path(path))
    df = raw.select(
        *[pl.col(src).str.strip_chars().replace("", None).alias(dst) for src, dst in _COLUMNS.items()],
        *[(pl.col(src).str.strip_chars().str.to_lowercase().fill_null("") == "x").alias(dst)
          for src, dst in _FLAGS.items()],
        pl.col(LINE),
    ).filter(pl.col("region").is_not_null() & pl.col("iso3").is_not_null())
    dup = (df.with_columns(pl.col(LINE).min().over("iso3").alias("__first"))
             .filter(pl.col(LINE) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"ISO3 {dup['iso3'].item()!r} appears twice (first on line "
                          f"{dup['__first'].item()})", file=Path(path).name,
                          row=f"line {dup[LINE].item()}", field="ISO-alpha3 Code")
    df = df.drop(LINE).sort("iso3")
    import pandera.polars as pa

    try:
        return country_schema().validate(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise SourceError(SOURCE, f"M49 table fails validation: {exc}", file=Path(path).name) from exc


def universe_additions(m49: pl.DataFrame, path: Path | None = None) -> pl.DataFrame:
    """Rows of rules/universe_additions.csv not already in the M49 table, in its columns.

    A region/sub-region the M49 file does not know is an error: the addition
    would otherwise form a gap-fill group of its own."""
    path = path or rules_dir() / "universe_additions.csv"
    add = pl.read_csv(path, infer_schema=False).with_columns(pl.all().str.strip_chars().replace("", None))
    bad = add.join(m49.select("region").unique(), on="region", how="anti")
    if bad.height:
        raise SourceError(SOURCE, f"{path.name}: region {bad['region'][0]!r} of {bad['iso3'][0]} is not an "
                          "M49 region of the M49 file", file=path.name, field="region")
    add = add.filter(~pl.col("iso3").is_in(m49["iso3"].implode()))
    return add.select(
        "iso3", "iso2", pl.lit(None, pl.String).alias("m49"), "name", "region", "subregion",
        "intermediate_region", *[pl.lit(False).alias(c) for c in _FLAGS.values()])


def parse_universe(path: Path) -> pl.DataFrame:
    """The country universe of METHODOLOGY §1: M49 areas with a region + the universe additions."""
    m49 = parse_countries(path)
    return pl.concat([m49, universe_additions(m49)], how="vertical_relaxed").sort("iso3")


def summary(files: list[LandedFile]) -> str:
    """`radar sources check`'s line for a vintage folder (ListsSummary)."""
    return f"{len(set(parse_universe(files[-1].path)['iso3']))} countries/areas"
