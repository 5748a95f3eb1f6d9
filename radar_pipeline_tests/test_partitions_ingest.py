"""Issue 10: ingesting many sites as partitions. With DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1
(set by definitions.py; needed on PostgreSQL for large files) a failed scoring run no longer marks its
partitions failed in Dagster. A failure must still be visible (run status, site_scoring_runs, the CLI's
message) and the runs must be re-executable chunks: the next ingest scores exactly the failed chunk."""
from __future__ import annotations

import dagster as dg
import pytest

from radar_pipeline.platform.warehouse import connect
from radar_pipeline.sites import store
from radar_pipeline_tests import test_crash_safety as crash
from radar_pipeline_tests.test_crash_safety import _ingest_cli, _scores, _sites_file

pytestmark = pytest.mark.slow  # ingest subprocesses, signals, chunked scoring runs: `python -m pytest -m slow`

# the same fixtures: a private copy of the session's sample edition 2024, Dagster home, published folder
sample_warehouse, wh = crash.sample_warehouse, crash.wh


def test_a_failed_scoring_chunk_is_recorded_and_only_its_sites_are_scored_next_time(wh, tmp_path, monkeypatch):
    from radar_pipeline.cli import runs
    from radar_pipeline.sites.assets import RANGE_END, RANGE_START

    sites = _sites_file(wh, tmp_path / "sites.jsonl", 12)
    con = connect(wh)
    keys = store.ingest(con, sites).to_score
    con.close()
    real = store.score_and_store
    calls: list[list[str]] = []

    def second_run_fails(con, edition, site_ids, *args, **kwargs):
        calls.append(list(site_ids))
        if len(calls) == 2:
            raise OSError("No space left on device (simulated)")
        return real(con, edition, site_ids, *args, **kwargs)

    monkeypatch.setattr(store, "score_and_store", second_run_fails)
    instance = dg.DagsterInstance.ephemeral()
    outcome = runs.score_sites(keys, edition=2024, warehouse=wh, instance=instance, only_stale=True,
                               run_chunk=5, log=lambda _: None)
    assert not outcome.success and (outcome.runs, outcome.runs_failed) == (3, 1)
    assert "No space left on device" in " ".join(outcome.failures.values())
    failed_chunk = calls[1]
    assert len(failed_chunk) == 5
    # the runs after the failed one still ran
    assert set(_scores(wh)) == set(keys) - set(failed_chunk)

    # recorded: in the warehouse with its range and error ...
    con = connect(wh, read_only=True)
    recorded = con.sql("select status, first_site, last_site, n_sites, error from site_scoring_runs "
                       "order by started_at").fetchall()
    stale = store.stale_sites(con, 2024)
    con.close()
    assert [r[0] for r in recorded] == ["success", "failure", "success"]
    assert recorded[1][1:4] == (failed_chunk[0], failed_chunk[-1], 5) and "No space left" in recorded[1][4]
    # ... and in Dagster as a failed run over that range; its partitions are not materialized
    (failed,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert (failed.tags[RANGE_START], failed.tags[RANGE_END]) == (failed_chunk[0], failed_chunk[-1])
    assert instance.get_materialized_partitions(dg.AssetKey("site_scores")) == set(keys) - set(failed_chunk)

    # re-executable: what the next ingest scores is exactly the failed chunk, and then all are scored
    assert stale == failed_chunk
    monkeypatch.setattr(store, "score_and_store", real)
    outcome = runs.score_sites(stale, edition=2024, warehouse=wh, instance=instance, only_stale=True,
                               run_chunk=5, log=lambda _: None)
    assert outcome.success and outcome.runs == 1
    assert set(_scores(wh)) == set(keys)
    assert instance.get_materialized_partitions(dg.AssetKey("site_scores")) == set(keys)


def test_cli_ingest_says_how_to_finish_after_a_failed_run_and_the_rerun_completes(wh, tmp_path, monkeypatch):
    """`radar sites ingest` when a scoring run fails: exit 1, the reason, where it is recorded and
    that running the same command again finishes the job (the file itself is unchanged by then)."""
    sites = _sites_file(wh, tmp_path / "sites.jsonl", 8)
    real = store.score_and_store

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device (simulated)")

    monkeypatch.setattr(store, "score_and_store", full_disk)
    rc, out, err = _ingest_cli(wh, sites, "--edition", "2024")
    assert rc == 1, (out, err)
    assert "FAILED site_scores" in err and "No space left on device" in err
    assert "1 of 1 scoring run(s) failed (table site_scoring_runs)" in err
    assert "run the same command again" in err and "Traceback" not in err
    assert not _scores(wh)
    monkeypatch.setattr(store, "score_and_store", real)
    rc, out, err = _ingest_cli(wh, sites, "--edition", "2024")
    assert rc == 0, (out, err)
    assert "8 unchanged" in out and "scored 8 site(s)" in out
    assert len(_scores(wh)) == 8


def test_sigterm_during_a_scoring_run_stops_the_ingest_instead_of_starting_the_next_chunk(wh, tmp_path):
    """Dagster turns SIGTERM/Ctrl-C inside an in-process run into a failed run; the ingest used to go
    on with the next chunk's run (measured: a 300k-site ingest kept scoring after SIGTERM)."""
    import os
    import signal
    import subprocess
    import sys

    sites = _sites_file(wh, tmp_path / "sites.jsonl", 30)
    env = {**os.environ, "RADAR_RESCORE_CHUNK": "5", "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    proc = subprocess.Popen([sys.executable, "-m", "radar_pipeline.cli", "sites", "ingest", str(sites),
                             "--warehouse", str(wh), "--edition", "2024", "--no-publish"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if " - score_sites - " in line:  # the first run's step is running
            proc.send_signal(signal.SIGTERM)
            break
    lines += proc.stdout.readlines()
    rc = proc.wait(timeout=120)
    out = "".join(lines)
    assert rc == 1, out
    assert "of 6 scoring run(s) interrupted; the remaining runs were not started" in out
    assert "run the same command again" in out
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    assert len(instance.get_runs()) == 1  # the interrupted run, no later chunk started
    # and the rerun finishes the job
    rc, out, err = _ingest_cli(wh, sites, "--edition", "2024")
    assert rc == 0, (out, err)
    assert len(_scores(wh)) == 30
