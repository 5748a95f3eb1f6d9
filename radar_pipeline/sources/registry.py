"""Which adapters exist, where their files come from, and the edition cut.

`load_source(source, edition, ...)` is what a source asset calls: collect the
publisher files (mirror folder, or live download into the landing folder),
parse every vintage with the adapter, map countries, keep the observations
inside the edition window (Y-5..Y) and, where vintages overlap, the value from
the newest vintage (publishers revise back years).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Callable

import polars as pl

from radar_pipeline import settings
from radar_pipeline.sources.base import LandedFile, SourceError, load_indicator_specs, specs_for
from radar_pipeline.sources.countries import NOTE_SCHEMA, resolve
from radar_pipeline.sources.fetch import HttpClient, fetch_entry, load_catalogue, mirror_files

# Sources the user supplies (no publisher file exists): read from the mirror
# and from RADAR_USER_FILES/<source>/<vintage>/*.csv — never downloaded.
USER_SOURCES = ("ituc", "user")
# World Bank indicators come from the API v2 in live mode (one call set per code).
API_SOURCES = {"worldbank_wdi": "", "worldbank_wgi": "3"}  # source -> WB API `source` param
EDITION_WINDOW = 5


def indicator_sources() -> list[str]:
    # "user" reads user files for ANY registry indicator (METHODOLOGY §2), so it is a
    # source even when no registry row names it (e.g. licensed data plugged in later).
    return sorted({s.source for s in load_indicator_specs()} | {"user"})


def adapter(source: str) -> ModuleType:
    try:
        return importlib.import_module(f"radar_pipeline.sources.{source}")
    except ModuleNotFoundError as exc:
        raise SourceError(source, f"no adapter module radar_pipeline.sources.{source}") from exc


@dataclass
class SourceLoad:
    source: str
    observations: pl.DataFrame           # edition-window rows, one per (indicator, iso3, year)
    notes: pl.DataFrame                  # rows dropped, with reasons
    files: list[LandedFile] = field(default_factory=list)
    vintages: list[str] = field(default_factory=list)


def collect_files(source: str, *, mirror: Path | None, landing: Path, user_dir: Path,
                  log: Callable[[str], None] = print) -> dict[str, list[LandedFile]]:
    mod = adapter(source)
    patterns = tuple(getattr(mod, "FILE_PATTERNS", ("*",)))
    roots: list[Path] = []
    if source in USER_SOURCES:
        roots = [r for r in (mirror, user_dir) if r is not None]
    elif mirror is not None:
        roots = [mirror]
    else:
        _download(source, landing, log)
        roots = [landing]
    found: dict[str, list[LandedFile]] = {}
    for root in roots:
        for vintage, files in mirror_files(root, source, patterns).items():
            found.setdefault(vintage, []).extend(files)
    return dict(sorted(found.items()))


def _download(source: str, landing: Path, log: Callable[[str], None]) -> None:
    if source in API_SOURCES:
        mod = adapter("worldbank_wdi")
        vintage = f"api-{date.today():%Y-%m}"
        client = HttpClient(source)
        params = {"source": API_SOURCES[source]} if API_SOURCES[source] else {}
        get = lambda url, p=None: client.get(url, {**params, **(p or {})})  # noqa: E731
        dest = landing / source / vintage
        base = settings.worldbank_api_base()
        mod.download_countries(client.get, dest, base)
        for code in sorted({s.series for s in specs_for(source)}):
            log(f"[{source}] downloading {code} from the World Bank API v2")
            mod.download_api(get, code, dest, base)
        return
    entries = [e for e in load_catalogue() if e.source == source]
    if not entries:
        raise SourceError(source, "no download URL in rules/sources.csv; "
                          "use RADAR_SOURCES_MIRROR or add a catalogue row")
    for entry in entries:
        log(f"[{source}] downloading {entry.url}")
        fetch_entry(entry, landing)


def parse_all(source: str, by_vintage: dict[str, list[LandedFile]]) -> pl.DataFrame:
    mod = adapter(source)
    kwargs = {}
    if hasattr(mod, "aggregate_codes"):
        # World Bank aggregates are flagged in metadata files that ship with
        # only some downloads; any vintage's list applies to all of them.
        kwargs["aggregates"] = mod.aggregate_codes([f for fs in by_vintage.values() for f in fs])
    frames = []
    for vintage, files in by_vintage.items():
        specs = specs_for(source, vintage) if source != "user" else list(load_indicator_specs())
        if not specs:
            continue
        frames.append(mod.parse(files, specs, **kwargs))
    return pl.concat(frames, how="vertical") if frames else None


def edition_cut(resolved: pl.DataFrame, edition: int) -> pl.DataFrame:
    """Observations in Y-5..Y; newest vintage wins where vintages overlap."""
    return (resolved
            .filter(pl.col("data_year").is_between(edition - EDITION_WINDOW, edition))
            .sort("vintage", descending=True)
            .unique(["indicator_id", "iso3", "data_year"], keep="first", maintain_order=True)
            .select(pl.lit(edition, pl.Int32).alias("edition"), "source", "indicator_id", "iso3",
                    "data_year", "value", "vintage", "file", "row_ref")
            .sort("indicator_id", "iso3", "data_year"))


def load_source(source: str, edition: int, universe: set[str], *, mirror: Path | None = None,
                landing: Path | None = None, user_dir: Path | None = None,
                log: Callable[[str], None] = print) -> SourceLoad:
    try:
        return _load_source(source, edition, universe, mirror=mirror, landing=landing,
                            user_dir=user_dir, log=log)
    except SourceError as exc:
        if exc.source == source:
            raise
        # worldbank_wgi downloads/parses API pages with the WDI adapter's code: name the
        # source being loaded, not the module that noticed the problem.
        raise SourceError(source, f"{exc.reason} (reported by the {exc.source} adapter)",
                          file=exc.file, row=exc.row, field=exc.field) from exc


def _load_source(source: str, edition: int, universe: set[str], *, mirror: Path | None,
                 landing: Path | None, user_dir: Path | None,
                 log: Callable[[str], None]) -> SourceLoad:
    mirror = mirror if mirror is not None else settings.sources_mirror()
    by_vintage = collect_files(source, mirror=mirror, landing=landing or settings.landing_dir(),
                               user_dir=user_dir or settings.user_files_dir(), log=log)
    files = [f for fs in by_vintage.values() for f in fs]
    raw = parse_all(source, by_vintage) if by_vintage else None
    if raw is None or raw.height == 0:
        return SourceLoad(source, _empty_obs(), pl.DataFrame(schema=NOTE_SCHEMA), files, list(by_vintage))
    kept, notes = resolve(raw, universe, source)
    return SourceLoad(source, edition_cut(kept, edition), notes, files, list(by_vintage))


def _empty_obs() -> pl.DataFrame:
    return pl.DataFrame(schema={"edition": pl.Int32, "source": pl.String, "indicator_id": pl.String,
                                "iso3": pl.String, "data_year": pl.Int32, "value": pl.Float64,
                                "vintage": pl.String, "file": pl.String, "row_ref": pl.String})
