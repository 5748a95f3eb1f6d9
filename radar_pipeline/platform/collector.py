"""The cyclic garbage collector around this project's Dagster runs and its code location.

Two measured costs (bench/README.md, "Ninth session"): the collections during a run, and those
that walked the code location's objects (the import's own, later ones, the one at exit). For the
first, the first threshold is raised while a run executes (raise_threshold, restore); for the
second, definitions.py is built under loading().

A run in process keeps every event of the run (execute_in_process returns them all) and creates
and holds millions of small containers: 50k partition materializations per scoring run. With
Python's default first threshold (700) the collector ran 18 full collections over that growing heap
in a 100k-site ingest (2.7 s of 48 s) besides 0.5 s of young ones; with 10_000 the young
generations are collected ~14x less often, no full collection was needed, young cycles are still
collected, and the peak RSS did not move (bench/README.md, "Ninth session").

The threshold is raised for a `radar` process (cli.console) and, for runs launched by the daemon or
the UI (run workers), for the duration of each run by the warehouse resource; restored afterwards,
so a process that only imports the project (a test, a code server) keeps Python's thresholds.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLD0 = 10_000


def raise_threshold() -> tuple[int, int, int]:
    """Raise the collector's first threshold to GC_THRESHOLD0 (never lower it; the older
    generations' thresholds kept). Returns the thresholds before, for restore()."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD0), *before[1:])
    return before


def restore(thresholds: tuple[int, ...]) -> None:
    gc.set_threshold(*thresholds)


@contextmanager
def loading() -> Iterator[None]:
    """Around the import of the code location (definitions.py), which only builds objects that
    live as long as the process: the collector is paused during it (the full collections it
    triggered over dagster's freshly imported modules cost 60-75 ms in every process that loads
    the definitions: code server, run worker, `radar`, a test session), and what exists once it is
    built is moved to the permanent generation (gc.freeze), so the process's later collections,
    during runs and at its exit, do not walk it again. Not collected is only garbage already in a
    reference cycle by then; everything else is freed by reference counting as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
