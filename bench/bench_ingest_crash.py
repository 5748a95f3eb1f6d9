"""Crash safety of `radar sites ingest` at full size (issue 11 item 2): SIGKILL an ingest of a
200k-site file 10 times at random points, let one run finish, then check every valid site is
stored once and scored once and nothing is left unscored.

    eval "$(bash bench/pg.sh start)"
    python bench/bench_ingest_crash.py [--sites 200000] [--kills 10] [--max-delay 600] [--instance postgres]

The test suite runs the same procedure (radar_pipeline_tests/test_crash_safety.py,
`run_ingest_kills`) at 2000 sites on sqlite. At 200k sites the bench uses the PostgreSQL
instance by default: it creates a database of its own on pg.sh's server (DAGSTER_PG_*), writes
dagster-postgres.yaml into the ingests' DAGSTER_HOME and drops the database at the end. On
sqlite (--instance sqlite) the scoring runs took ~27 ms per partition with Dagster's own sqlite
event log (200k ~ 90 min per full pass); with the project's batching storage 0.75 ms (README,
'Dagster instance'), not re-run with this bench.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common as C


@contextmanager
def postgres_home(home: Path):
    """A database of its own on the DAGSTER_PG_* server (pg.sh's, shared with other users:
    never the shared `dagster` database) and a DAGSTER_HOME whose dagster.yaml points at it.
    Yields the environment the ingests need."""
    import psycopg2

    missing = [v for v in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not set: run `eval \"$(bash bench/pg.sh start)\"` first "
                         "(or --instance sqlite)")
    db = f"bench_crash_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                             user=os.environ["DAGSTER_PG_USER"], password=os.environ.get("DAGSTER_PG_PASSWORD", ""),
                             dbname=os.environ.get("DAGSTER_PG_DB", "dagster"))
    admin.autocommit = True
    admin.cursor().execute(f"create database {db}")
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((C.REPO / "dagster-postgres.yaml").read_text())
    try:
        # the two settings dagster-postgres.yaml asks for (else one round trip per event row)
        yield {"DAGSTER_PG_DB": db, "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
               "DAGSTER_EVENT_BATCH_SIZE": "1000"}
    finally:
        admin.cursor().execute(f"drop database if exists {db} with (force)")
        admin.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=200_000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--max-delay", type=float, default=600.0, help="latest kill, seconds after the start")
    ap.add_argument("--instance", choices=["postgres", "sqlite"], default="postgres")
    args = ap.parse_args()
    from radar_pipeline_tests.test_crash_safety import run_ingest_kills

    tmp = Path(tempfile.mkdtemp(prefix="radar-bench-crash-", dir=C.CACHE if C.CACHE.exists() else None))
    wh = C.copy_warehouse(C.sample_warehouse(2024), tmp / "w.duckdb")
    started = time.perf_counter()
    with (postgres_home(tmp / "dagster_home") if args.instance == "postgres" else _no_env()) as env:
        r = run_ingest_kills(tmp, wh, args.sites, kills=args.kills, max_delay=args.max_delay, env=env,
                             log=lambda m: print(f"[{time.perf_counter() - started:6.0f} s] {m}", flush=True))
    ok = {
        "final run exit 0": r["final_rc"] == 0,
        "every valid site stored": r["stored"] == r["valid"],
        "stored once (one history row each)": set(r["history_per_site"].values()) <= {1},
        "scored once (one score row each)": r["scored"].keys() == r["valid"] and set(r["scored"].values()) <= {1},
        "no duplicate explanation rows": r["duplicate_factor_rows"] == 0,
        "nothing left unscored": not r["stale"],
    }
    print(f"\nmachine: {C.machine()}; instance: {args.instance}; {args.sites} sites, "
          f"{r['killed']} of {args.kills} ingests killed, "
          f"{time.perf_counter() - started:.0f} s in all")
    for name, passed in ok.items():
        print(f"  {'ok  ' if passed else 'FAIL'} {name}")
    if not all(ok.values()):
        print(r["final_out"][-3000:])
        raise SystemExit(1)


@contextmanager
def _no_env():
    yield {}


if __name__ == "__main__":
    main()
