"""The BI snapshot as a CLI user gets it, with no daemon running: `radar refresh` and
`radar sites ingest` publish at the end (as the daemon's sensor does), `--no-publish`
skips it, `radar publish` publishes on demand. Every command runs as a user runs it
(a `radar` subprocess in its own working directory)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def radar(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "radar_pipeline.cli", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"radar {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def bi_read(path: Path, sql: str) -> list[tuple]:
    """What a BI tool does: open the published file read-only and query it."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_refresh_and_ingest_publish_without_a_daemon(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADAR_", "DAGSTER_"))}
    env["RADAR_BUYERS_INBOX"] = str(tmp_path / "buyers")   # no buyer lists: nothing of the repo's
    published = tmp_path / "data" / "published" / "radar.duckdb"  # the default, relative to the cwd

    out = radar(["refresh", "--edition", "2024", "--sample"], tmp_path, env)
    assert published.is_file(), out.stdout[-2000:]
    # Dagster's beta/preview notices are not for a user (radar_pipeline/platform/quiet.py)
    assert not any(w in out.stderr for w in ("BetaWarning", "PreviewWarning", "ExperimentalWarning")), out.stderr
    assert str(published.relative_to(tmp_path)) in out.stdout  # the user is told where it is
    assert "read_only=True" in out.stdout                        # ... and how to open it
    # the BI file holds the warehouse's edition 2024
    warehouse = tmp_path / "data" / "radar.duckdb"
    for sql in ("select count(distinct iso3) from country_topic_risk where edition = 2024",
                "select count(*) from inherent_risk_overall where edition = 2024"):
        expected = bi_read(warehouse, sql)[0][0]
        assert expected > 0
        assert bi_read(published, sql.replace("country_topic_risk", "country_risk")) == [(expected,)]
    assert bi_read(published, "select count(*) from site_scores_latest")[0][0] == 0
    first_snapshot = bi_read(published, "select snapshot_id from publish_info")[0][0]

    sites = tmp_path / "sites.jsonl"
    radar(["sites", "generate", "--n", "40", "--seed", "3", "--out", str(sites)], tmp_path, env)
    radar(["sites", "ingest", str(sites), "--no-publish"], tmp_path, env)
    # --no-publish: the snapshot BI tools read is untouched
    assert bi_read(published, "select snapshot_id from publish_info")[0][0] == first_snapshot
    assert bi_read(published, "select count(*) from site_scores_latest")[0][0] == 0

    out = radar(["publish"], tmp_path, env)
    assert bi_read(published, "select count(distinct site_id) from site_scores_latest")[0][0] == 40
    assert bi_read(published, "select snapshot_id from publish_info")[0][0] != first_snapshot

    # ingest publishes by default: a changed site reaches the BI file without `radar publish`
    site = json.loads(sites.read_text().splitlines()[0])
    site["site_name"] = f"renamed {site.get('site_name')}"
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps(site) + "\n")
    before = bi_read(published, "select snapshot_id from publish_info")[0][0]
    out = radar(["sites", "ingest", str(changed)], tmp_path, env)
    assert "Published the BI snapshot" in out.stdout, out.stdout[-2000:]
    assert bi_read(published, "select snapshot_id from publish_info")[0][0] != before


@pytest.mark.slow
def test_demo_leaves_a_newcomer_something_to_look_at(tmp_path):
    """The README's first command: sample edition, scored sample sites, published, and how to open it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADAR_", "DAGSTER_"))}
    env["RADAR_BUYERS_INBOX"] = str(tmp_path / "buyers")
    out = radar(["demo", "--sites", "60"], tmp_path, env)
    published = tmp_path / "data" / "published" / "radar.duckdb"
    assert bi_read(published, "select count(distinct site_id) from site_scores_latest where edition = 2024") == [(60,)]
    assert bi_read(published, "select count(*) from country_risk where edition = 2024")[0][0] > 0
    # the printed commands work as printed
    explain = next(line.split("#")[0].split() for line in out.stdout.splitlines()
                   if line.strip().startswith("radar explain "))
    shown = radar(explain[1:], tmp_path, env)
    assert "FINAL SCORE" in shown.stdout
    one_liner = next(line.strip() for line in out.stdout.splitlines() if line.strip().startswith("python -c"))
    query = subprocess.run(one_liner, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert query.returncode == 0 and "site_id" in query.stdout, query.stderr[-2000:]
    assert "radar ui" in out.stdout
