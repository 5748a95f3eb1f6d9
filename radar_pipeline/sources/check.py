"""`radar sources check [--live]` — a dry run of every publisher download, one line per source file.

What an operator runs the week publishers release: for each catalogue entry
(rules/sources.csv) the file is downloaded into a temporary folder with the
pipeline's own client (`fetch.HttpClient`: timeouts, retries with backoff,
error-page refusal, zip members), sniffed and parsed by the source's adapter,
and its countries are mapped to ISO3 as a refresh would. The line says
`OK` with rows / countries / years, or `FAIL` with the reason (HTTP status,
unreachable, error page, changed layout, a country name that no longer maps),
or `SKIP` with why nothing was tried. Nothing is written to the warehouse or
the landing folder.

- `--live`: the real publisher URLs (and the World Bank API v2 for the sources
  the refresh reads through it: one download per registry indicator code).
- offline (default): NO live URL is reached. Each catalogue entry whose file
  exists in the mirror (`--mirror`, else RADAR_SOURCES_MIRROR, else the packaged
  synthetic sample) is served by a local HTTP server on 127.0.0.1 and downloaded
  from there with the same client, so the download, sniffing and parsing paths
  are the ones a live run uses; entries without a mirror copy are SKIPped. The
  mirror's vintage folders that no catalogue entry names (World Bank bulk
  folders, curated ITUC files) are parsed in place.
- both modes: the user files (RADAR_USER_FILES: curated ITUC ratings, licensed
  indicators in the long format) are parsed in place, as a refresh reads them.
"""
from __future__ import annotations

import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import polars as pl

from radar_pipeline.sources.toolkit import (
    FlagsAggregates,
    LandedFile,
    ListsSummary,
    SourceError,
    load_indicator_specs,
    specs_for,
)
from radar_pipeline.sources.toolkit.fetch import (
    CatalogueEntry,
    HttpClient,
    _parse_headers,
    fetch_entry,
    load_catalogue,
    mirror_files,
)


@dataclass
class Result:
    status: str          # OK | FAIL | SKIP
    source: str
    vintage: str
    file: str
    origin: str          # live | mirror via local server | mirror folder | user files | World Bank API
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.source:<18} {self.vintage:<9} {self.file:<52} [{self.origin}] {self.detail}"


# --------------------------------------------------------------------------- summaries

def _universe(path: Path | None) -> set[str] | None:
    if path is None:
        return None
    from radar_pipeline.sources.reference import un_m49

    parse = getattr(un_m49, "parse_universe", un_m49.parse_countries)
    return set(parse(path)["iso3"])


def _years(df: pl.DataFrame, col: str = "data_year") -> str:
    if df.height == 0 or col not in df.columns:
        return "no years"
    lo, hi = df[col].min(), df[col].max()
    return f"years {lo}" if lo == hi else f"years {lo}-{hi}"


def summarise(source: str, vintage: str, files: list[LandedFile], universe: set[str] | None,
              aggregates: set[str] | None = None) -> str:
    """Parse `files` as the refresh would; a one-line summary, or SourceError.
    `aggregates`: World Bank aggregate codes flagged by other vintages' metadata."""
    from radar_pipeline.sources import registry

    mod = registry.adapter(source)
    if isinstance(mod, ListsSummary):
        return mod.summary(files)
    specs = specs_for(source, vintage) if source != "user" else list(load_indicator_specs())
    if not specs:
        raise SourceError(source, f"no indicator in rules/indicators.csv applies to vintage {vintage!r}")
    if isinstance(mod, FlagsAggregates) and all(f.name.startswith("Metadata_") for f in files):
        # a folder holding only the bulk download's country metadata (how aggregates are flagged)
        return f"metadata only: {len(mod.aggregate_codes(files))} aggregate codes flagged for every vintage"
    raw = mod.parse(files, specs, aggregates=aggregates) if aggregates else mod.parse(files, specs)
    if raw.height == 0:
        raise SourceError(source, f"parsed but no rows for the registry series "
                          f"{sorted({s.series for s in specs})}", file=files[0].name)
    indicators = ", ".join(sorted(raw["indicator_id"].unique()))
    if universe is None:
        n = raw.select(pl.coalesce("code", "country")).n_unique()
        return f"{raw.height} rows, {n} entities (not mapped: no M49 file), {_years(raw)}; {indicators}"
    from radar_pipeline.sources.reference.countries import resolve

    kept, notes = resolve(raw, universe, source)
    out = f" ({notes.height} rows outside the universe)" if notes.height else ""
    return f"{kept.height} rows, {kept['iso3'].n_unique()} countries{out}, {_years(kept)}; {indicators}"


def _check(result: Result, source: str, vintage: str, files_fn, universe, aggregates=None) -> Result:
    try:
        files = files_fn()
        result.detail = summarise(source, vintage, files, universe, aggregates)
        result.status = "OK"
    except SourceError as exc:
        result.status, result.detail = "FAIL", str(exc)
    except Exception as exc:  # noqa: BLE001 — an adapter bug must not hide the other sources' lines
        result.status, result.detail = "FAIL", f"{exc.__class__.__name__}: {exc}"
    return result


# --------------------------------------------------------------------------- local server

@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` read-only on 127.0.0.1 (an ephemeral port); yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- the run

def _client(source: str, entry: CatalogueEntry | None, timeout: float, retries: int) -> HttpClient:
    return HttpClient(source, connect_timeout=min(timeout, 10.0), read_timeout=timeout, retries=retries,
                      backoff=0.5, backoff_max=10.0, headers=_parse_headers(entry.headers) if entry else None)


def _fetch(entry: CatalogueEntry, tmp: Path, timeout: float, retries: int) -> list[LandedFile]:
    return [fetch_entry(entry, tmp, client=_client(entry.source, entry, timeout, retries))]


def run_check(*, live: bool, mirror: Path | None, user_dir: Path | None = None,
              catalogue: list[CatalogueEntry] | None = None, sources: list[str] | None = None,
              timeout: float = 60.0, retries: int = 2, log=print) -> list[Result]:
    """Check every catalogue entry (and, offline, every mirror folder); print and return one Result each."""
    from radar_pipeline.sources import registry

    entries = [e for e in (catalogue if catalogue is not None else load_catalogue())
               if not sources or e.source in sources]
    # un_m49 first: its file is the universe the other sources' countries are mapped into
    entries.sort(key=lambda e: e.source != "un_m49")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="radar-sources-check-") as tmpdir:
        tmp = Path(tmpdir)
        universe: set[str] | None = None
        if not live and mirror is not None:
            m49 = mirror_files(mirror, "un_m49", ("*.csv",))
            universe = _universe(list(m49.values())[-1][-1].path) if m49 else None

        def emit(r: Result) -> None:
            results.append(r)
            log(r.line())

        covered: set[tuple[str, str]] = set()
        if live:
            log("LIVE check: downloading from the publishers' URLs into a temporary folder "
                f"(timeout {timeout:.0f}s, {retries} retries); nothing is written to the warehouse.")
            for e in entries:
                r = _check(Result("FAIL", e.source, e.vintage, e.file, "live", ""), e.source, e.vintage,
                           lambda e=e: _fetch(e, tmp / "live", timeout, retries), universe)
                if e.source == "un_m49" and r.status == "OK":
                    universe = _universe(tmp / "live" / e.source / e.vintage / e.file)
                emit(_mark_unreached(r))
            for source in (s for s in registry.api_sources() if not sources or s in sources):
                emit(_mark_unreached(_check(
                    Result("FAIL", source, "api", f"{len(specs_for(source))} indicator code(s)",
                           "World Bank API v2", ""), source, "api",
                    lambda s=source: _api_download(s, tmp / "api", timeout, retries), universe)))
        else:
            where = mirror if mirror is not None else "(none)"
            log("OFFLINE check: live publisher URLs were NOT reached (run with --live for that). Files come "
                f"from the mirror {where}, downloaded through a local HTTP server on 127.0.0.1 with the "
                "pipeline's client (timeouts, retries, error-page checks), then parsed.")
            with serve_folder(mirror if mirror is not None else tmp) as base:
                for e in entries:
                    local = mirror / e.source / e.vintage / e.file if mirror is not None else None
                    if local is None or not local.is_file():
                        emit(Result("SKIP", e.source, e.vintage, e.file, "live URL not reached",
                                    f"offline and no mirror copy at {local or '<no mirror>'} ({e.url})"))
                        continue
                    covered.add((e.source, e.vintage))
                    # the mirror holds the zip member itself, so the local download has no member
                    served = replace(e, url=f"{base}/{quote(e.source)}/{quote(e.vintage)}/{quote(e.file)}",
                                     member="")
                    emit(_check(Result("FAIL", e.source, e.vintage, e.file, "mirror via local server", ""),
                                e.source, e.vintage, lambda s=served: _fetch(s, tmp / "offline", timeout,
                                                                            retries), universe))
        # local folders: the mirror's uncatalogued vintages (offline) and the user files (both modes:
        # a live refresh reads ITUC ratings and licensed indicators from RADAR_USER_FILES too)
        for root, origin in ((mirror, "mirror folder"), (user_dir, "user files")):
            if root is None:
                continue
            for source in [*registry.indicator_sources(), *registry.list_sources()]:
                if sources and source not in sources:
                    continue
                if origin == "user files" and source not in registry.user_sources():
                    continue
                mod = registry.adapter(source)
                folders = mirror_files(root, source, tuple(mod.FILE_PATTERNS))
                # as the refresh does: aggregates flagged in any vintage's metadata apply to all
                aggregates = (mod.aggregate_codes([f for fs in folders.values() for f in fs])
                              if isinstance(mod, FlagsAggregates) else None)
                for vintage, files in folders.items():
                    if origin == "mirror folder" and (source, vintage) in covered:
                        continue
                    label = files[0].name if len(files) == 1 else f"{len(files)} files"
                    emit(_check(Result("FAIL", source, vintage, label, origin, ""), source, vintage,
                                lambda f=files: f, universe, aggregates))
        n = {s: sum(r.status == s for r in results) for s in ("OK", "FAIL", "SKIP")}
        log(f"{n['OK']} OK, {n['FAIL']} FAIL, {n['SKIP']} SKIP"
            + ("" if live else " — offline: no live publisher URL was reached"))
    return results


def _mark_unreached(r: Result) -> Result:
    if r.status == "FAIL" and "unreachable" in r.detail:
        r.detail += " [live URL not reached]"
    return r


def _api_download(source: str, tmp: Path, timeout: float, retries: int) -> list[LandedFile]:
    """What a live refresh downloads for a source that fetches its own files (DownloadsItself)."""
    from radar_pipeline.sources import registry

    client = _client(source, None, timeout, retries)
    paths = registry.adapter(source).download(tmp / source, client, lambda _message: None)
    return [LandedFile(source, "api", p) for p in paths]
