"""Through a real dagster-daemon (+ webserver, launched over GraphQL as the UI does): after a
refresh launched from the UI — the refresh_edition job, or "Materialize" of an edition's assets —
the published file is never a mix of the new edition's risk and sites scored on the older one
(issue 23 item 3). A watcher reads every snapshot the daemon publishes meanwhile.

Every process started here is stopped by process group in the fixture's finally block.
"""
from __future__ import annotations

import threading
import time

import duckdb
import pytest
from screenshots import DagsterUI, group_members, prepare_demo  # scripts/ (pytest pythonpath)

pytestmark = pytest.mark.slow  # a real dagster-daemon and webserver, three refreshes

N_SITES = 20


class Watcher:
    """Reads the published file every 0.3 s in a thread: per snapshot id, the latest edition of
    its inherent risk and the editions of its sites' latest scores."""

    def __init__(self, path):
        self.path = path
        self.seen: dict[str, tuple[int, list[int], int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                con = duckdb.connect(str(self.path), read_only=True)
            except duckdb.Error:  # absent or mid-swap
                time.sleep(0.3)
                continue
            try:
                sid = con.sql("select any_value(snapshot_id) from publish_info").fetchall()[0][0]
                if sid not in self.seen:
                    latest = con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0]
                    editions = [r[0] for r in con.sql("select distinct edition from site_scores_latest "
                                                      "order by 1").fetchall()]
                    n = con.sql("select count(*) from site_scores_latest").fetchall()[0][0]
                    self.seen[sid] = (latest, editions, n)
            except duckdb.Error:
                pass
            finally:
                con.close()
            time.sleep(0.3)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    demo = prepare_demo(tmp_path_factory.mktemp("consistency_daemon"), n_sites=N_SITES)
    server = DagsterUI(demo)
    try:
        server.__enter__()
        yield server
    finally:
        server.stop()
        for pid in server.pids():
            assert group_members(pid) == [], f"process group {pid} still has live processes"


def launch_job(ui: DagsterUI, job: str, partition: str) -> str:
    repo = ui.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name "
                      "location { name } } } } }")["repositoriesOrError"]["nodes"][0]
    data = ui.graphql("""
        mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
          __typename ... on LaunchRunSuccess { run { runId } }
          ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
        {"p": {"selector": {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                            "jobName": job},
               "runConfigData": {}, "mode": "default",
               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]}}})
    result = data["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def wait_current(ui: DagsterUI, watcher: Watcher, edition: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (edition, [edition], N_SITES) in watcher.seen.values():
            return
        time.sleep(1)
    raise AssertionError(f"edition {edition} not published with every site after {timeout:.0f} s: {watcher.seen}"
                         + ui.diagnosis())


def test_no_snapshot_mixes_a_refreshed_edition_with_older_site_scores(ui):
    published = ui.demo.root / "published" / "radar.duckdb"
    watcher = Watcher(published)
    try:
        # the demo's stored sites are scored by the inbox sensor (resume) and published
        wait_current(ui, watcher, 2024, 240)
        # 1. the refresh_edition job, launched from the UI's launchpad
        run_id = launch_job(ui, "refresh_edition", "2025")
        assert ui.wait_run(run_id, timeout=400) == "SUCCESS", ui.diagnosis()
        wait_current(ui, watcher, 2025, 300)
        # 2. "Materialize" of an edition's assets from the asset graph (an ad hoc run)
        from radar_pipeline.definitions import edition_assets, reference_assets

        # the edition's assets and its `countries` partition (the unpartitioned references exist)
        keys = [k.to_user_string() for a in (*reference_assets, *edition_assets) for k in a.keys
                if a.partitions_def is not None and k.to_user_string() != "risk_map"]
        # in-process executor (a launchpad choice): the default multiprocess one starts a process per
        # step, and the 27 steps queue on the one-slot duckdb_write pool (> 15 min on a busy machine)
        run_id = ui.launch_assets(keys, partition="2026", run_config={"execution": {"config": {"in_process": {}}}})
        assert ui.wait_run(run_id, timeout=600) == "SUCCESS", ui.diagnosis()
        wait_current(ui, watcher, 2026, 300)
        time.sleep(20)  # anything the daemon still publishes after the rescoring is watched too
    finally:
        watcher.stop()
    mixed = {sid: v for sid, v in watcher.seen.items() if v[1] != [v[0]]}
    assert not mixed, f"snapshots mixing editions (latest inherent, site editions, sites): {mixed}"
    assert len(watcher.seen) >= 3
