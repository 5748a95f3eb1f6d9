"""dagster_duckdb.DuckDBResource as it ships vs the warehouse resource (issue 14 item 4).

    python bench/bench_duckdb_resource.py [--opens 200] [--lock-seconds 120]

The warehouse resource (radar_pipeline.platform.warehouse.DuckDBWarehouse) IS a DuckDBResource subclass
(`database`, `connection_config`, `get_connection()`), extended with `read_only` and `memory_limit`;
its `get_connection` is the project's one connection factory (warehouse.connect) instead of the
base class's `duckdb.connect` + backoff. This script measures and reproduces why the inherited
`get_connection` cannot serve, each case on a fresh temporary DuckDB file:

1. opens: N x (get_connection, one query, close), base vs ours (write and read-only). The base
   class, like ours, opens a new connection per call: the open itself is not the reason.
2. a failing asset: an exception inside `with get_connection()` leaves the base class's
   connection open (its generator has no try/finally): the file's write lock stays held by
   the process, so another process (the next run, `radar sites ingest`) cannot open the file.
3. read-only: the base class always opens read-write (`read_only=False` is hard-coded), so a
   reader holds the write lock: a second process cannot even read.
4. a DuckLake target (`ducklake:<catalog>`): the base class hands it to `duckdb.connect`, which
   cannot open it (the lake must be ATTACHed with its data path, extensions loaded offline).
5. lock wait: while another process holds the write lock for --lock-seconds, the base class
   retries 10 times with doubling delays (0.1 s .. 51.2 s, ~102 s in all) and then fails; ours
   waits up to RADAR_LOCK_WAIT (default 3600 s), saying so once, and opens when the lock goes.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

HOLD = textwrap.dedent("""
    import duckdb, sys, time
    con = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
""")
TRY_OPEN = textwrap.dedent("""
    import duckdb, sys
    try:
        duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro").close()
        print("opened")
    except duckdb.IOException as exc:
        print("refused:", str(exc).splitlines()[0][:110])
""")


def other_process_opens(path: Path, mode: str) -> str:
    out = subprocess.run([C.PYTHON, "-c", TRY_OPEN, str(path), mode], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def case_opens(tmp: Path, n: int) -> None:
    from dagster_duckdb import DuckDBResource

    from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect

    path = tmp / "opens.duckdb"
    connect(path).close()  # the warehouse schema, once
    rows = {
        "dagster_duckdb.DuckDBResource": DuckDBResource(database=str(path)).get_connection,
        "DuckDBWarehouse (write)": DuckDBWarehouse(database=str(path)).get_connection,
        "DuckDBWarehouse (read-only)": lambda: DuckDBWarehouse(database=str(path), read_only=True).get_connection(),
    }
    print(f"\n1. {n} x get_connection + `select 1` + close on one file")
    for name, open_ in rows.items():
        started = time.perf_counter()
        for _ in range(n):
            with open_() as con:
                con.sql("select 1").fetchall()
        ms = (time.perf_counter() - started) / n * 1000
        print(f"   {name:<32} {ms:7.2f} ms per connection")


def case_failing_asset(tmp: Path) -> None:
    from dagster_duckdb import DuckDBResource

    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    print("\n2. an exception inside `with get_connection()` (a failing asset); the error is kept, as a "
          "run's failure record keeps it; then another process opens the file for writing")
    for name, resource in (("dagster_duckdb.DuckDBResource", DuckDBResource),
                           ("DuckDBWarehouse", DuckDBWarehouse)):
        path = tmp / f"fail_{name.split('.')[-1]}.duckdb"
        kept = []
        try:
            with resource(database=str(path)).get_connection() as con:
                con.execute("create table t (x int)")
                raise RuntimeError("asset failed")
        except RuntimeError as exc:
            kept.append(exc)  # the traceback references the generator frame, and with it the connection
        print(f"   {name:<32} other process: {other_process_opens(path, 'rw')}")
        kept.clear()


def case_read_only(tmp: Path) -> None:
    from dagster_duckdb import DuckDBResource

    from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect

    path = tmp / "ro.duckdb"
    connect(path).close()
    print("\n3. a reader holds a connection from the resource; another process opens the file read-only")
    for name, cm in (("dagster_duckdb.DuckDBResource", DuckDBResource(database=str(path)).get_connection()),
                     ("DuckDBWarehouse(read_only=True)",
                      DuckDBWarehouse(database=str(path), read_only=True).get_connection())):
        with cm:
            print(f"   {name:<32} other process: {other_process_opens(path, 'ro')}")


def case_lake(tmp: Path) -> None:
    from dagster_duckdb import DuckDBResource

    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    target = f"ducklake:{tmp / 'lake' / 'catalog.ducklake'}?data_path={tmp / 'lake' / 'data'}"
    (tmp / "lake").mkdir()
    print(f"\n4. a DuckLake target ({target})")
    for name, resource in (("dagster_duckdb.DuckDBResource", DuckDBResource),
                           ("DuckDBWarehouse", DuckDBWarehouse)):
        try:
            with resource(database=target).get_connection() as con:
                n = con.sql("select count(*) from duckdb_tables()").fetchall()[0][0]
                print(f"   {name:<32} opened: {n} warehouse tables, current database "
                      f"{con.sql('select current_database()').fetchall()[0][0]!r}")
        except Exception as exc:  # noqa: BLE001 — the failure is the measurement
            print(f"   {name:<32} FAILS: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")


def case_lock(tmp: Path, seconds: float) -> None:
    from dagster_duckdb import DuckDBResource

    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    print(f"\n5. another process holds the write lock for {seconds:.0f} s")
    for name, resource in (("dagster_duckdb.DuckDBResource", DuckDBResource),
                           ("DuckDBWarehouse", DuckDBWarehouse)):
        path = tmp / f"lock_{name.split('.')[-1]}.duckdb"
        holder = subprocess.Popen([C.PYTHON, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE,
                                  text=True)
        assert holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        try:
            with resource(database=str(path)).get_connection() as con:
                con.sql("select 1").fetchall()
            result = "opened"
        except Exception as exc:  # noqa: BLE001 — the failure is the measurement
            result = f"FAILED ({type(exc).__name__})"
        print(f"   {name:<32} {result} after {time.perf_counter() - started:6.1f} s")
        holder.kill()
        holder.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--opens", type=int, default=200)
    ap.add_argument("--lock-seconds", type=float, default=120.0,
                    help="longer than the base class's ~102 s retry budget shows it giving up")
    ap.add_argument("--skip-lock", action="store_true")
    args = ap.parse_args()
    import dagster_duckdb
    import duckdb

    print(f"duckdb {duckdb.__version__}, dagster-duckdb {dagster_duckdb.__version__}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="radar-bench-duckdb-resource-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["RADAR_LOCK_WAIT"] = str(args.lock_seconds * 3)
        case_opens(tmp, args.opens)
        case_failing_asset(tmp)
        case_read_only(tmp)
        case_lake(tmp)
        if not args.skip_lock:
            case_lock(tmp, args.lock_seconds)


if __name__ == "__main__":
    main()
