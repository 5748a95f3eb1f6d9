"""`radar score` as a user runs it, beside its floor: wall time, CPU and peak RSS of whole cold
processes.

    python bench/bench_cli_score.py --n 200000 1000000 [--explain] [--chunk-lines 50000] [--parts]

For each N: generates N SYNTHETIC sites once (`radar sites generate`, cached in
$RADAR_BENCH_CACHE), then, in this order and each in a fresh child process (Python start,
imports, read, work, write: the cold figure), (1) the floor: DuckDB `read_json` of the same file
-> parquet, (2) `radar score --sites FILE --edition 2024 --out X.parquet` against the sample
warehouse. Reports each one's wall seconds, CPU seconds and peak RSS (the child's own VmHWM,
C.spawn_measured), the ratio score / floor (wall and CPU: on a shared machine the CPU ratio is the
steadier), the duckdb version and `uptime` before and after. Targets (issue 24 item 2):
score <= 2.0x read_json and <= 1.5 GiB at 1M; 200k <= 5 s. A missed target is printed as MISSED.
`radar score` reads a clean file with its native intake (intake/native.py: msgspec checks the lines,
DuckDB reads the file; RADAR_NATIVE_INTAKE=0 gives the chunked line-exact path for comparison) and
parses a big file in 2 worker processes when the load allows (intake/workers.py);
RADAR_INTAKE_WORKERS=0 or 2 fixes it (on a machine loaded by other work, fix it: the automatic
choice follows the load average). The peak RSS is the main process's (the target's figure); "with
workers" is the peak of the sum of the process tree's RSS (the workers, ~0.2 GiB each, peak during
the intake, before the scoring's peak). CPU seconds include the workers' (reaped children).
--parts adds, per N, two cold children that time parts of the native intake alone (STRICT_READ,
MSGSPEC_CHECK below): how much of the 2.0x they take before any scoring."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

RATIO = 2.0  # radar score <= 2.0x read_json -> parquet of the same file (wall)
# --parts: two of the things `radar score`'s native intake cannot leave out, each alone in a cold
# child: DuckDB's read of the file with the format's types declared and the answers' rules checked,
# into a table (native.read_statement, what native.load's reader thread runs), and msgspec's
# strict check of every line on one core (native.check_file; `radar score` runs it in its workers
# while DuckDB reads). They say how much of the 2.0x the intake alone takes before any scoring.
STRICT_READ = """import sys, duckdb
from pathlib import Path
from radar_pipeline.platform.warehouse import sql_literal
from radar_pipeline.sites.intake import native
from radar_pipeline.sites.intake.fields import load_saq_fields, saq_specs
con = duckdb.connect()
con.execute("set memory_limit = '1GB'")  # as radar score's connection (RADAR_MEMORY_LIMIT's default)
con.execute(f"set temp_directory = {sql_literal(sys.argv[2])}")
con.execute(native.read_statement(con, Path(sys.argv[1]), saq_specs(load_saq_fields())))
"""
MSGSPEC_CHECK = """import sys
from pathlib import Path
from radar_pipeline.sites.intake import native
from radar_pipeline.sites.intake.fields import load_saq_fields
n, blank, failed = native.check_file(Path(sys.argv[1]), native.questions_of(load_saq_fields()))
assert not blank and not failed, (n, blank, failed)
"""
TARGETS = {200_000: (5.0, 1536.0), 1_000_000: (None, 1536.0)}  # n -> (seconds or None, MiB)
RADAR = [C.PYTHON, "-m", "radar_pipeline.cli"]
READ_JSON = ("import duckdb, sys; duckdb.connect().execute(f\"copy (select * from read_json('{sys.argv[1]}')) "
             "to '{sys.argv[2]}' (format parquet, compression snappy)\")")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def sites_file(n: int, warehouse: Path) -> Path:
    path = C.CACHE / f"cli_score_sites_{n}.jsonl"
    if not path.exists():
        print(f"[setup] generating {n} sites -> {path}", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".partial.jsonl")
        subprocess.run([*RADAR, "sites", "generate", "--n", str(n), "--seed", "7", "--out", str(tmp),
                        "--warehouse", str(warehouse)], check=True, stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def run_measured(cmd: list[str]) -> tuple[float, float, float, float, str]:
    """Wall seconds, CPU seconds (user + sys, the process's and its workers') and peak RSS (MiB) of
    one child process, and the peak of its process tree's RSS (the process and its worker processes,
    sampled every 50 ms: the sum of their VmRSS). CPU seconds are the figure to compare on a shared
    machine, where wall time includes waiting."""
    import threading

    tree = [0.0]
    done = threading.Event()

    def watch() -> None:
        # the child is the newest process whose parent is this one: found by its command line
        while not done.is_set():
            total = 0.0
            for pid in _tree_pids(os.getpid(), cmd):
                try:
                    total += _rss_mib(Path(f"/proc/{pid}/status").read_text())
                except (OSError, StopIteration, ValueError):
                    pass
            tree[0] = max(tree[0], total)
            done.wait(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, wall, cpu, peak, out = C.spawn_measured(cmd)
    finally:
        done.set()
        watcher.join()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return wall, cpu, peak, max(tree[0], peak), out


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _tree_pids(parent: int, cmd: list[str]) -> list[int]:
    """The measured child of `parent` (running `cmd`) and all its descendants."""
    want = "\0".join(cmd).encode()
    roots = []
    for pid in _children(parent):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0") == want:
                roots.append(pid)
        except OSError:
            pass
    out, todo = [], roots
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(_children(pid))
    return out


def _rss_mib(status: str) -> float:
    return next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:")) / 1024


def main() -> None:
    import duckdb

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[200_000])
    ap.add_argument("--explain", action="store_true", help="also write the explanation rows")
    ap.add_argument("--chunk-lines", type=int, default=None)
    ap.add_argument("--parts", action="store_true",
                    help="also time the native intake's DuckDB read alone and msgspec's check alone")
    args = ap.parse_args()
    warehouse = C.sample_warehouse(2024)
    print(f"machine: {C.machine()}, duckdb {duckdb.__version__}")
    print(f"uptime at the start: {uptime()}; RADAR_INTAKE_WORKERS={os.environ.get('RADAR_INTAKE_WORKERS', '')!r}",
          flush=True)
    rows = []
    for n in args.n:
        file = sites_file(n, warehouse)
        floor_out = C.CACHE / f"cli_score_read_json_{n}.parquet"
        f_wall, f_cpu, f_rss, _, _ = run_measured([C.PYTHON, "-c", READ_JSON, str(file), str(floor_out)])
        floor_out.unlink(missing_ok=True)
        out = C.CACHE / f"cli_score_out_{n}.parquet"
        cmd = [*RADAR, "score", "--sites", str(file), "--edition", "2024", "--out", str(out),
               "--warehouse", str(warehouse)]
        if args.explain:
            cmd.append("--explain")
        if args.chunk_lines:
            cmd += ["--chunk-lines", str(args.chunk_lines)]
        wall, cpu, rss, tree, log = run_measured(cmd)
        print(log.strip().splitlines()[-1] if log.strip() else "")
        seconds, mib = TARGETS.get(n, (None, 1536.0))
        ok = wall <= RATIO * f_wall and rss <= mib and (seconds is None or wall <= seconds)
        target = f"<= {RATIO}x read_json, <= {mib:.0f} MiB" + (f", <= {seconds:.0f} s" if seconds else "")
        verdict = "OK" if ok else "MISSED"
        load = os.getloadavg()[0]
        rows.append((n, f_wall, f_cpu, f_rss, wall, cpu, rss, tree, target, verdict, load))
        print(f"n={n}: read_json -> parquet {f_wall:.1f} s wall, {f_cpu:.1f} s CPU, {f_rss:.0f} MiB; "
              f"radar score {wall:.1f} s wall, {cpu:.1f} s CPU, {rss:.0f} MiB peak RSS "
              f"({tree:.0f} MiB with its workers); ratio "
              f"{wall / f_wall:.2f}x wall, {cpu / f_cpu:.2f}x CPU (target {target}) {verdict}; "
              f"load {load:.1f}", flush=True)
        out.unlink(missing_ok=True)
        if args.parts:
            spill = C.CACHE / f"cli_score_parts_spill_{n}"
            r_wall, r_cpu, r_rss, _, _ = run_measured([C.PYTHON, "-c", STRICT_READ, str(file), str(spill)])
            shutil.rmtree(spill, ignore_errors=True)
            c_wall, c_cpu, _, _, _ = run_measured([C.PYTHON, "-c", MSGSPEC_CHECK, str(file)])
            print(f"n={n} parts (cold processes, after the pair above): DuckDB's typed read into a table "
                  f"{r_wall:.1f} s wall, {r_cpu:.1f} s CPU, {r_rss:.0f} MiB = {r_wall / f_wall:.2f}x the floor's "
                  f"wall; msgspec's check on one core {c_wall:.1f} s wall, {c_cpu:.1f} s CPU; the two together "
                  f"{(r_cpu + c_cpu) / f_cpu:.2f}x the floor's CPU (radar score's: {cpu / f_cpu:.2f}x)", flush=True)
    print(f"\nuptime at the end: {uptime()}")
    print("\n| sites | read_json wall s | CPU s | MiB | radar score wall s | CPU s | peak RSS MiB | with workers MiB "
          "| ratio wall | ratio CPU | target | | load |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for n, fw, fc, fr, wall, cpu, rss, tree, target, verdict, load in rows:
        print(f"| {n:,} | {fw:.1f} | {fc:.1f} | {fr:.0f} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {tree:.0f} | "
              f"{wall / fw:.2f}x | {cpu / fc:.2f}x | {target} | {verdict} | {load:.1f} |")


if __name__ == "__main__":
    main()
