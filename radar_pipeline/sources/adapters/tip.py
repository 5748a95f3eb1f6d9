"""US State Department Trafficking in Persons (TIP) report tiers — curated CSV supplied by the user.

The TIP report places every country on Tier 1, Tier 2, the Tier 2 Watch List or
Tier 3 (plus "Special Case" countries it does not rank). It is published as
text (https://www.state.gov/trafficking-in-persons-report/), so — like ITUC —
the pipeline reads a small curated CSV of the published placements, one per
report year (vintage folder), from two places, both read and never downloaded:
- the sources mirror, `<RADAR_SOURCES_MIRROR>/tip/<year>/*.csv`;
- the user files, `<RADAR_USER_FILES>/tip/<year>/*.csv`.

Format (UTF-8, comma separated, header required, column order free, header
names case-insensitive):

    country,tier[,year]
    Denmark,1
    Brazil,2
    Thailand,2WL
    NGA,2 WL
    Eritrea,3

- `country`: a country name as the report writes it, or an ISO 3166-1 alpha-3
  code; names are mapped to ISO3 centrally (sources.countries), as for every
  source; a three-upper-case-letter value is also taken as a code.
- `tier`: `1`, `2`, `2WL` (Tier 2 Watch List; `2 WL`, `Tier 2 Watch List`
  accepted) or `3`, also written `Tier 1` ... Scored 1, 2, 3, 4 (higher
  riskier, METHODOLOGY §2 forced-labour proxy). A "Special Case" country has
  no tier: leave it out of the file.
- `year` (optional): the report year; when the column is absent or the cell
  empty, the vintage folder name (e.g. "2024") is used. The report of year Y
  covers April Y-1 to March Y and is released in June Y, so the folder is
  labelled by its release.

Any other tier, an empty country, a non-integer year or the same country twice
for one year is a SourceError naming the file, line and value.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile
from radar_pipeline.sources.toolkit.curated import CuratedRatings

SOURCE = "tip"
FILE_PATTERNS = ("*.csv",)
USER_SUPPLIED = True  # no publisher file: read from the mirror and RADAR_USER_FILES, never downloaded

# METHODOLOGY §2: Tier 1 = 1, Tier 2 = 2, Tier 2 Watch List = 3, Tier 3 = 4.
TIERS = {"1": 1.0, "2": 2.0, "2WL": 3.0, "2WATCHLIST": 3.0, "3": 4.0}


# "Tier 2 Watch List", "2 WL", "2wl" -> "2WL" / "2WATCHLIST"
CURATED = CuratedRatings(
    SOURCE, "tier", TIERS,
    normalise=lambda c: c.str.to_uppercase().str.replace_all(r"\s+", "").str.replace(r"^TIER", ""),
    allowed="1, 2, 2WL, 3", placed="placed")


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return CURATED.parse(files, specs)
