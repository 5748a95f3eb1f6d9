"""Which adapters exist, where their files come from, and the edition cut.

`load_source(source, edition, ...)` is what a source asset calls: collect the
publisher files (mirror folder, or live download into the landing folder),
parse every vintage with the adapter, map countries, keep the observations
inside the edition window (Y-5..Y) and, where vintages overlap, the value from
the newest vintage (publishers revise back years).

As of the edition (METHODOLOGY §1): edition Y reads only vintages *released* in
year Y or before, so rebuilding an old edition later gives the same numbers.
A vintage folder is labelled by its release, and `release_year` maps a label
to the year it was released:

| label | released in | example |
|---|---|---|
| a label with a `released` month in rules/sources.csv | that month's year | `ti_cpi/2023`: 2024-01 |
| `YYYY`, `YYYY-MM` | YYYY | `2023`, `2023-03`, `2026-06` |
| `api-YYYY-MM` (live World Bank API download) | YYYY | `api-2026-12` |
| `FYYYYY` (World Bank fiscal-year products) | YYYY - 1 (FY2023 is published July 2022) | `FY2023` |
| `current` (catalogue list, no release label) | year fetched (`.meta.json` `fetched_at`, else mtime) | |
| any label of a NOT_EDITION_BOUND source (classifications) | not edition-bound: every edition | `unsd_isic/rev4` |

Any other label is an error naming the source and the folder. The choice is
made per indicator (a World Bank folder usually holds the indicators of one
download, not the whole database): the indicator is read from the newest vintage
released by Y that carries it (`newest_release`: a release restates the whole series;
curated and user files, one per index year, are all read, newest winning per country
and year); when none carrying it was released by Y, from the OLDEST vintage carrying
it, and the `edition_sources` row says `released_after_edition = true`.
`edition_sources` lists, per edition and source, the vintages read (those whose
observations fall inside the indicator's window Y - max_age_years..Y with the
indicators each gives, and a vintage chosen that holds none with no indicator). Lists that
are snapshots (EU CAHRA, ILAB goods, UN M49) use one vintage: the newest
released by Y, else the oldest (`choose_list_vintage`).
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform import settings
from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.sources.reference.countries import note_schema, resolve
from radar_pipeline.sources.toolkit import (
    Adapter,
    DownloadsItself,
    FlagsAggregates,
    IndicatorSpec,
    LandedFile,
    ListsSummary,
    ObservationAdapter,
    SourceError,
    load_indicator_specs,
    specs_for,
)
from radar_pipeline.sources.toolkit.cached import PARSE_LOCK, parsed_vintage
from radar_pipeline.sources.toolkit.fetch import HttpClient, fetch_entry, load_catalogue, mirror_files

if TYPE_CHECKING:
    import polars as pl

# METHODOLOGY §1: an observation older than Y - max_age_years counts as missing; an indicator
# row of rules/indicators.csv may declare more (survey series measured every few years).
EDITION_WINDOW = 5
# METHODOLOGY §2 coverage: an indicator observed for fewer countries in an edition takes no part
DEFAULT_MIN_COUNTRIES = 100
# Sources whose folders are classifications, not releases: every edition reads
# them whatever their label (METHODOLOGY §1 "as of the edition" binds releases).
NOT_EDITION_BOUND = {"unsd_isic": "ISIC Rev.4 classification structure (a reference, not a release)"}


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@lru_cache(maxsize=1)
def edition_sources_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "edition": pl.Int32, "source": pl.String, "vintage": pl.String, "released_after_edition": pl.Boolean,
        "release_year": pl.Int32, "indicators": pl.String, "rule": pl.String, "left_out": pl.String,
    }


__getattr__ = lazy_attributes(__name__, EDITION_SOURCES_SCHEMA=edition_sources_schema)


def catalogue_release_months() -> dict[tuple[str, str], str]:
    """(source, vintage) -> release month `YYYY-MM` from rules/sources.csv's `released` column:
    where a publisher labels a release otherwise (TI's "CPI 2023", released January 2024), the
    month it came out decides which editions may read it (METHODOLOGY §1)."""
    path = settings.sources_catalogue()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _release_months(str(path), stamp)


@lru_cache(maxsize=4)
def _release_months(path: str, stamp: int) -> dict[tuple[str, str], str]:
    out = {}
    for e in load_catalogue(Path(path)):
        if not e.released:
            continue
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", e.released):
            raise SourceError(e.source, f"rules/sources.csv: released {e.released!r} of vintage {e.vintage!r} "
                              "is not a month YYYY-MM", field="released")
        out[(e.source, e.vintage)] = e.released
    return out


def release_year(source: str, vintage: str, files: list[LandedFile] | tuple = ()) -> int | None:
    """Year the vintage was released; None for a source that is not edition-bound."""
    if source in NOT_EDITION_BOUND:
        return None
    month = catalogue_release_months().get((source, vintage))
    if month:
        return int(month[:4])
    m = re.fullmatch(r"(?:api-)?(\d{4})(?:-(?:0[1-9]|1[0-2]))?", vintage)
    if m:
        return int(m.group(1))
    m = re.fullmatch(r"FY(\d{4})", vintage, flags=re.IGNORECASE)
    if m:
        # World Bank fiscal year FYn runs July n-1 .. June n; its products
        # (income classification) are released at its start.
        return int(m.group(1)) - 1
    if vintage == "current":
        fetched = sorted(str(f.extra["fetched_at"]) for f in files if f.extra.get("fetched_at"))
        if fetched and re.match(r"\d{4}", fetched[0]):
            return int(fetched[0][:4])
        if files:
            return min(datetime.fromtimestamp(Path(f.path).stat().st_mtime).year for f in files)
        return date.today().year
    raise SourceError(source, f"vintage folder {vintage!r} is not a release label: use YYYY, YYYY-MM, "
                      "api-YYYY-MM, FYYYYY or current (METHODOLOGY §1, as of the edition)", field="vintage")


def choose_list_vintage(source: str, vintages: dict[str, list[LandedFile]] | list[str],
                        edition: int) -> tuple[str, int | None, bool] | None:
    """(vintage, release_year, released_after_edition) of a snapshot list for the edition:
    the newest vintage released by the edition, else the oldest one. None when there is none."""
    files = vintages if isinstance(vintages, dict) else {v: [] for v in vintages}
    if not files:
        return None
    files = dict(sorted(files.items()))
    years = {v: release_year(source, v, fs) for v, fs in files.items()}
    order = sorted(files, key=lambda v: (years[v] if years[v] is not None else 0, v))
    released = [v for v in order if years[v] is None or years[v] <= edition]
    chosen = released[-1] if released else order[0]
    y = years[chosen]
    return chosen, y, y is not None and y > edition


def list_source_rows(edition: int, source: str, vintages: dict[str, list[LandedFile]] | list[str]
                     ) -> pl.DataFrame:
    """The edition_sources row of a snapshot list (CAHRA, ILAB goods, M49): the vintage
    choose_list_vintage gives the edition; no row when the source has no vintage."""
    choice = choose_list_vintage(source, vintages, edition)
    if choice is None:
        return edition_source_rows(edition, source, [], "")
    vintage, year, after = choice
    return edition_source_rows(edition, source, [(vintage, year, "")],
                               "none released by the edition: oldest vintage" if after
                               else "newest released by the edition")


def edition_source_rows(edition: int, source: str, rows: list[tuple[str, int | None, str]],
                        rule: str) -> pl.DataFrame:
    """edition_sources rows: one per (vintage, release_year, indicators) the edition read."""
    import polars as pl

    return pl.DataFrame(
        [{"edition": edition, "source": source, "vintage": v,
          "released_after_edition": y is not None and y > edition, "release_year": y,
          "indicators": ind, "rule": rule, "left_out": None} for v, y, ind in rows],
        schema=edition_sources_schema())


def indicator_sources() -> list[str]:
    # "user" reads user files for ANY registry indicator (METHODOLOGY §2), so it is a
    # source even when no registry row names it (e.g. licensed data plugged in later).
    return sorted({s.source for s in load_indicator_specs()} | {"user"})


# Where adapters live, searched in this order: a source name is a module name in one of them.
ADAPTER_PACKAGES = ("radar_pipeline.sources.adapters", "radar_pipeline.sources.reference")


def adapter(source: str) -> Adapter:
    """The module `adapters/<source>.py` (or `reference/<source>.py`), checked against the
    contract: adding a publisher is adding its module, never editing this file."""
    for package in ADAPTER_PACKAGES:
        name = f"{package}.{source}"
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            break
    else:
        raise SourceError(source, f"no adapter module radar_pipeline/sources/adapters/{source}.py")
    if not isinstance(module, Adapter):
        raise SourceError(source, f"adapter module {module.__name__} lacks SOURCE or FILE_PATTERNS "
                          "(radar_pipeline.sources.toolkit.Adapter)")
    if source in indicator_sources() and not isinstance(module, ObservationAdapter):
        raise SourceError(source, f"adapter module {module.__name__} has no parse(files, specs) "
                          "(radar_pipeline.sources.toolkit.ObservationAdapter)")
    return module


def adapter_names() -> list[str]:
    """Every adapter module in adapters/ (reference lists excluded; undp_hdr is a layout the
    undp_gii adapter reads, not a source of its own, so it has no SOURCE)."""
    return list(_adapter_names())


@lru_cache(maxsize=1)
def _adapter_names() -> tuple[str, ...]:
    # once per process: listing the package and checking each module against the protocol took
    # ~3 ms, and user_sources() asks ~80 times a refresh
    import radar_pipeline.sources.adapters as package

    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                        if isinstance(importlib.import_module(f"{package.__name__}.{m.name}"), Adapter)))


def list_sources() -> tuple[str, ...]:
    """Snapshot lists and reference files (modules with a `summary`, ListsSummary): reference/
    first (M49 is the universe the others map into), then adapters/."""
    import radar_pipeline.sources.reference as reference

    names = [m.name for m in pkgutil.iter_modules(reference.__path__)] + adapter_names()
    return tuple(s for s in names if isinstance(importlib.import_module(_module_name(s)), ListsSummary))


def _module_name(source: str) -> str:
    return next(f"{p}.{source}" for p in ADAPTER_PACKAGES if importlib.util.find_spec(f"{p}.{source}"))


def user_sources() -> tuple[str, ...]:
    """Sources the user supplies (no publisher file exists; adapter says USER_SUPPLIED = True):
    read from the mirror and from RADAR_USER_FILES/<source>/<vintage>/*.csv — never downloaded."""
    return tuple(s for s in adapter_names() if getattr(adapter(s), "USER_SUPPLIED", False))


def api_sources() -> tuple[str, ...]:
    """Sources whose live files come from the adapter's own `download` (the World Bank API v2),
    not from rules/sources.csv."""
    return tuple(s for s in adapter_names() if isinstance(adapter(s), DownloadsItself))


@dataclass
class SourceLoad:
    source: str
    observations: pl.DataFrame           # edition-window rows, one per (indicator, iso3, year)
    notes: pl.DataFrame                  # rows dropped, with reasons
    files: list[LandedFile] = field(default_factory=list)      # files of the vintages read for the edition
    vintages: list[str] = field(default_factory=list)          # those vintages
    edition_sources: pl.DataFrame | None = None                # what the edition read, as of its year
    not_yet_released: list[str] = field(default_factory=list)  # vintages left out: released after Y


def collect_files(source: str, *, mirror: Path | None, landing: Path, user_dir: Path,
                  log: Callable[[str], None] = print) -> dict[str, list[LandedFile]]:
    mod = adapter(source)
    patterns = tuple(mod.FILE_PATTERNS)
    roots: list[Path] = []
    if source in user_sources():
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
    mod = adapter(source)
    if isinstance(mod, DownloadsItself):
        mod.download(landing / source / f"api-{date.today():%Y-%m}", HttpClient(source), log)
        return
    entries = [e for e in load_catalogue() if e.source == source]
    if not entries:
        raise SourceError(source, "no download URL in rules/sources.csv; "
                          "use RADAR_SOURCES_MIRROR or add a catalogue row")
    for entry in entries:
        log(f"[{source}] downloading {entry.url}")
        fetch_entry(entry, landing)


def parse_vintage(source: str, files: list[LandedFile], specs: list[IndicatorSpec], *, purpose: str = "observations",
                  kwargs: dict | None = None) -> pl.DataFrame:
    """`adapter(source).parse(files, specs, **kwargs)`, read again only when a file, the specs, the
    rule tables or the parser's code changed (toolkit.cached.parsed_vintage, the parse cache). The
    user source caches per file itself (parsed_once)."""
    mod = adapter(source)
    if source in user_sources():
        with PARSE_LOCK:  # one parser at a time in the process (toolkit/cached.py)
            return mod.parse(files, specs, **(kwargs or {}))
    return parsed_vintage(source, files, specs, purpose=purpose, kwargs=kwargs, parse=mod.parse)


def parse_all(source: str, by_vintage: dict[str, list[LandedFile]], edition: int | None = None) -> pl.DataFrame:
    """Every vintage's rows (`radar sources check`), or with `edition` only what `as_of` can
    choose from: the vintages released by the edition, and a later one only for an indicator
    no parsed vintage carried (its oldest-vintage fallback) — a refresh of 2023 does not read
    the 2024 WGI workbook or CPI 2024."""
    import polars as pl

    mod = adapter(source)
    kwargs = {}
    if isinstance(mod, FlagsAggregates):
        # World Bank aggregates are flagged in metadata files that ship with
        # only some downloads; any vintage's list applies to all of them.
        kwargs["aggregates"] = mod.aggregate_codes([f for fs in by_vintage.values() for f in fs])
    if edition is not None and getattr(mod, "READS_EDITION_WINDOW", False):
        # a large user file: only the rows the edition's window can use become rows (issue 22)
        kwargs.update(edition=edition, max_ages=max_ages())

    def specs_of(vintage: str) -> list[IndicatorSpec]:
        return specs_for(source, vintage) if source != "user" else list(load_indicator_specs())

    years = {v: release_year(source, v, fs) for v, fs in by_vintage.items()}
    later = [] if edition is None else sorted(
        (v for v, y in years.items() if y is not None and y > edition), key=lambda v: (years[v], v))
    frames = []
    for vintage, files in by_vintage.items():
        specs = specs_of(vintage)
        if specs and vintage not in later:
            frames.append(parse_vintage(source, files, specs, kwargs=kwargs))
    carried = {i for f in frames for i in f["indicator_id"].unique().to_list()}
    for vintage in later:  # oldest first: as_of takes the oldest vintage carrying an indicator
        specs = [s for s in specs_of(vintage) if s.indicator_id not in carried]
        if specs:
            frames.append(parse_vintage(source, by_vintage[vintage], specs, kwargs=kwargs))
            carried |= set(frames[-1]["indicator_id"].unique().to_list())
    return pl.concat(frames, how="vertical") if frames else None


def as_of(raw: pl.DataFrame, source: str, by_vintage: dict[str, list[LandedFile]],
          edition: int) -> pl.DataFrame:
    """Keep, per indicator, the rows of the vintages released by the edition (else of the
    oldest vintage carrying the indicator)."""
    import polars as pl

    years = _release_years(source, by_vintage)
    carried = (raw.select("indicator_id", "vintage").unique().join(years, on="vintage", how="left")
                  .with_columns(released=pl.col("release_year").is_null()
                                | (pl.col("release_year") <= edition)))
    oldest = (carried.sort("release_year", "vintage", nulls_last=False)
                     .group_by("indicator_id", maintain_order=True).first())
    chosen = pl.concat([
        carried.filter(pl.col("released")),
        # no vintage carrying the indicator was released by the edition: its oldest one
        oldest.join(carried.filter(pl.col("released")), on="indicator_id", how="anti"),
    ], how="vertical_relaxed")
    return raw.join(chosen.select("indicator_id", "vintage"), on=["indicator_id", "vintage"], how="semi")


def newest_release(raw: pl.DataFrame, source: str, by_vintage: dict[str, list[LandedFile]]) -> pl.DataFrame:
    """Per indicator, the rows of the newest vintage (release year, then label) among those the
    edition may read. A publisher's release carries the series' whole history as the publisher
    now states it, so a newer release supersedes an older one wholesale: mixing them per year
    would put, say, the World Bank's $6.85 (2017 PPP) poverty line of the 2023 release beside
    the $8.30 (2021 PPP) line of the 2025 one in one indicator once its window reaches back ten
    years. Curated and user files (one file per index year: ITUC, TIP, WEF, licensed data) are
    not releases of a series and are all read."""
    newest = (raw.select("indicator_id", "vintage").unique()
                 .join(_release_years(source, by_vintage), on="vintage", how="left")
                 .sort("release_year", "vintage", nulls_last=False)
                 .group_by("indicator_id", maintain_order=True).last())
    return raw.join(newest.select("indicator_id", "vintage"), on=["indicator_id", "vintage"], how="semi")


def _release_years(source: str, by_vintage: dict[str, list[LandedFile]]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame({"vintage": list(by_vintage),
                         "release_year": [release_year(source, v, fs) for v, fs in by_vintage.items()]},
                        schema={"vintage": pl.String, "release_year": pl.Int32})


def sources_read(obs: pl.DataFrame, source: str, by_vintage: dict[str, list[LandedFile]],
                 edition: int, chosen: list[str] | tuple = ()) -> pl.DataFrame:
    """edition_sources rows: the vintages the edition's observations come from, plus the vintages
    chosen for it (`chosen`, e.g. the oldest-vintage fallback) that hold no observation inside
    the edition's window (indicators empty): what the edition read is recorded either way."""
    import polars as pl

    empty = pl.DataFrame({"vintage": [v for v in chosen if v not in set(obs["vintage"])]},
                         schema={"vintage": pl.String}).with_columns(indicators=pl.lit("", pl.String))
    used = (pl.concat([obs.group_by("vintage")
                          .agg(pl.col("indicator_id").unique().sort().str.join(",").alias("indicators")),
                       empty])
               .join(_release_years(source, by_vintage), on="vintage", how="left")
               .sort("vintage"))
    rows = edition_source_rows(edition, source, list(used.select("vintage", "release_year", "indicators")
                                                     .iter_rows()), "")
    rows = rows.with_columns(rule=pl.when(pl.col("release_year").is_null()).then(pl.lit("not edition-bound"))
                             .when(pl.col("released_after_edition"))
                             .then(pl.lit("none released by the edition: oldest vintage"))
                             .otherwise(pl.lit("released by the edition")))
    return (rows.drop("left_out").join(left_out(obs), on="vintage", how="left")
                .select(list(edition_sources_schema())))


def max_ages() -> dict[str, int]:
    """indicator_id -> max_age_years of rules/indicators.csv (blank: EDITION_WINDOW)."""
    out: dict[str, int] = {}
    for s in load_indicator_specs():
        out.setdefault(s.indicator_id, int(s.max_age_years) if s.max_age_years else EDITION_WINDOW)
    return out


def min_countries() -> dict[str, int]:
    """indicator_id -> the coverage threshold this run applies (METHODOLOGY §2): min_countries of
    rules/indicators.csv (blank: DEFAULT_MIN_COUNTRIES), capped by settings.min_countries_cap()."""
    cap = settings.min_countries_cap()
    out: dict[str, int] = {}
    for s in load_indicator_specs():
        n = int(s.min_countries) if s.min_countries else DEFAULT_MIN_COUNTRIES
        out.setdefault(s.indicator_id, min(n, cap) if cap else n)
    return out


def left_out(obs: pl.DataFrame) -> pl.DataFrame:
    """Per vintage, the indicators of `obs` observed for fewer countries than their threshold:
    (vintage, left_out 'indicator_id: N countries < min_countries M; ...')."""
    import polars as pl

    need = min_countries()
    counts = (obs.group_by("indicator_id").agg(n=pl.col("iso3").n_unique())
                 .with_columns(need=pl.col("indicator_id").replace_strict(need, default=DEFAULT_MIN_COUNTRIES,
                                                                          return_dtype=pl.Int64))
                 .filter(pl.col("n") < pl.col("need")))
    return (obs.select("vintage", "indicator_id").unique().join(counts, on="indicator_id")
               .sort("vintage", "indicator_id")
               .group_by("vintage", maintain_order=True)
               .agg(pl.format("{}: {} countries < min_countries {}", "indicator_id", "n", "need")
                      .str.join("; ").alias("left_out")))


def edition_cut(resolved: pl.DataFrame, edition: int) -> pl.DataFrame:
    """Observations in Y - max_age_years..Y (per indicator, METHODOLOGY §1); newest vintage wins
    where vintages overlap."""
    import polars as pl

    age = pl.col("indicator_id").replace_strict(max_ages(), default=EDITION_WINDOW, return_dtype=pl.Int32)
    return (resolved
            .filter(pl.col("data_year").is_between(edition - age, edition))
            .sort("vintage", descending=True)
            .unique(["indicator_id", "iso3", "data_year"], keep="first", maintain_order=True)
            .select(pl.lit(edition, pl.Int32).alias("edition"), "source", "indicator_id", "iso3",
                    "data_year", "value", "vintage", "file", "row_ref")
            .sort("indicator_id", "iso3", "data_year"))


def load_source(source: str, edition: int, universe: set[str] | Callable[[], set[str]], *,
                mirror: Path | None = None,
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


def _load_source(source: str, edition: int, universe: set[str] | Callable[[], set[str]], *, mirror: Path | None,
                 landing: Path | None, user_dir: Path | None,
                 log: Callable[[str], None]) -> SourceLoad:
    import polars as pl

    mirror = mirror if mirror is not None else settings.sources_mirror()
    by_vintage = collect_files(source, mirror=mirror, landing=landing or settings.landing_dir(),
                               user_dir=user_dir or settings.user_files_dir(), log=log)
    raw = parse_all(source, by_vintage, edition) if by_vintage else None
    # rows an adapter quarantined (a user file's bad rows: issue 22) join the notes
    quarantined = getattr(adapter(source), "quarantined", None)
    if raw is None or raw.height == 0:
        files = [f for fs in by_vintage.values() for f in fs]
        notes = quarantined(files) if quarantined else pl.DataFrame(schema=note_schema())
        return SourceLoad(source, _empty_obs(), notes, files, list(by_vintage),
                          edition_source_rows(edition, source, [], ""))
    raw = as_of(raw, source, by_vintage, edition)
    if source not in user_sources():
        raw = newest_release(raw, source, by_vintage)
    # a callable universe is asked for here, after the files are fetched and parsed: the asset
    # reads it from the warehouse, and opens the warehouse (its write lock) only now
    kept, notes = resolve(raw, universe() if callable(universe) else universe, source)
    obs = edition_cut(kept, edition)
    read = sources_read(obs, source, by_vintage, edition, sorted(set(raw["vintage"].to_list())))
    # files read for the edition: the vintages its rows may come from, plus released vintages that
    # hold no rows of their own (a World Bank Metadata_Country file flags aggregates for all)
    kept = set(raw["vintage"].unique().to_list())
    used = [v for v in by_vintage if v in kept
            or (y := release_year(source, v, by_vintage[v])) is None or y <= edition]
    files = [f for v in used for f in by_vintage[v]]
    later = [v for v in by_vintage if v not in used
             and (y := release_year(source, v, by_vintage[v])) is not None and y > edition]
    if quarantined:
        notes = pl.concat([notes, quarantined(files)])
    return SourceLoad(source, obs, notes, files, used, read, later)


def _empty_obs() -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema={"edition": pl.Int32, "source": pl.String, "indicator_id": pl.String,
                                "iso3": pl.String, "data_year": pl.Int32, "value": pl.Float64,
                                "vintage": pl.String, "file": pl.String, "row_ref": pl.String})
