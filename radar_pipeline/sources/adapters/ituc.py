"""ITUC Global Rights Index — curated CSV supplied by the user.

ITUC publishes its ratings only in a PDF report and on
https://www.globalrightsindex.org/, so the pipeline reads a small curated CSV
of the published ratings, one per index year (vintage folder). It is looked up
in two places, both read (never downloaded):
- the sources mirror, `<RADAR_SOURCES_MIRROR>/ituc/<year>/*.csv` — e.g. the
  shared mirror's `ituc/2025/ituc_global_rights_index_2025.csv` (150 countries
  of the 2025 report, names as ITUC writes them, provenance in its PROVENANCE.md);
- the user files, `<RADAR_USER_FILES>/ituc/<year>/*.csv`.

Format (UTF-8, comma separated, header required, column order free, header
names case-insensitive):

    country,rating[,year]
    Denmark,1
    Bangladesh,5
    Myanmar,5+
    SYR,5 +

- `country`: a country name as ITUC writes it, or an ISO 3166-1 alpha-3 code.
  The name goes to `country`; a value of exactly three upper-case letters is
  also put in `code`. Names are mapped to ISO3 centrally, not here: every name
  of the 2025 file maps through country_converter without an override
  (`Türkiye`, `Palestine` -> PSE, `Hong Kong` -> HKG, `Taiwan` -> TWN). `Congo`
  maps to COG (the Republic of the Congo, as the ISO name reads); the curated
  file does not say which Congo the report meant — write `Democratic Republic
  of the Congo` (or COD) when the rating is the DRC's.
- `rating`: 1, 2, 3, 4, 5 or 5+ ("5 +" accepted). 5+ ("no guarantee of rights
  due to the breakdown of the rule of law") counts as 6.0 (METHODOLOGY §2).
- `year` (optional): the index year the rating describes; when the column is
  absent or the cell empty, the vintage folder name (e.g. "2024") is used.

Any other rating, an empty country, a non-integer year or the same country
twice for one year is a SourceError naming the line and the value.
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.toolkit import IndicatorSpec, LandedFile
from radar_pipeline.sources.toolkit.curated import CuratedRatings

SOURCE = "ituc"
FILE_PATTERNS = ("*.csv",)
USER_SUPPLIED = True  # no publisher file: read from the mirror and RADAR_USER_FILES, never downloaded

RATINGS = {"1": 1.0, "2": 2.0, "3": 3.0, "4": 4.0, "5": 5.0, "5+": 6.0}


CURATED = CuratedRatings(SOURCE, "rating", RATINGS, normalise=lambda c: c.str.replace_all(r"\s+", ""),
                         allowed="1, 2, 3, 4, 5, 5+", placed="rated")


def parse(files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
    return CURATED.parse(files, specs)
