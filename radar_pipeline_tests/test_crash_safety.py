"""SIGKILL a refresh at random points; the warehouse must stay usable and converge.

After every kill: the DuckDB file opens, every edition present passes the
integrity checks the asset checks use, and a rerun produces marts whose sorted
exports are byte-identical to an uninterrupted run's.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from radar_pipeline import integrity
from radar_pipeline.warehouse import connect

MARTS = {
    "indicator_observations": "edition, indicator_id, iso3, data_year",
    "indicator_scores": "edition, indicator_id, iso3",
    "country_topic_risk": "edition, iso3, topic",
    "hrg_uplift": "edition, iso3, isic_class, topic",
    "inherent_risk_overall": "edition, iso3, isic_class",
}


def refresh_cmd(warehouse):
    return [sys.executable, "-m", "radar_pipeline.cli", "refresh", "--edition", "2024", "--sample",
            "--warehouse", str(warehouse), "--no-publish"]


def env_for(tmp_path):
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    env["RADAR_USER_FILES"] = str(tmp_path / "user")
    env["RADAR_LANDING"] = str(tmp_path / "landing")
    return env


def checksums(path) -> dict[str, str]:
    con = connect(path, read_only=True)
    try:
        out = {}
        for table, order in MARTS.items():
            df = con.sql(f"select * from {table} order by {order}").pl()
            out[table] = hashlib.sha256(df.write_csv().encode()).hexdigest()
        return out
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_converges(tmp_path):
    env = env_for(tmp_path)
    reference = tmp_path / "reference.duckdb"
    subprocess.run(refresh_cmd(reference), env=env, check=True, capture_output=True, timeout=300)
    expected = checksums(reference)

    victim = tmp_path / "victim.duckdb"
    rng = random.Random(20261123)
    kills = 0
    for attempt in range(10):
        proc = subprocess.Popen(refresh_cmd(victim), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.5, 9.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)

        # the file opens (WAL replayed) and what is there is whole
        con = connect(victim)
        try:
            for e in [r[0] for r in con.sql("select distinct edition from country_topic_risk").fetchall()]:
                ok, meta = integrity.country_topic_risk_complete(con, e)
                assert ok, (attempt, meta)
            for e in [r[0] for r in con.sql("select distinct edition from inherent_risk_overall").fetchall()]:
                ok, meta = integrity.inherent_risk_overall_complete(con, e)
                assert ok, (attempt, meta)
        finally:
            con.close()

        rerun = subprocess.run(refresh_cmd(victim), env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert checksums(victim) == expected, f"marts differ after kill #{attempt}"
    assert kills >= 8, f"only {kills} of 10 runs were still running when killed: widen the delays"
