"""A refresh's publisher files parsed ahead of its source steps, on a thread beside the run.

Why: the 18 source steps run one after another (one process, one DuckDB writer), and the first
refresh after new files land parses them inside those steps: ~1.5 s of the real mirror's cold
refresh (the WGI workbook alone ~0.6 s), on the critical path, while the run's start-up (the
Dagster run and plan, the `countries` step's imports) leaves the machine's second core idle. Here a
thread parses them into the parse cache (toolkit/cached.py) in the steps' order from the moment the
refresh starts, so a step finds its rows parsed, or waits for the parse under way.

What does not change: the steps still read, resolve, check and write every source themselves, and
a file that fails to parse fails its own step with its own message (the thread keeps no error and
caches no failed parse: the step parses again and raises). Parses never run two at a time
(cached.PARSE_LOCK), so the adapters' per-process memos see one parser at a time.

Only files already on disk are read ahead: with a mirror (RADAR_SOURCES_MIRROR: the sample, a
mirror folder), never a download (the steps fetch, with their retries and their run's logs). User
sources (their files may be large: issue 22) are left to their steps too.

Started by `radar refresh` (cli/runs.refresh_edition) before its run, which stops it when the run
ends (after the parse under way: nothing is left parsing after it). A run launched otherwise (the
schedule, the sensors, the UI) starts it in its first step, `countries` (`start_for_run`: by then the
run's settings have set its mirror), for the sources the run materializes; it ends when it has read
them, or with the run's process."""
from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform import settings

if TYPE_CHECKING:
    import dagster as dg

logger = logging.getLogger(__name__)

_RUNNING: dict[int, Prefetch] = {}  # edition -> the prefetch of this process
_GUARD = threading.Lock()


@atexit.register
def _stop_all() -> None:
    # a run process that ends while its prefetch still parses (a run that failed early) ends it
    # after the parse under way rather than in the middle of writing a cache entry (atexit runs
    # before the interpreter stops its daemon threads)
    with _GUARD:
        running = list(_RUNNING.values())
    for prefetch in running:
        prefetch.stop()


class Prefetch:
    """The thread parsing `sources` for `edition` (see the module docstring)."""

    def __init__(self, edition: int, sources: list[str], mirror: Path, later: bool = True,
                 until_stopped: bool = False):
        # the mirror as the run started: a folder set later (another run, a test) is not read
        self.edition, self.sources, self.mirror = edition, sources, mirror
        self.later = later  # the uncertainty's and the benchmarks' parses too (a whole refresh)
        # the edition stays this prefetch's until `stop` (its starter's run), not only while it parses:
        # the run's `countries` step does not start a second one after it has finished
        self.until_stopped = until_stopped
        self.parsed: list[str] = []          # sources whose vintages are in the parse cache now
        self.failed: dict[str, str] = {}     # source -> why (its step parses again and reports it)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"radar-prefetch-{edition}", daemon=True)

    def _run(self) -> None:
        from radar_pipeline.sources import registry

        try:
            for source in self.sources:
                if self._stop.is_set():
                    return
                try:
                    # mirror given: the files on disk, never a download
                    by_vintage = registry.collect_files(source, mirror=self.mirror, landing=settings.landing_dir(),
                                                        user_dir=settings.user_files_dir(), log=logger.debug)
                    if by_vintage:
                        registry.parse_all(source, by_vintage, self.edition)
                    self.parsed.append(source)
                except Exception as exc:  # noqa: BLE001 — the step reads the files again and names the error
                    self._failed(source, exc)
            if self.later and not self._stop.is_set():
                self._later()
        finally:
            if not self.until_stopped:
                self._release()

    def _later(self) -> None:
        """What the steps after the sources parse: the stated errors the uncertainty reads
        (country_risk/uncertainty.standard_errors: each vintage of its SE_SOURCES) and the benchmark
        series (benchmarks.read_values, parsed as it parses them; the universe is not known yet,
        so nothing is kept but the parse cache's entries)."""
        from radar_pipeline.country_risk import benchmarks, uncertainty
        from radar_pipeline.sources import registry
        from radar_pipeline.sources.toolkit.fetch import mirror_files

        for source in uncertainty.SE_SOURCES:
            mod = registry.adapter(source)
            for vintage, files in mirror_files(self.mirror, source, tuple(mod.FILE_PATTERNS)).items():
                if self._stop.is_set():
                    return
                try:
                    if specs := registry.specs_for(source, vintage):
                        mod.standard_errors(files, specs)
                except Exception as exc:  # noqa: BLE001 — as above
                    self._failed(f"{source} standard errors", exc)
        users = set(registry.user_sources())
        for b in benchmarks.load_benchmarks():
            if self._stop.is_set():
                return
            if b.source != benchmarks.USER_FILE and b.source not in users:
                try:
                    benchmarks.read_values(b, self.edition, set(), mirror=self.mirror)
                except Exception as exc:  # noqa: BLE001 — as above
                    self._failed(f"benchmark {b.benchmark_id}", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.failed[what] = f"{type(exc).__name__}: {exc}"
        logger.debug(f"prefetch of {what} for edition {self.edition} left to its step: {exc}")

    def stop(self) -> None:
        """Stop after the parse under way, and wait for it."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self._release()

    def _release(self) -> None:
        with _GUARD:
            if _RUNNING.get(self.edition) is self:
                del _RUNNING[self.edition]


def start(edition: int, sources: Iterable[str] | None = None, later: bool | None = None, *,
          until_stopped: bool = False) -> Prefetch | None:
    """Parse `sources` (default: every indicator source) for `edition` on a thread, then, when
    `later` (default: a whole refresh, sources None), the standard errors and benchmark series;
    None when there is nothing to read ahead (no mirror: the steps download) or this process
    already does it. `until_stopped`: the caller stops it when its run ends (`radar refresh`)."""
    from radar_pipeline.sources import registry

    mirror = settings.sources_mirror()
    if mirror is None:
        return None
    users = set(registry.user_sources())
    wanted = [s for s in (registry.indicator_sources() if sources is None else sorted(sources)) if s not in users]
    with _GUARD:
        if not wanted or edition in _RUNNING:
            return None
        prefetch = _RUNNING[edition] = Prefetch(edition, wanted, mirror,
                                                later=sources is None if later is None else later,
                                                until_stopped=until_stopped)
        prefetch.thread.start()
    return prefetch


def start_for_run(run: dg.DagsterRun | None) -> Prefetch | None:
    """The prefetch of a Dagster run, started by its first step (`countries`): the run's edition
    (its partition) and the sources whose `<source>_observations` it materializes (all of them, and
    the later parses, for a whole refresh_edition run); None for any other run."""
    edition = (run.tags.get("dagster/partition") or "") if run is not None else ""
    if not edition.isdigit():
        return None
    if run.asset_selection is None:
        sources, later = (None, True) if run.job_name == "refresh_edition" else ([], False)
    else:
        names = {key.path[-1] for key in run.asset_selection}
        sources = [n.removesuffix("_observations") for n in names if n.endswith("_observations")]
        later = bool(names & {"country_topic_risk", "benchmark_agreement"})
    return start(int(edition), sources, later) if sources is None or sources else None
