"""Start-up cost every user and every Dagster process pays.

    python bench/bench_startup.py [--runs 7]

Median wall time over --runs fresh processes of:
  * `radar --help` (the console script's work: python -m radar_pipeline.cli --help)
  * `import radar_pipeline.definitions` (code server, each run worker, `radar refresh`)
and, for each, which heavy libraries the process ended up importing. Targets (issue 10):
`radar --help` <= 0.5 s, definitions import <= 2 s. A fresh interpreter alone (`python -c
pass`) is measured too: it is the floor of both figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

HEAVY = ("dagster", "pandas", "pandera", "matplotlib", "polars", "duckdb", "pyarrow")
REPORT = (f"import sys, json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), "
          "file=sys.stderr)")
CASES = {
    "python -c pass (floor)": "pass",
    "radar --help": ("import sys; sys.argv = ['radar', '--help']\n"
                     "from radar_pipeline.cli import main\n"
                     "try:\n    main()\nexcept SystemExit:\n    pass\n" + REPORT),
    "import radar_pipeline.definitions": "import radar_pipeline.definitions\n" + REPORT,
}
TARGETS = {"radar --help": 0.5, "import radar_pipeline.definitions": 2.0}


def once(code: str) -> tuple[float, float, list[str], str]:
    """Wall and CPU (user + sys) seconds of one fresh process; CPU is the figure to trust on a
    busy shared machine, where wall time includes waiting for a core."""
    started = time.perf_counter()
    proc = subprocess.Popen([C.PYTHON, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=C.REPO)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(err[-2000:])
    lines = [line for line in err.splitlines() if line.strip()]
    modules = json.loads(lines[-1]) if lines and lines[-1].startswith("[") else []
    # anything else on stderr is what a user would see (e.g. warnings)
    noise = "\n".join(line for line in lines if not line.startswith("["))
    return wall, usage.ru_utime + usage.ru_stime, modules, noise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"machine: {C.machine()}; load average {os.getloadavg()[0]:.1f}")
    rows = []
    for name, code in CASES.items():
        once(code)  # warm the page cache and __pycache__
        walls, cpus, modules, noise = [], [], [], ""
        for _ in range(args.runs):
            wall, cpu, modules, noise = once(code)
            walls.append(wall)
            cpus.append(cpu)
        med, cpu = statistics.median(walls), statistics.median(cpus)
        target = TARGETS.get(name)
        verdict = "" if target is None else ("OK" if med <= target else "OVER TARGET")
        rows.append((name, med, min(walls), cpu, modules, target, verdict))
        print(f"{name}: median {med:.2f} s wall, {cpu:.2f} s CPU (min wall {min(walls):.2f}, {args.runs} runs); "
              f"heavy modules "
              f"{modules or 'none'} {verdict}", flush=True)
        if noise:
            print(f"  stderr a user would see:\n{noise}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print("\n| what | median wall s | min wall s | median CPU s | heavy modules loaded | target | |\n"
          "|---|---:|---:|---:|---|---|---|")
    for name, med, low, cpu, modules, target, verdict in rows:
        print(f"| {name} | {med:.2f} | {low:.2f} | {cpu:.2f} | {', '.join(modules) or 'none'} | "
              f"{f'<= {target} s' if target else '-'} | {verdict} |")


if __name__ == "__main__":
    main()
