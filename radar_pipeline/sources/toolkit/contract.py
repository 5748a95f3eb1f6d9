"""The contract between a publisher adapter and the pipeline, with its types.

An adapter turns the files one publisher released (one folder per vintage)
into long observation rows. It never maps country names itself and never
decides which rows an edition uses: `reference.countries.resolve` maps names/codes
to ISO3 and `registry` applies the edition window. That keeps adapters
small and makes every one of them testable on the publisher's own file.

An adapter is a module `radar_pipeline.sources.adapters.<source>` (the module name is the
source name) satisfying `ObservationAdapter` (indicator sources) or `Adapter` (snapshot lists);
`registry.adapter(source)` imports it and checks that.
Optional capabilities are further protocols the module may also satisfy:
`DownloadsItself` (files come from an API, not from a rules/sources.csv URL) and
`FlagsAggregates` (some files only say which codes are aggregates). `USER_SUPPLIED = True`
marks a source with no publisher file (curated or licensed data read from the mirror and
RADAR_USER_FILES, never downloaded).
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.settings import rules_dir

if TYPE_CHECKING:
    import polars as pl

    from radar_pipeline.sources.toolkit.fetch import HttpClient


# Columns (and dtypes) every parser returns.
@lru_cache(maxsize=1)
def raw_observation_schema() -> dict[str, pl.DataType]:
    """Built on first use: the definitions load without polars (issue 24 item 3)."""
    import polars as pl

    return {
        "source": pl.String,        # adapter name, e.g. "ti_cpi"
        "indicator_id": pl.String,  # from rules/indicators.csv
        "vintage": pl.String,       # folder the file came from, e.g. "2023", "2022-04"
        "file": pl.String,          # file name as released
        "row_ref": pl.String,       # where in the file: "sheet 'CPI 2023' row 7", "line 12"
        "country": pl.String,       # country name exactly as in the file (may be null if only a code)
        "code": pl.String,          # country code as in the file (ISO3/WB code), null when the file has none
        "data_year": pl.Int32,      # the year the value describes
        "value": pl.Float64,
    }


__getattr__ = lazy_attributes(__name__, RAW_OBSERVATION_SCHEMA=raw_observation_schema)


class SourceError(Exception):
    """A publisher file or response that cannot be used. Always names where and why."""

    def __init__(self, source: str, reason: str, *, file: str | None = None,
                 row: str | None = None, field: str | None = None):
        self.source, self.file, self.row, self.field, self.reason = source, file, row, field, reason
        where = ", ".join(p for p in (
            f"file {file}" if file else None,
            row,
            f"field '{field}'" if field else None,
        ) if p)
        super().__init__(f"[{source}] {where + ': ' if where else ''}{reason}")


@dataclass(frozen=True)
class IndicatorSpec:
    """One row of rules/indicators.csv: an indicator and where to read it."""

    indicator_id: str
    topic: str
    source: str
    direction: str          # "higher_is_riskier" | "lower_is_riskier"
    unit: str
    vintages: str           # "*" = every vintage, else ";"-separated vintage folders
    series: str             # column / series / code in the publisher file for those vintages
    note: str = ""
    valid_min: str = ""     # plausible value range ("" = open): user-file values outside it are errors
    valid_max: str = ""
    # METHODOLOGY §1-2 (blank = the default): observations older than Y - max_age_years count
    # as missing; an indicator observed for fewer than min_countries countries in an edition
    # takes no part in it; values beyond clip_min / clip_max are set to the bound before
    # normalising (water stress: 100)
    max_age_years: str = ""
    min_countries: str = ""
    clip_min: str = ""
    clip_max: str = ""

    def applies_to(self, vintage: str) -> bool:
        return self.vintages == "*" or vintage in self.vintages.split(";")

    @property
    def higher_is_riskier(self) -> bool:
        return self.direction == "higher_is_riskier"


@dataclass(frozen=True)
class LandedFile:
    """A publisher file on local disk (landing folder or mirror)."""

    source: str
    vintage: str
    path: Path
    url: str | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.path.name


@runtime_checkable
class Adapter(Protocol):
    """What every adapter module provides (checked by `registry.adapter`): how its files are found."""

    SOURCE: str                       # == the module name, the mirror/landing folder name
    FILE_PATTERNS: tuple[str, ...]    # which files of a vintage folder are this source's (fnmatch)


@runtime_checkable
class ObservationAdapter(Adapter, Protocol):
    """An adapter of indicator observations (every source in rules/indicators.csv). The snapshot
    lists (EU CAHRA, ILAB goods) are plain `Adapter`s with their own parse function, read by the
    sectors package."""

    def parse(self, files: list[LandedFile], specs: list[IndicatorSpec]) -> pl.DataFrame:
        """Rows in RAW_OBSERVATION_SCHEMA for one vintage folder's `files`; `specs` are the
        rules/indicators.csv rows of this source that apply to that vintage."""
        ...


@runtime_checkable
class ListsSummary(Adapter, Protocol):
    """A snapshot list or reference file (EU CAHRA, ILAB goods, UN M49, ISIC), not indicator
    observations: `radar sources check` parses each vintage folder with `summary`."""

    def summary(self, files: list[LandedFile]) -> str:
        """One line: what the folder's files hold (counts), or SourceError."""
        ...


@runtime_checkable
class DownloadsItself(Protocol):
    """An adapter whose live files come from an API rather than rules/sources.csv URLs (the World
    Bank API v2): the registry (and `radar sources check --live`) call `download` instead of the
    catalogue, into a vintage folder it labels `api-YYYY-MM`."""

    def download(self, dest: Path, client: HttpClient, log: Callable[[str], None]) -> list[Path]:
        """Fetch every file this source reads into the folder `dest`; return their paths."""
        ...


@runtime_checkable
class FlagsAggregates(Protocol):
    """An adapter some of whose files only say which codes are aggregates (World Bank
    metadata): those codes apply to every vintage, so the registry passes `aggregates=` to
    `parse` with the codes found across all the source's folders."""

    def aggregate_codes(self, files: list[LandedFile]) -> set[str]: ...


@lru_cache(maxsize=1)
def load_indicator_specs(path: Path | None = None) -> tuple[IndicatorSpec, ...]:
    path = path or rules_dir() / "indicators.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["indicator_id"].startswith("#")]
    return tuple(IndicatorSpec(**{k: (v or "").strip() for k, v in r.items()}) for r in rows)


def specs_for(source: str, vintage: str | None = None) -> list[IndicatorSpec]:
    return [s for s in load_indicator_specs()
            if s.source == source and (vintage is None or s.applies_to(vintage))]


def empty_observations() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=raw_observation_schema())


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Cast/ordering to RAW_OBSERVATION_SCHEMA; drops rows with a null value."""
    import polars as pl

    missing = [c for c in raw_observation_schema() if c not in df.columns]
    if missing:
        raise ValueError(f"parser output lacks columns {missing}")
    return (df.select([pl.col(c).cast(t, strict=False) if c != "value" else pl.col(c).cast(t)
                       for c, t in raw_observation_schema().items()])
              .filter(pl.col("value").is_not_null() & pl.col("value").is_finite()))


_MAGIC = {
    "xlsx": (b"PK\x03\x04",),
    "json": (b"{", b"["),
    "xml": (b"<?xml", b"<"),
}


def check_content(file: LandedFile, kind: str) -> bytes:
    """Read a landed file and refuse what is plainly not the publisher's format.

    Publishers' servers answer outages with HTTP 200 and an HTML page, an empty
    body or a truncated zip; catching that here gives a message that names the
    source and the file instead of a parser traceback further down.
    kind: "xlsx" | "csv" | "json" | "xml".
    """
    data = file.path.read_bytes()
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not data.strip():
        raise SourceError(file.source, "file is empty", file=file.name)
    if head.startswith((b"<!doctype html", b"<html")) or (kind != "xml" and head.startswith(b"<")):
        raise SourceError(file.source, f"expected {kind} but got an HTML/XML page "
                          f"(starts {data[:60]!r}) — the publisher probably served an error page",
                          file=file.name)
    if kind in _MAGIC and not head.startswith(tuple(m.lower() for m in _MAGIC[kind])):
        raise SourceError(file.source, f"expected {kind} content but file starts {data[:16]!r}",
                          file=file.name)
    if kind == "xlsx" and b"PK\x05\x06" not in data[-66000:]:
        raise SourceError(file.source, "xlsx workbook is truncated (no zip end record)", file=file.name)
    if kind == "csv":
        try:
            data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(file.source, f"not UTF-8 text at byte {exc.start}: wrong encoding "
                              "or a binary file", file=file.name) from exc
    return data
