"""Crash safety of `radar sites ingest` at full size (issue 11 item 2): SIGKILL an ingest of a
200k-site file 10 times at random points, let one run finish, then check every valid site is
stored once and scored once and nothing is left unscored.

    python bench/bench_ingest_crash.py [--sites 200000] [--kills 10] [--max-delay 600]

The test suite runs the same procedure (radar_pipeline_tests/test_crash_safety.py,
`run_ingest_kills`) at 2000 sites. At 200k sites use the PostgreSQL instance (`eval
"$(bench/pg.sh start)"` and DAGSTER_HOME holding dagster-postgres.yaml): on sqlite the
scoring runs alone take ~27 ms per partition (200k ~ 90 min per full pass).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common as C


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=200_000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--max-delay", type=float, default=600.0, help="latest kill, seconds after the start")
    args = ap.parse_args()
    from radar_pipeline_tests.test_crash_safety import run_ingest_kills

    tmp = Path(tempfile.mkdtemp(prefix="radar-bench-crash-", dir=C.CACHE if C.CACHE.exists() else None))
    wh = C.copy_warehouse(C.sample_warehouse(2024), tmp / "w.duckdb")
    started = time.perf_counter()
    r = run_ingest_kills(tmp, wh, args.sites, kills=args.kills, max_delay=args.max_delay,
                         log=lambda m: print(m, flush=True))
    ok = {
        "final run exit 0": r["final_rc"] == 0,
        "every valid site stored": r["stored"] == r["valid"],
        "stored once (one history row each)": set(r["history_per_site"].values()) <= {1},
        "scored once (one score row each)": r["scored"].keys() == r["valid"] and set(r["scored"].values()) <= {1},
        "no duplicate explanation rows": r["duplicate_factor_rows"] == 0,
        "nothing left unscored": not r["stale"],
    }
    print(f"\nmachine: {C.machine()}; {args.sites} sites, {r['killed']} of {args.kills} ingests killed, "
          f"{time.perf_counter() - started:.0f} s in all")
    for name, passed in ok.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")
    if not all(ok.values()):
        print(r["final_out"][-3000:])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
