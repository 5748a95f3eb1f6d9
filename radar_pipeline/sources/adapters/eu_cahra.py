"""EU indicative list of Conflict-Affected and High-Risk Areas (METHODOLOGY §4).

File: `cahra.json` — `{meta: {...}, entries: [{countryName, iso2, iso3,
wholeCountry: bool, regions: null | [{name, code, conflictAffected, highRisk}]}]}`
(the RAND Europe / DG TRADE API payload reshaped one entry per country).

§4: a country with any listed area, whole or regional, counts for conflict
minerals, so every entry becomes one row; `whole_country` and `n_regions`
are kept for display only.
"""
from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.sources.toolkit import LandedFile, SourceError, check_content

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

SOURCE = "eu_cahra"
FILE_PATTERNS = ("*.json",)


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def cahra_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "iso3": pl.String,
        "country": pl.String,
        "whole_country": pl.Boolean,
        "n_regions": pl.Int32,
        "vintage": pl.String,
        "file": pl.String,
    }


__getattr__ = lazy_attributes(__name__, CAHRA_SCHEMA=cahra_schema)

@functools.cache
def cahra_check() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "iso3": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}$")),
            "country": pa.Column(str, nullable=True),
            "whole_country": pa.Column(bool),
            "n_regions": pa.Column(pl.Int32, pa.Check.ge(0)),
            "vintage": pa.Column(str),
            "file": pa.Column(str),
        },
        unique=["vintage", "iso3"],
        # a regional entry must name at least one region
        checks=[pa.Check(lambda d: d.lazyframe.select(pl.col("whole_country") | (pl.col("n_regions") > 0)),
                         name="listed_area_present")],
    )


def _parse_one(file: LandedFile) -> list[dict]:
    data = check_content(file, "json")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(SOURCE, f"not valid JSON: {exc}", file=file.name) from exc
    entries = doc.get("entries") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise SourceError(SOURCE, "no 'entries' list", file=file.name, field="entries")
    rows = []
    for i, e in enumerate(entries):
        ref = f"entries[{i}]"
        if not isinstance(e, dict):
            raise SourceError(SOURCE, "entry is not an object", file=file.name, row=ref)
        iso3 = (e.get("iso3") or "").strip().upper()
        if not iso3:
            raise SourceError(SOURCE, f"entry for {e.get('countryName')!r} has no iso3",
                              file=file.name, row=ref, field="iso3")
        regions = e.get("regions") or []
        if not isinstance(regions, list):
            raise SourceError(SOURCE, "regions is neither null nor a list", file=file.name, row=ref,
                              field="regions")
        rows.append({"iso3": iso3, "country": e.get("countryName"),
                     "whole_country": bool(e.get("wholeCountry")), "n_regions": len(regions),
                     "vintage": file.vintage, "file": file.name})
    return rows


def parse_cahra(files: list[LandedFile]) -> pl.DataFrame:
    """One row per (vintage, listed country)."""
    import polars as pl

    df = pl.DataFrame([r for f in files for r in _parse_one(f)], schema=cahra_schema())
    import pandera.polars as pa

    try:
        cahra_check().validate(df, lazy=True)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise SourceError(SOURCE, f"parsed CAHRA list fails validation: {exc}",
                          file=", ".join(sorted({f.name for f in files}))) from exc
    return df


def summary(files: list[LandedFile]) -> str:
    """`radar sources check`'s line for a vintage folder (ListsSummary)."""
    df = parse_cahra(files)
    return f"{df.height} countries listed ({int(df['whole_country'].sum())} whole-country)"
