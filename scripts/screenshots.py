"""The Dagster UI end to end on a throw-away demo, plus headless-Chromium screenshots.

    python scripts/screenshots.py --out docs/screenshots

builds a demo warehouse from the packaged SAMPLE mirror (edition 2024) with
synthetic sites in a temp folder, starts `dagster-webserver` and
`dagster-daemon` on 127.0.0.1 with a temp DAGSTER_HOME, backfills the site
partitions and renders the pictures through GraphQL (what the UI's buttons
do), takes screenshots, and stops every process it started (by process group).
radar_pipeline_tests/test_ui_e2e.py uses the same helpers.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from radar_pipeline.platform import settings

BIN = Path(sys.executable).parent
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the demo data -----------------------------------------------------------------

@dataclass
class Demo:
    root: Path
    home: Path
    warehouse: Path
    site_ids: list[str] = field(default_factory=list)
    # the pictures' fixed address, served by the code-location server (pictures/serve.py); a free
    # port so a demo never meets a developer's own `radar ui` on the default one
    pictures_url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")

    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home), "RADAR_WAREHOUSE": str(self.warehouse),
                "RADAR_SOURCES_MIRROR": str(settings.SAMPLE_MIRROR_DIR),
                "RADAR_USER_FILES": str(self.root / "user"), "RADAR_LANDING": str(self.root / "landing"),
                "RADAR_SITES_INBOX": str(self.root / "inbox"), "RADAR_PICTURES": str(self.root / "pictures"),
                "RADAR_PICTURES_URL": self.pictures_url,
                "RADAR_PUBLISHED": str(self.root / "published" / "radar.duckdb"),
                "RADAR_BUYERS_INBOX": str(self.root / "buyers")}


def prepare_demo(root: Path, n_sites: int = 40, edition: int = 2024) -> Demo:
    """Warehouse refreshed from the sample mirror + n synthetic sites stored (not scored), and a
    DAGSTER_HOME (copy of dagster.yaml) whose instance knows the sites as dynamic partitions."""
    import dagster as dg

    from radar_pipeline.cli.runs import refresh_edition
    from radar_pipeline.platform.partitions import sites as sites_partitions
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store
    from radar_pipeline.sites.generate import generate_sites, write_sites

    root.mkdir(parents=True, exist_ok=True)
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    from radar_pipeline.platform.run_settings import instance_yaml  # storage under this home, not the repo's

    (home / "dagster.yaml").write_text(instance_yaml(home=home), encoding="utf-8")
    (root / "inbox").mkdir(exist_ok=True)
    demo = Demo(root, home, root / "radar.duckdb")
    saved = {k: os.environ.get(k) for k in ("RADAR_SOURCES_MIRROR", "RADAR_USER_FILES", "RADAR_LANDING")}
    env = demo.env()
    os.environ.update({k: env[k] for k in saved})
    try:
        outcome = refresh_edition(edition, warehouse=demo.warehouse)
        if not outcome.success:
            raise RuntimeError(f"refresh of the demo edition failed: {outcome.failures}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    con = connect(demo.warehouse)
    try:
        countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
        sites_file = root / "demo_sites.jsonl"
        write_sites(generate_sites(n_sites, 7, countries, classes), sites_file)
        summary = store.ingest(con, sites_file)
    finally:
        con.close()
    demo.site_ids = summary.to_score
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(sites_partitions.name, demo.site_ids)
    return demo


# --- processes ---------------------------------------------------------------------

def _start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = settings.REPO_DIR) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group (Linux /proc; zombies whose parent is
    gone are not reaped in some containers and would otherwise look alive)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group the process leads, then SIGKILL what is left."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; children of the group may still be alive
        deadline = time.monotonic() + wait
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_members(pgid):
            break
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class DagsterUI:
    """`dagster-webserver` + `dagster-daemon` on 127.0.0.1 for a demo; a context manager that
    always stops both process groups."""

    def __init__(self, demo: Demo, port: int | None = None):
        self.demo = demo
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> DagsterUI:
        workspace = str(settings.REPO_DIR / "workspace.yaml")
        env = self.demo.env()
        # Dagster loads the .env of its working directory OVER the environment: run in the demo's
        # folder with the project's .env, but the demo's own pictures address
        lines = [line for line in (settings.REPO_DIR / ".env").read_text(encoding="utf-8").splitlines()
                 if not line.startswith("RADAR_PICTURES_URL=")]
        (self.demo.root / ".env").write_text("\n".join([*lines, f"RADAR_PICTURES_URL={self.demo.pictures_url}"])
                                             + "\n", encoding="utf-8")
        try:
            self.procs.append(_start([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                                      "-w", workspace], env, self.demo.root / "webserver.log", self.demo.root))
            self.procs.append(_start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env,
                                     self.demo.root / "daemon.log", self.demo.root))
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_group(proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; see logs in {self.demo.root}")
            try:
                data = self.graphql("{ workspaceOrError { __typename ... on Workspace { locationEntries { "
                                    "name loadStatus locationOrLoadError { __typename } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    kinds = {e["locationOrLoadError"]["__typename"] for e in entries}
                    if kinds != {"RepositoryLocation"}:
                        raise RuntimeError(f"code location failed to load: {data}")
                    self.location = entries[0]["name"]
                    return
                last = data
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"Dagster webserver not ready after {timeout}s: {last}")

    # --- GraphQL -------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def launch_backfill(self, asset_keys: list[str], partitions: list[str]) -> str:
        data = self.graphql("""
            mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
              __typename ... on LaunchBackfillSuccess { backfillId }
              ... on PythonError { message stack } ... on UnauthorizedError { message }
              ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }""",
            {"p": {"assetSelection": [{"path": [k]} for k in asset_keys], "partitionNames": partitions}})
        result = data["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {result}")
        return result["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.graphql("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
              __typename ... on PartitionBackfill { status } ... on PythonError { message } } }""",
                            {"id": backfill_id})
        return data["partitionBackfillOrError"]["status"]

    def runs(self, tags: dict[str, str] | None = None, run_ids: list[str] | None = None) -> list[dict]:
        flt: dict = {}
        if tags:
            flt["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if run_ids:
            flt["runIds"] = run_ids
        data = self.graphql("""query($f: RunsFilter) { runsOrError(filter: $f) { __typename
              ... on Runs { results { runId status jobName tags { key value } assetSelection { path } } } } }""",
                            {"f": flt})
        return data["runsOrError"]["results"]

    def wait_backfill(self, backfill_id: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.backfill_status(backfill_id)
            if status in TERMINAL_BACKFILL:
                return status
            time.sleep(1.0)
        raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout}s "
                           f"(daemon log: {self.demo.root / 'daemon.log'})")

    def launch_assets(self, asset_keys: list[str], *, partition: str | None = None,
                      run_config: dict | None = None) -> str:
        """What the UI's Materialize button does: one run of the implicit asset job."""
        repo = self.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name "
                            "location { name } } } } }")["repositoriesOrError"]["nodes"][0]
        tags = [{"key": "dagster/partition", "value": partition}] if partition else []
        data = self.graphql("""
            mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
              __typename ... on LaunchRunSuccess { run { runId } }
              ... on PythonError { message stack } ... on RunConfigValidationInvalid { errors { message } }
              ... on InvalidSubsetError { message } ... on InvalidStepError { invalidStepKey }
              ... on UnauthorizedError { message } } }""",
            {"p": {"selector": {"repositoryLocationName": repo["location"]["name"],
                                "repositoryName": repo["name"], "jobName": "__ASSET_JOB",
                                "assetSelection": [{"path": [k]} for k in asset_keys]},
                   "runConfigData": run_config or {}, "mode": "default",
                   "executionMetadata": {"tags": tags}}})
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"run not launched: {result}")
        return result["run"]["runId"]

    # daemon.log lines worth reading when an expected run or snapshot does not come: what the
    # automation requested, what was submitted, published or held back, and anything that went wrong
    TELLING = ("evaluation result", "Submitted run", "published snapshot", "not published", "ERROR", "Error",
               "WARNING - __", "WARNING - score", "Backfill iteration", "Failed", "failure",
               "Sensor methodology_sensor skipped")

    def diagnosis(self) -> str:
        """Every run (job, status, partition, assets) and the telling lines of daemon.log, for a test's
        failure message: a daemon test fails under a timing a rerun may not meet, so the message
        carries the evidence."""
        shown = ("dagster/partition", "dagster/backfill")
        try:
            runs = [f"  {r['runId'][:8]} {r['jobName']} {r['status']} "
                    f"{ {t['key']: t['value'] for t in r['tags'] if t['key'] in shown} } "
                    f"{[a['path'][-1] for a in r['assetSelection'] or []][:6]}" for r in self.runs()]
        except Exception as exc:  # noqa: BLE001 - the diagnosis must not hide the failure it explains
            runs = [f"  (runs not readable: {exc})"]
        log = self.demo.root / "daemon.log"
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(encoding="utf-8", errors="replace")) if log.exists() else ""
        lines = [line.strip()[:300] for line in text.splitlines() if any(t in line for t in self.TELLING)]
        return ("\nruns (newest first):\n" + "\n".join(runs)
                + f"\n{log} (telling lines, last 60):\n" + "\n".join(lines[-60:]))

    def wait_run(self, run_id: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.runs(run_ids=[run_id])[0]["status"]
            if status in TERMINAL_RUN:
                return status
            time.sleep(1.0)
        raise TimeoutError(f"run {run_id} still {status} after {timeout}s")


# --- screenshots -------------------------------------------------------------------

def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium: apt-get install -y chromium")


def screenshot(url: str, out: Path, size: tuple[int, int] = (1600, 1000), budget_ms: int = 15000) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="radar-chromium-")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={out.resolve()}", url]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        finally:
            stop_group(proc, grace=2.0)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if not out.exists():
        raise RuntimeError(f"Chromium wrote no screenshot for {url}")
    return out


def screenshot_after_click(url: str, out: Path, click_text: str, size: tuple[int, int] = (1600, 1200),
                           settle: float = 8.0) -> Path:
    """Open `url` in headless Chromium over the DevTools protocol, click the first element whose
    text is `click_text` (e.g. the metadata table's "[Show Markdown]") and screenshot the result."""
    import base64

    from websockets.sync.client import connect as ws_connect

    out.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    profile = tempfile.mkdtemp(prefix="radar-chromium-")
    proc = subprocess.Popen(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                    pages = [t for t in json.loads(resp.read()) if t["type"] == "page"]
                if pages:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium DevTools endpoint did not come up")
            time.sleep(0.3)
        with ws_connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            counter = iter(range(1, 10_000))

            def call(method: str, **params) -> dict:
                msg_id = next(counter)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=60))
                    if msg.get("id") == msg_id:
                        return msg.get("result", {})

            call("Page.enable")
            call("Page.navigate", url=url)
            time.sleep(settle)
            clicked = call("Runtime.evaluate", returnByValue=True, expression=(
                "(() => { const el = [...document.querySelectorAll('button, a, span, div')]"
                f".find(e => e.textContent.trim() === {json.dumps(click_text)} && !e.children.length);"
                " if (!el) return false; el.click(); return true; })()"))
            if not clicked.get("result", {}).get("value"):
                raise RuntimeError(f"no element with text {click_text!r} at {url}")
            time.sleep(3.0)
            shot = call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
    finally:
        stop_group(proc, grace=2.0)
        shutil.rmtree(profile, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--sites", type=int, default=60)
    parser.add_argument("--keep", help="keep the demo folder here instead of a temp folder")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    root = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="radar-ui-demo-"))
    started = time.perf_counter()
    demo = prepare_demo(root, n_sites=args.sites)
    print(f"demo in {root}: warehouse + {len(demo.site_ids)} sites ({time.perf_counter() - started:.0f}s)")
    # the code server serves the pictures folder at demo.pictures_url (pictures/serve.py)
    with DagsterUI(demo) as ui:
        print(f"pictures served at {demo.pictures_url} by the code server")
        print(f"Dagster UI at {ui.url} (webserver pid {ui.pids()[0]}, daemon pid {ui.pids()[1]})")
        backfill = ui.launch_backfill(["site_scores"], demo.site_ids)
        print(f"backfill {backfill}: {ui.wait_backfill(backfill, timeout=600)}")
        for keys, partition, config in (
                (["risk_map", "country_picture"], "2024", None),
                (["site_category_distribution", "site_explanations"], None,
                 {"ops": {"site_explanations": {"config": {"top_n": 5}}}})):
            run_id = ui.launch_assets(keys, partition=partition, run_config=config)
            print(f"{', '.join(keys)}: run {run_id} {ui.wait_run(run_id, timeout=600)}")
        ui.graphql("mutation { setNuxSeen }")  # no "join the community" dialog over the screenshots
        expanded = ",".join(f"global@global:{g}" for g in ("sectors", "sites", "publish", "pictures"))
        shots = [
            (f"{ui.url}/asset-groups", "dagster_asset_graph_stages.png", (1800, 1000)),
            (f"{ui.url}/asset-groups?expanded={expanded}", "dagster_asset_graph_sites_pictures.png", (1800, 1000)),
            (f"{ui.url}/assets/risk_map?partition=2024", "dagster_risk_map_asset.png", (1600, 1300)),
            # the pictures inline in the metadata table, in the UI's default 1600-px window (no dialog)
            (f"{ui.url}/assets/site_category_distribution", "dagster_site_categories_inline.png", (1600, 1400)),
            (f"{ui.url}/assets/site_explanations", "dagster_site_explanation_inline.png", (1600, 1600)),
            (f"{ui.url}/assets/country_picture?partition=2024", "dagster_country_picture_inline.png", (1600, 1400)),
            # the run settings (source, mirror, topics allowed missing, publish target) in the launchpad
            (f"{ui.url}/locations/{ui.location}/jobs/refresh_edition/playground",
             "dagster_launchpad_run_settings.png", (1800, 1100)),
        ]
        for url, name, size in shots:
            print("screenshot", screenshot(url, out / name, size))
        for asset, name in (("risk_map?partition=2024", "dagster_risk_map_preview.png"),
                            ("site_explanations", "dagster_site_explanation_preview.png")):
            print("screenshot", screenshot_after_click(f"{ui.url}/assets/{asset}", out / name,
                                                       "[Show Markdown]", size=(1600, 1200)))
    pictures = root / "pictures"
    for page, name, size in ((pictures / "risk_map" / "risk_map_2024.html", "risk_map_html.png", (1600, 1300)),
                             (pictures / "sites" / "site_categories_2024.html", "site_categories_html.png",
                              (1600, 1300))):
        print("screenshot", screenshot(page.as_uri(), out / name, size, budget_ms=3000))
    for png in (pictures / "risk_map" / "risk_map_2024.png", pictures / "sites" / "site_categories_2024.png",
                *sorted((pictures / "sites" / "explain").glob("site_01_*.png"))):
        shutil.copyfile(png, out / f"picture_{png.name.split('_SYN')[0].removesuffix('.png')}.png")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"done in {time.perf_counter() - started:.0f}s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
