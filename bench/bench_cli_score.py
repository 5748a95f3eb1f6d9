"""`radar score` as a user runs it: wall time and peak RSS of the whole command.

    python bench/bench_cli_score.py --n 200000 1000000 [--explain] [--chunk-lines 50000]

For each N: generates N SYNTHETIC sites once (`radar sites generate`, cached in
$RADAR_BENCH_CACHE), then runs `radar score --sites FILE --edition 2024 --out X.parquet`
against the sample warehouse in a child process and reports its wall seconds and peak
RSS (the child's own ru_maxrss, via wait4). Targets (issue 10): 200k <= 10 s and <= 1 GiB;
1M <= 40 s and <= 2 GiB.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TARGETS = {200_000: (10.0, 1024.0), 1_000_000: (40.0, 2048.0)}  # n -> (seconds, MiB)
RADAR = [C.PYTHON, "-m", "radar_pipeline.cli"]


def sites_file(n: int, warehouse: Path) -> Path:
    path = C.CACHE / f"cli_score_sites_{n}.jsonl"
    if not path.exists():
        print(f"[setup] generating {n} sites -> {path}", file=sys.stderr, flush=True)
        tmp = path.with_suffix(".partial.jsonl")
        subprocess.run([*RADAR, "sites", "generate", "--n", str(n), "--seed", "7", "--out", str(tmp),
                        "--warehouse", str(warehouse)], check=True, stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def run_measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + sys) and peak RSS (MiB) of one child process. CPU
    seconds are the figure to compare on a shared machine, where wall time includes waiting."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[200_000])
    ap.add_argument("--explain", action="store_true", help="also write the explanation rows")
    ap.add_argument("--chunk-lines", type=int, default=None)
    args = ap.parse_args()
    warehouse = C.sample_warehouse(2024)
    print(f"machine: {C.machine()}")
    rows = []
    for n in args.n:
        file = sites_file(n, warehouse)
        out = C.CACHE / f"cli_score_out_{n}.parquet"
        cmd = [*RADAR, "score", "--sites", str(file), "--edition", "2024", "--out", str(out),
               "--warehouse", str(warehouse)]
        if args.explain:
            cmd.append("--explain")
        if args.chunk_lines:
            cmd += ["--chunk-lines", str(args.chunk_lines)]
        wall, cpu, rss, log = run_measured(cmd)
        print(log.strip().splitlines()[-1] if log.strip() else "")
        target = TARGETS.get(n)
        verdict = "" if not target else ("OK" if wall <= target[0] and rss <= target[1] else "OVER TARGET")
        rows.append((n, wall, cpu, rss, target, verdict))
        print(f"radar score n={n}: {wall:.1f} s wall, {cpu:.1f} s CPU, {rss:.0f} MiB peak RSS "
              f"{f'(target <= {target[0]:.0f} s, <= {target[1]:.0f} MiB) {verdict}' if target else ''}",
              flush=True)
        out.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    print(f"\nload average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
    print("\n| sites | wall s | CPU s | peak RSS MiB | target | |\n|---:|---:|---:|---:|---|---|")
    for n, wall, cpu, rss, target, verdict in rows:
        t = f"<= {target[0]:.0f} s, <= {target[1]:.0f} MiB" if target else "-"
        print(f"| {n:,} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {t} | {verdict} |")


if __name__ == "__main__":
    main()
