"""Country names and codes from publisher files → ISO3, in one place.

Codes (ISO3 / World Bank codes) are taken as they are; names go through
`country_converter`, with the small `rules/country_overrides.csv` consulted
first for the few values the library cannot map. The universe is the UN M49
list plus Taiwan and Kosovo (METHODOLOGY §1): rows whose country maps but lies
outside it (Channel Islands, regional aggregates with codes) are dropped and
reported as notes, never silently. A *name* that maps to nothing is an error naming the
source, file, row and value — a renamed country must not vanish.
"""
from __future__ import annotations

import csv
import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.settings import rules_dir
from radar_pipeline.sources.toolkit import SourceError

if TYPE_CHECKING:
    import polars as pl


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@lru_cache(maxsize=1)
def note_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"source": pl.String, "vintage": pl.String, "file": pl.String, "row_ref": pl.String,
            "country": pl.String, "code": pl.String, "reason": pl.String}


__getattr__ = lazy_attributes(__name__, NOTE_SCHEMA=note_schema)


@lru_cache(maxsize=1)
def converter():
    """One shared country_converter instance (building it costs ~0.4 s)."""
    # country_converter logs a warning per unmatched name; we report them ourselves.
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    import country_converter as coco

    return coco.CountryConverter()


@lru_cache(maxsize=1)
def load_overrides(path: Path | None = None) -> pl.DataFrame:
    import polars as pl

    with open(path or rules_dir() / "country_overrides.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return pl.DataFrame(rows, schema={"source": pl.String, "value": pl.String, "iso3": pl.String,
                                      "action": pl.String, "reason": pl.String})


# name -> ISO3 (or None) as country_converter mapped it in this process. country_converter
# matches each name against its regexes on its own (~0.5 ms a name): a refresh resolves the same
# few hundred names in ~20 files, and every name is asked of the library once.
_NAMES: dict[str, str | None] = {}


def names_to_iso3(names: list[str]) -> dict[str, str | None]:
    """Map distinct names with country_converter; None where it finds nothing."""
    if not names:
        return {}
    with _NAMES_LOCK:  # a refresh's steps and its prefetch thread (sources/prefetch.py) both map names
        return _names_to_iso3(names)


_NAMES_LOCK = threading.Lock()


def _names_to_iso3(names: list[str]) -> dict[str, str | None]:
    new = list(dict.fromkeys(n for n in names if n not in _NAMES))
    if new:
        result = converter().convert(names=new, to="ISO3", not_found=None)
        if isinstance(result, str):
            result = [result]
        # When nothing matches, country_converter may hand the input back; a
        # 3-letter name echoed back is not a mapping.
        _NAMES.update({n: (r if isinstance(r, str) and len(r) == 3 and r != n else None)
                       for n, r in zip(new, result)})
    return {n: _NAMES[n] for n in names}


def resolve(raw: pl.DataFrame, universe: set[str], source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add `iso3` to parsed observations; return (rows in universe, notes for dropped rows).

    Raises SourceError listing every name that does not map to a country.
    """
    import polars as pl

    overrides = load_overrides().filter(pl.col("source").is_in(["*", source]))
    ov_map = overrides.filter(pl.col("action") == "map").select("value", ov_iso3="iso3")
    ov_drop = overrides.filter(pl.col("action") == "drop").select("value", drop_reason="reason")

    df = raw.with_columns(
        _key=pl.coalesce(pl.col("code").str.strip_chars().str.to_uppercase(),
                         pl.col("country").str.strip_chars()),
    ).join(ov_map, left_on="_key", right_on="value", how="left") \
     .join(ov_drop, left_on="_key", right_on="value", how="left")

    by_code = pl.col("code").is_not_null() & pl.col("code").str.contains(r"^[A-Za-z]{3}$")
    names = (df.filter(~by_code & pl.col("ov_iso3").is_null() & pl.col("drop_reason").is_null())
               .get_column("_key").unique().drop_nulls().to_list())
    mapped = names_to_iso3(sorted(names))
    name_map = pl.DataFrame({"_key": list(mapped), "_coco": list(mapped.values())},
                            schema={"_key": pl.String, "_coco": pl.String})
    df = df.join(name_map, on="_key", how="left").with_columns(
        iso3=pl.when(pl.col("drop_reason").is_not_null()).then(None)
               .when(pl.col("ov_iso3").is_not_null()).then(pl.col("ov_iso3"))
               .when(by_code).then(pl.col("code").str.to_uppercase())
               .otherwise(pl.col("_coco")))

    unmapped = df.filter(pl.col("iso3").is_null() & pl.col("drop_reason").is_null())
    if unmapped.height:
        first = unmapped.group_by("_key", maintain_order=True).agg(pl.first("file"), pl.first("row_ref"))
        listing = "; ".join(f"'{r['_key']}' ({r['file']}, {r['row_ref']})"
                            for r in first.head(20).iter_rows(named=True))
        raise SourceError(source, f"{first.height} country name(s) do not map to ISO3: {listing}. "
                          "Add them to rules/country_overrides.csv (action map or drop) if they are legitimate",
                          field="country")

    # Two different source entities landing on one country (e.g. "India" and
    # "Indian Kashmir" both -> IND) would make the kept value arbitrary. Checked
    # per file: across vintages a publisher may rename or recode the same economy
    # (WGI's ADO in 2024 is AND in 2023), which is not a clash.
    clash = (df.filter(pl.col("iso3").is_not_null())
               .group_by("iso3", "vintage", "file").agg(pl.col("_key").unique().sort())
               .filter(pl.col("_key").list.len() > 1))
    if clash.height:
        listing = "; ".join(f"{r['iso3']} <- {r['_key']}" for r in clash.head(20).iter_rows(named=True))
        raise SourceError(source, f"several entries map to the same country: {listing}. Decide which one "
                          "counts in rules/country_overrides.csv (map one, drop the others)",
                          file=clash["file"][0], field="country")

    notes = df.filter(pl.col("drop_reason").is_not_null() | ~pl.col("iso3").is_in(list(universe)))
    notes = notes.select(
        "source", "vintage", "file", "row_ref", "country", "code",
        reason=pl.coalesce(pl.col("drop_reason"),
                           pl.format("outside the M49 universe (maps to {})", pl.col("iso3"))),
    ).cast(note_schema())
    kept = df.filter(pl.col("iso3").is_in(list(universe))).drop("_key", "ov_iso3", "drop_reason", "_coco")
    return kept, notes
