"""The publisher files of a refresh parsed ahead of its source steps (radar_pipeline/sources/prefetch.py):
the steps read what the thread parsed, wait for a parse under way rather than parse twice, and still
report a broken file themselves; nothing is read ahead without a mirror, and nothing is left running
after the run."""
from __future__ import annotations

import shutil
import threading
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import prefetch, registry
from radar_pipeline.sources.toolkit import SourceError


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A copy of the packaged (synthetic) sample mirror, with a parse cache of its own."""
    folder = tmp_path / "mirror"
    shutil.copytree(settings.SAMPLE_MIRROR_DIR, folder)
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(folder))
    monkeypatch.setenv("RADAR_CACHE", str(tmp_path / "cache"))
    return folder


def _files(source: str):
    return registry.collect_files(source, mirror=settings.sources_mirror(), landing=settings.landing_dir(),
                                  user_dir=settings.user_files_dir(), log=lambda _m: None)


def _counting(monkeypatch, source: str, delay: float = 0.0) -> list[str]:
    """The adapter's parse, counted (the name of the thread that ran it) and slowed by `delay`."""
    mod = registry.adapter(source)
    original, calls = mod.parse, []

    def parse(*args, **kwargs):
        calls.append(threading.current_thread().name)
        time.sleep(delay)
        return original(*args, **kwargs)

    monkeypatch.setattr(mod, "parse", parse)
    return calls


def test_the_steps_read_what_the_prefetch_parsed(mirror, monkeypatch):
    ahead = prefetch.start(2024)
    assert ahead is not None
    ahead.thread.join(timeout=120)
    assert not ahead.thread.is_alive()
    assert ahead.failed == {}
    users = set(registry.user_sources())
    assert ahead.parsed == [s for s in registry.indicator_sources() if s not in users]
    # a step's parse of the same files is now a cache hit: the adapter is not called again
    calls = _counting(monkeypatch, "worldbank_wgi")
    rows = registry.parse_all("worldbank_wgi", _files("worldbank_wgi"), 2024)
    assert rows.height > 0 and calls == []


def test_a_step_waits_for_the_parse_under_way_instead_of_parsing_again(mirror, monkeypatch):
    calls = _counting(monkeypatch, "worldbank_wgi", delay=0.5)
    ahead = prefetch.start(2024, ["worldbank_wgi"])
    deadline = time.monotonic() + 60
    while not calls and time.monotonic() < deadline:  # the thread is inside the parse
        time.sleep(0.01)
    assert calls, ahead.failed
    rows = registry.parse_all("worldbank_wgi", _files("worldbank_wgi"), 2024)
    ahead.stop()
    assert calls == ["radar-prefetch-2024"] * len(_files("worldbank_wgi"))
    assert rows.height > 0


def test_a_broken_file_fails_its_step_with_its_own_message(mirror, monkeypatch):
    (workbook,) = (mirror / "freedom_house_fiw").rglob("*.xlsx")
    workbook.write_bytes(b"not a workbook")
    ahead = prefetch.start(2024)
    ahead.thread.join(timeout=120)
    assert list(ahead.failed) == ["freedom_house_fiw"]
    assert "freedom_house_fiw" not in ahead.parsed and "worldbank_wgi" in ahead.parsed
    # the step parses the file itself (nothing was cached for it) and raises the adapter's error
    with pytest.raises(SourceError, match="freedom_house_fiw") as raised:
        registry.parse_all("freedom_house_fiw", _files("freedom_house_fiw"), 2024)
    assert ahead.failed["freedom_house_fiw"] == f"SourceError: {raised.value}"


def test_without_a_mirror_nothing_is_read_ahead(monkeypatch, tmp_path):
    # live mode: the steps download, with their retries; the prefetch never does
    monkeypatch.delenv("RADAR_SOURCES_MIRROR", raising=False)
    assert prefetch.start(2024) is None


def test_stop_ends_it_after_the_parse_under_way(mirror, monkeypatch):
    for source in ("fao_aquastat", "freedom_house_fiw", "fund_for_peace_fsi"):
        _counting(monkeypatch, source, delay=0.3)
    ahead = prefetch.start(2024)
    time.sleep(0.1)
    ahead.stop()
    assert not ahead.thread.is_alive()
    assert len(ahead.parsed) <= 1
    again = prefetch.start(2024)  # a stopped prefetch no longer counts as running
    assert again is not None
    again.stop()


def _run(tags: dict, selection=None, job: str = "refresh_edition"):
    keys = None if selection is None else {dg.AssetKey(k) for k in selection}
    return SimpleNamespace(tags=tags, asset_selection=keys, job_name=job)


def test_a_run_reads_ahead_the_sources_it_materializes(mirror):
    users = set(registry.user_sources())
    whole = prefetch.start_for_run(_run({"dagster/partition": "2024"}))
    assert whole.sources == [s for s in registry.indicator_sources() if s not in users]
    assert (whole.edition, whole.later) == (2024, True)
    assert prefetch.start_for_run(_run({"dagster/partition": "2024"})) is None  # one per edition and process
    whole.stop()
    some = prefetch.start_for_run(_run({"dagster/partition": "2023"}, ["ilostat_observations", "countries"]))
    assert (some.edition, some.sources, some.later) == (2023, ["ilostat"], False)
    some.stop()
    assert prefetch.start_for_run(_run({"dagster/partition": "2024"}, ["site_scores"], job="score_sites")) is None
    assert prefetch.start_for_run(_run({})) is None


def test_the_refresh_that_started_it_keeps_the_edition_until_it_stops_it(mirror):
    # `radar refresh` starts its prefetch before the run; when that one has finished before the
    # run's `countries` step, the step must not start a second one (parsing everything again
    # beside the steps, and left running after the refresh)
    ahead = prefetch.start(2024, ["ilostat"], until_stopped=True)
    ahead.thread.join(timeout=60)
    assert not ahead.thread.is_alive()
    assert prefetch.start_for_run(_run({"dagster/partition": "2024"})) is None
    ahead.stop()
    again = prefetch.start_for_run(_run({"dagster/partition": "2024"}, ["ilostat_observations"]))
    assert again is not None
    again.thread.join(timeout=60)
    third = prefetch.start_for_run(_run({"dagster/partition": "2024"}, ["ilostat_observations"]))
    assert third is not None  # one started by a run's step is the edition's only while it parses
    third.stop()


def test_refresh_leaves_no_prefetch_running(mirror, tmp_path):
    from radar_pipeline.cli.runs import refresh_edition

    outcome = refresh_edition(2024, warehouse=tmp_path / "w.duckdb")
    assert outcome.success, outcome.failures
    assert not [t for t in threading.enumerate() if t.name.startswith("radar-prefetch")]


def test_a_process_that_exits_mid_prefetch_finishes_the_parse_under_way(mirror, tmp_path):
    # a run process whose run failed early exits while the thread parses: the parse under way ends
    # and its cache entry is written whole, nothing half-written is left (atexit before the daemon
    # threads stop), and no further source is started
    import os
    import subprocess
    import sys

    code = """
import time
from radar_pipeline.sources import prefetch, registry
mod = registry.adapter("fao_aquastat")
original = mod.parse
def slow(*a, **k):
    print("parsing", flush=True)
    time.sleep(1.0)
    return original(*a, **k)
mod.parse = slow
prefetch.start(2024, ["fao_aquastat", "worldbank_wgi"])
time.sleep(0.3)
print("exiting", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["parsing", "exiting"]
    parsed = tmp_path / "cache" / "parsed"
    kinds = sorted(p.name for p in parsed.iterdir())
    assert kinds == ["source-fao_aquastat-observations"]  # WGI never started
    entries = list((parsed / kinds[0]).iterdir())
    assert entries and not [e for e in entries if e.name.startswith(".tmp-")]
