"""The inline pictures' links survive a restart and work under `dagster dev` (issue 23 item 4).

A picture is drawn through the UI (dagster-webserver + daemon, as `radar ui` runs them), its link
is followed; everything is stopped (the link is dead: nothing else served it); then plain `dagster
dev` is started in a folder whose .env names the same address, as the project's .env does, and the
link recorded before the restart shows the picture again.
"""
from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import dagster as dg
import pytest
from screenshots import BIN, DagsterUI, free_port, group_members, prepare_demo, stop_group

from radar_pipeline_tests.http_fixture import get_when_served

pytestmark = pytest.mark.slow  # a webserver, a daemon and `dagster dev`: `python -m pytest -m slow`


def test_picture_link_survives_a_restart_and_works_under_dagster_dev(tmp_path):
    demo = prepare_demo(tmp_path / "demo", n_sites=5)
    with DagsterUI(demo) as ui:
        run_id = ui.launch_assets(["risk_map"], partition="2024")
        assert ui.wait_run(run_id, timeout=300) == "SUCCESS"
        with dg.DagsterInstance.from_config(str(demo.home)) as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey("risk_map"))
        markdown = event.asset_materialization.metadata["picture"].value
        url = markdown[markdown.index("(") + 1:-1]
        assert url.startswith(demo.pictures_url + "/risk_map/risk_map_2024_inline.png?v=")
        png = demo.root / "pictures" / "risk_map" / "risk_map_2024_inline.png"
        assert get_when_served(url, timeout=60) == png.read_bytes()  # served by the code server the webserver started
        pids = ui.pids()
    for pid in pids:
        assert group_members(pid) == []
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get_when_served(url, timeout=0)  # nothing of the UI left: no other process was serving it

    # plain `dagster dev`, which reads RADAR_PICTURES_URL from the .env of its folder
    run_dir = tmp_path / "dev"
    run_dir.mkdir()
    (run_dir / ".env").write_text(f"RADAR_PICTURES_URL={demo.pictures_url}\n", encoding="utf-8")
    env = {k: v for k, v in demo.env().items() if k != "RADAR_PICTURES_URL"}
    log = open(tmp_path / "dagster_dev.log", "wb")
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-m", "radar_pipeline.definitions",
                             "-h", "127.0.0.1", "-p", str(free_port())], cwd=run_dir, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert get_when_served(url, timeout=180) == png.read_bytes()
    finally:
        stop_group(proc)
        log.close()
    assert group_members(proc.pid) == []
