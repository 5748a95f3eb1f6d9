"""`radar sites ingest FILE` end to end as a user runs it, on the PostgreSQL Dagster instance
(issue 10 target: 1M sites, store + partition registration + scoring + publish <= 20 min).

    eval "$(bash bench/pg.sh start)"
    nice python bench/bench_ingest_postgres.py --sites 100000 1000000
    # issue 10 item 2: on sqlite a 300k-site file stores, registers its partitions and warns;
    # stop once the first scoring run has started (the run itself takes hours on sqlite):
    nice python bench/bench_ingest_postgres.py --sites 300000 --instance sqlite --stop-after-registration

For each N: N SYNTHETIC sites (`radar sites generate`, seed 7, cached in $RADAR_BENCH_CACHE and
shared with bench_cli_score.py), a copy of the sample warehouse (edition 2024), a temp
DAGSTER_HOME holding dagster-postgres.yaml with a NEW database on pg.sh's server (dropped
afterwards unless --keep), temp RADAR_PUBLISHED / RADAR_BUYERS_INBOX / RADAR_OVERRIDES; then
`radar sites ingest FILE --edition 2024` in a child process. The parent timestamps every output
line and samples the child's RSS (/proc) every 0.25 s, so each phase gets its wall seconds and
peak RSS:

  intake/store     start -> the "N new, N changed, ..." summary line
  registration     summary -> the first scoring run's start (instance open, definitions import,
                   `add_dynamic_partitions` in chunks); on PostgreSQL also the first..last
                   dynamic_partitions row timestamps
  scoring runs     first run start -> "scored N site(s)"; on PostgreSQL per run: start -> step
                   start, asset body (scoring SQL + writes), per-partition materialization events
  publish          "scored" -> end of the command

Afterwards it checks what a user relies on: every site scored for 2024, the partitions
registered, the published snapshot holding every site. Load average is sampled throughout
(the machine may be shared: wall times then include waiting for a core; CPU seconds do not).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from bench_cli_score import sites_file

TARGET_S = {1_000_000: 20 * 60.0}
# issue 24 item 3: 100k sites on the default sqlite instance <= 60 s end to end, with the
# per-partition materialization events (each scoring run's body end -> its last materialization)
# <= 50 % of it
SQLITE_TARGET = {100_000: (60.0, 0.5)}
RADAR = [C.PYTHON, "-m", "radar_pipeline.cli"]
SUMMARY = re.compile(r": (\d+) new, (\d+) changed, (\d+) unchanged, (\d+) rejected")
PHASES = ("intake/store", "registration", "scoring runs", "publish")


# --------------------------------------------------------------------------- PostgreSQL

def pg_connect(db: str):
    import psycopg2

    con = psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                           user=os.environ["DAGSTER_PG_USER"], password=os.environ.get("DAGSTER_PG_PASSWORD", ""),
                           dbname=db)
    con.autocommit = True
    return con


def pg_admin(sql: str) -> None:
    con = pg_connect(os.environ.get("DAGSTER_PG_DB", "dagster"))
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


def pg_details(db: str) -> dict:
    """Registration and per-run timings from the instance's own tables (epoch seconds)."""
    con = pg_connect(db)
    try:
        cur = con.cursor()
        cur.execute("select count(*), extract(epoch from min(create_timestamp)), extract(epoch from "
                    "max(create_timestamp)) from dynamic_partitions where partitions_def_name = 'sites'")
        n_parts, reg_first, reg_last = cur.fetchone()
        reg_first, reg_last = (None if v is None else float(v) for v in (reg_first, reg_last))
        cur.execute("""
            select r.run_id, r.pipeline_name, r.status,
                   min(extract(epoch from e.timestamp)) filter (where e.dagster_event_type = 'PIPELINE_START'),
                   min(extract(epoch from e.timestamp)) filter (where e.dagster_event_type = 'STEP_START'),
                   min(extract(epoch from e.timestamp)) filter (where e.dagster_event_type in
                       ('ASSET_CHECK_EVALUATION', 'STEP_OUTPUT', 'STEP_FAILURE')),
                   count(*) filter (where e.dagster_event_type = 'ASSET_MATERIALIZATION'),
                   max(extract(epoch from e.timestamp)) filter (where e.dagster_event_type = 'ASSET_MATERIALIZATION'),
                   max(extract(epoch from e.timestamp)) filter (where e.dagster_event_type in
                       ('PIPELINE_SUCCESS', 'PIPELINE_FAILURE'))
            from runs r join event_logs e on e.run_id = r.run_id
            group by r.id, r.run_id, r.pipeline_name, r.status order by r.id""")
        runs = [dict(zip(("run_id", "job", "status", "start", "step_start", "body_end", "materializations",
                          "last_materialization", "end"),
                         [*row[:3], *(v if v is None or isinstance(v, int) else float(v)
                                              for v in row[3:])])) for row in cur.fetchall()]
    finally:
        con.close()
    # both timestamp columns are naive UTC (Dagster writes utcnow; the server runs in UTC), so
    # extract(epoch ...) compares with the parent's time.time()
    return {"partitions": n_parts, "reg_first": reg_first, "reg_last": reg_last, "runs": runs}


def sqlite_details(home: Path) -> dict:
    """pg_details for the default sqlite instance: the runs from history/runs.db, each run's events
    from its own shard history/runs/<run_id>.db (naive UTC timestamps, as Dagster writes them)."""
    import sqlite3
    from datetime import UTC, datetime

    def epoch(text):
        return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    runs = []
    with sqlite3.connect(home / "history" / "runs.db") as con:
        listed = con.execute("select run_id, pipeline_name, status from runs order by id").fetchall()
    for run_id, job, status in listed:
        shard = home / "history" / "runs" / f"{run_id}.db"
        if not shard.exists():
            continue
        with sqlite3.connect(shard) as con:
            row = con.execute("""
                select min(timestamp) filter (where dagster_event_type = 'PIPELINE_START'),
                       min(timestamp) filter (where dagster_event_type = 'STEP_START'),
                       min(timestamp) filter (where dagster_event_type in
                           ('ASSET_CHECK_EVALUATION', 'STEP_OUTPUT', 'STEP_FAILURE')),
                       count(*) filter (where dagster_event_type = 'ASSET_MATERIALIZATION'),
                       max(timestamp) filter (where dagster_event_type = 'ASSET_MATERIALIZATION'),
                       max(timestamp) filter (where dagster_event_type in ('PIPELINE_SUCCESS', 'PIPELINE_FAILURE'))
                from event_logs""").fetchone()
        runs.append({"run_id": run_id, "job": job, "status": status, "start": epoch(row[0]),
                     "step_start": epoch(row[1]), "body_end": epoch(row[2]), "materializations": row[3],
                     "last_materialization": epoch(row[4]), "end": epoch(row[5])})
    return {"runs": runs}


# --------------------------------------------------------------------------- the measured child

class Watch:
    """Runs the command, timestamps its output lines, samples its RSS and the load average."""

    def __init__(self, cmd: list[str], env: dict, stop_when=None):
        self.cmd, self.env, self.stop_when = cmd, env, stop_when
        self.lines: list[tuple[float, str]] = []
        self.rss: list[tuple[float, float, float]] = []  # (time, RSS MiB, CPU seconds so far)
        self.load: list[float] = []
        self.stopped = False
        # the command's own peak (VmHWM, sampled): wait4's ru_maxrss would include this bench
        # process, whose image the child's replaced at exec (bench/_common.peak_rss_mib)
        self.hwm = 0.0

    def run(self) -> tuple[int, float, float]:
        self.t0 = time.time()
        proc = subprocess.Popen(self.cmd, env=self.env, cwd=C.REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        done = threading.Event()

        def sample() -> None:
            status, stat = Path(f"/proc/{proc.pid}/status"), Path(f"/proc/{proc.pid}/stat")
            tick = os.sysconf("SC_CLK_TCK")
            k = 0
            while not done.is_set():
                try:
                    text = status.read_text().splitlines()
                    kb = next(int(ln.split()[1]) for ln in text if ln.startswith("VmRSS"))
                    self.hwm = max(self.hwm, next(int(ln.split()[1]) for ln in text if ln.startswith("VmHWM")) / 1024)
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    self.rss.append((time.time(), kb / 1024, (int(fields[11]) + int(fields[12])) / tick))
                except (OSError, StopIteration, ValueError, IndexError):
                    pass
                if k % 20 == 0:
                    self.load.append(os.getloadavg()[0])
                k += 1
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for line in proc.stdout:
            now = time.time()
            self.lines.append((now, line.rstrip("\n")))
            print(f"  {now - self.t0:8.1f}s | {line.rstrip()[:200]}", flush=True)
            if self.stop_when and not self.stopped and self.stop_when(line):
                self.stopped = True
                proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        self.t1 = time.time()
        return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, self.hwm

    def first(self, pred) -> float | None:
        return next((t for t, line in self.lines if pred(line)), None)

    def peak(self, a: float | None, b: float | None) -> float | None:
        if a is None or b is None:
            return None
        xs = [mib for t, mib, _ in self.rss if a <= t <= b]
        return max(xs) if xs else None

    def cpu(self, a: float | None, b: float | None) -> float | None:
        """CPU seconds (user + sys) the child used between two times (from the samples)."""
        if a is None or b is None:
            return None
        before = [c for t, _, c in self.rss if t <= a]
        upto = [c for t, _, c in self.rss if t <= b]
        return (upto[-1] if upto else 0.0) - (before[-1] if before else 0.0)


def child_count(env: dict, code: str) -> int:
    out = subprocess.run([C.PYTHON, "-c", code], env=env, cwd=C.REPO, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def measure(n: int, instance: str, stop_after_registration: bool, keep: bool) -> dict:
    src = C.sample_warehouse(2024)
    t = time.perf_counter()
    file = sites_file(n, src)
    gen_s = time.perf_counter() - t
    tmp = Path(tempfile.mkdtemp(prefix=f"radar-bench-ingest-{n}-", dir=C.CACHE))
    wh = C.copy_warehouse(src, tmp / "warehouse.duckdb")
    home = tmp / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "RADAR_PUBLISHED": str(tmp / "published" / "radar.duckdb"),
           "RADAR_BUYERS_INBOX": str(tmp / "buyers"), "RADAR_OVERRIDES": str(tmp / "overrides"),
           "RADAR_SITES_INBOX": str(tmp / "inbox")}
    db = None
    if instance == "postgres":
        for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER"):
            if var not in os.environ:
                raise SystemExit(f"{var} is not set: run `eval \"$(bash bench/pg.sh start)\"` first")
        db = f"radar_bench_ingest_{n}_{os.getpid()}"
        pg_admin(f"create database {db}")
        env["DAGSTER_PG_DB"] = db
        shutil.copyfile(C.REPO / "dagster-postgres.yaml", home / "dagster.yaml")
    # else: `radar` writes the default sqlite dagster.yaml into the empty DAGSTER_HOME
    cmd = [*RADAR, "sites", "ingest", str(file), "--warehouse", str(wh), "--edition", "2024"]
    print(f"\n== {n:,} sites, {instance} instance{f' (database {db})' if db else ''}: {' '.join(cmd[2:])}",
           flush=True)
    try:
        load_before = os.getloadavg()[0]
        first_run = (lambda line: " - score_sites - " in line) if stop_after_registration else None
        watch = Watch(cmd, env, stop_when=first_run)
        rc, cpu, maxrss = watch.run()
        r: dict = {"n": n, "instance": instance, "rc": rc, "wall": watch.t1 - watch.t0, "cpu": cpu, "maxrss": maxrss,
                   "generate_s": gen_s, "load_before": load_before, "load_max": max(watch.load, default=load_before),
                   "load_mean": sum(watch.load) / len(watch.load) if watch.load else load_before,
                   "stopped": watch.stopped}
        t_stored = watch.first(lambda s: SUMMARY.search(s) is not None)
        m = next((SUMMARY.search(s) for _, s in watch.lines if SUMMARY.search(s)), None)
        r["new"] = int(m.group(1)) if m else None
        r["warning"] = next((s for _, s in watch.lines if "WARNING" in s and "partitions" in s), None)
        t_scored = watch.first(lambda s: s.startswith("scored "))
        try:
            details = pg_details(db) if db else sqlite_details(home)
        except Exception as exc:  # noqa: BLE001 — a command that died before creating the instance's tables
            print(f"no instance details: {exc}", file=sys.stderr)
            details = None
        t_run = watch.first(lambda s: " - score_sites - " in s)
        score_runs = [x for x in details["runs"] if x["job"] == "score_sites"] if details else []
        if score_runs and score_runs[0]["start"]:
            t_run = min(t_run or 1e18, score_runs[0]["start"])
        bounds = [watch.t0, t_stored, t_run, t_scored, watch.t1]
        r["phases"] = {}
        for name, a, b in zip(PHASES, bounds, bounds[1:]):
            if name == "scoring runs" and watch.stopped:
                break
            if a is not None and b is not None:
                r["phases"][name] = (b - a, watch.peak(a, b), watch.cpu(a, b))
        if details:
            r["runs"] = details["runs"]
        if details and "partitions" in details:
            r["partitions"] = details["partitions"]
            r["reg_span"] = (details["reg_last"] - details["reg_first"]) if details["reg_first"] else None
        elif rc == 0 or watch.stopped:
            r["partitions"] = child_count(env, "import dagster as dg; i = dg.DagsterInstance.get(); "
                                               "print(len(i.get_dynamic_partitions('sites')))")
        if rc == 0 and not watch.stopped:
            import duckdb

            con = duckdb.connect(str(wh), read_only=True)
            r["scored"] = con.sql("select count(*) from site_scores where edition = 2024 and final_score is not null"
                                  ).fetchall()[0][0]
            r["stored"] = con.sql("select count(*) from sites").fetchall()[0][0]
            con.close()
            pub = duckdb.connect(env["RADAR_PUBLISHED"], read_only=True)
            r["published"] = pub.sql("select count(*) from site_scores_latest").fetchall()[0][0]
            pub.close()
    finally:  # also when the command or a check failed: no database or 1 GB folder left behind
        if db and not keep:
            pg_admin(f"drop database {db} with (force)")
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}" + (f" and database {db}" if db else ""))
    return r


def report(r: dict) -> None:
    n = r["n"]
    stopped = " (stopped after registration)" if r["stopped"] else ""
    print(f"\n-- {n:,} sites on {r['instance']}: exit {r['rc']}{stopped}, {r['wall']:.1f} s wall, "
          f"{r['cpu']:.1f} s CPU, peak RSS {r['maxrss']:.0f} MiB; load average {r['load_before']:.1f} before, "
          f"mean {r['load_mean']:.1f}, max {r['load_max']:.1f} on {os.cpu_count()} cores")
    for name, (secs, peak, cpu) in r["phases"].items():
        print(f"   {name:<14} {secs:8.1f} s wall {cpu or 0:8.1f} s CPU   peak RSS {peak or 0:6.0f} MiB")
    if r.get("reg_span") is not None:
        print(f"   dynamic_partitions: {r['partitions']:,} rows written over {r['reg_span']:.1f} s (first to last)")
    elif r.get("partitions") is not None:
        print(f"   dynamic partitions registered: {r['partitions']:,}")
    if r.get("warning"):
        print(f"   warning shown: {r['warning'][:400]}")
    for run in r.get("runs", []):
        def d(a, b):
            return f"{b - a:6.1f}" if a is not None and b is not None else "     -"
        print(f"   run {run['job']:<17} {run['status']:<8} total {d(run['start'], run['end'])} s: to step "
              f"{d(run['start'], run['step_start'])}, body {d(run['step_start'], run['body_end'])}, "
              f"{run['materializations']:>7} materializations {d(run['body_end'], run['last_materialization'])}")
    if "scored" in r:
        ok = r["scored"] == r["stored"] == r["published"] == r["new"]
        print(f"   check: {r['new']:,} new, {r['stored']:,} stored, {r['scored']:,} scored for 2024, "
              f"{r['published']:,} in the published site_scores_latest, {r['partitions']:,} partitions: "
              f"{'OK' if ok and r['partitions'] == r['new'] else 'MISMATCH'}")
    score_runs = [run for run in r.get("runs", []) if run["job"] == "score_sites"]
    spans = [run["last_materialization"] - run["body_end"] for run in score_runs
             if run["last_materialization"] is not None and run["body_end"] is not None]
    if spans:
        events = sum(spans)
        r["events_s"] = events
        print(f"   per-partition materialization events: {events:.1f} s over {len(spans)} scoring run(s) = "
              f"{100 * events / r['wall']:.0f} % of the {r['wall']:.1f} s end to end")
        wall_target, share_target = SQLITE_TARGET.get(n, (None, None)) if r["instance"] == "sqlite" else (None, None)
        if wall_target and not r["stopped"]:
            ok = r["rc"] == 0 and r["wall"] <= wall_target and events <= share_target * r["wall"]
            print(f"   target <= {wall_target:.0f} s end to end with the events <= {100 * share_target:.0f} % "
                  f"of it: {'OK' if ok else 'MISSED'}")
    target = TARGET_S.get(n)
    if target and r["instance"] == "postgres" and not r["stopped"]:
        print(f"   target <= {target / 60:.0f} min: {'OK' if r['rc'] == 0 and r['wall'] <= target else 'MISSED'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, nargs="+", default=[100_000])
    ap.add_argument("--instance", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--stop-after-registration", action="store_true",
                    help="stop the command once the first scoring run has started (the sqlite check)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder and the PostgreSQL database")
    ap.add_argument("--json", help="also append each result as one JSON line to this file")
    args = ap.parse_args()
    print(f"machine: {C.machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; nice {os.nice(0)}")
    results = []
    for n in args.sites:
        r = measure(n, args.instance, args.stop_after_registration, args.keep)
        report(r)
        results.append(r)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(r, default=str) + "\n")
    print("\n| sites | instance | exit | wall s | CPU s | peak RSS MiB | "
          + " | ".join(f"{p} s (CPU s)" for p in PHASES) + " | load mean/max |")
    print("|---:|---|---:|---:|---:|---:|" + "---:|" * len(PHASES) + "---|")
    for r in results:
        cells = [f"{r['phases'][p][0]:.1f} ({r['phases'][p][2] or 0:.1f})" if p in r["phases"] else "-"
                 for p in PHASES]
        print(f"| {r['n']:,} | {r['instance']} | {r['rc']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['maxrss']:.0f} | "
              + " | ".join(cells) + f" | {r['load_mean']:.1f}/{r['load_max']:.1f} |")
    if any(r["rc"] != 0 and not r["stopped"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
