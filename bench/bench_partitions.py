"""Rescoring N site partitions through Dagster: ONE run over the range vs one run per partition.

    python bench/bench_partitions.py --sites 10000 100000 --instance sqlite
    eval "$(bench/pg.sh start)"; python bench/bench_partitions.py --sites 10000 100000 --instance postgres

For each N: a warehouse (sample edition 2024) holding N SYNTHETIC sites (built once,
cached in $RADAR_BENCH_CACHE), then in a fresh child process with a FRESH Dagster
instance (sqlite: dagster.yaml in a temp DAGSTER_HOME; postgres: dagster-postgres.yaml
against a new database on the server from bench/pg.sh):
  * register the N keys as "sites" dynamic partitions (timed separately), then
  * radar_pipeline.cli.runs.score_sites(keys) -> one run over the whole range (timed).
Baseline in the same invocation: one run per partition, SAMPLED — K (default 5)
single-partition runs on an instance holding the same N partitions, the median
extrapolated to N (N x median); nobody waits 19 h to measure it in full.

Postgres: the env vars DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 and
DAGSTER_EVENT_BATCH_SIZE=1000 are honoured as set in the environment (pg.sh prints
them); pass --no-pg-tuning to measure without them. They are also honoured for
sqlite when set (the default sqlite figures are measured with them unset).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

TUNING = ("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "DAGSTER_EVENT_BATCH_SIZE")


# --------------------------------------------------------------------------- workers

def sites_warehouse(n: int) -> Path:
    """Cached warehouse with the sample edition and n SYNTHETIC sites ingested."""
    path = C.CACHE / f"partitions_{n}.duckdb"
    if not path.exists():
        t = time.perf_counter()
        info = C.run_worker(Path(__file__), ["setup", str(n)])
        print(f"[setup] {n} sites ingested in {info['ingest_s']:.1f}s (file written in {info['write_s']:.1f}s; "
              f"setup total {time.perf_counter() - t:.0f}s)", file=sys.stderr, flush=True)
    return path


def worker_setup(n: int) -> None:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store
    from radar_pipeline.sites.generate import generate_sites, write_sites

    src = C.sample_warehouse()
    path = C.CACHE / f"partitions_{n}.duckdb"
    tmp = C.copy_warehouse(src, path.with_suffix(".building.duckdb"))
    con = connect(tmp)
    out: dict = {}
    countries, classes = C.reference_lists(con)
    jsonl = C.CACHE / f"partitions_{n}.jsonl"
    with C.timer(out, "write_s"):
        C.CACHE.mkdir(parents=True, exist_ok=True)
        write_sites(generate_sites(n, 1, countries, classes), jsonl)
    with C.timer(out, "ingest_s"):
        store.ingest(con, jsonl)
    con.close()
    jsonl.unlink()
    tmp.rename(path)
    C.emit(out)


def make_instance(kind: str):
    """A fresh instance: returns (instance, cleanup)."""
    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix="radar-bench-home-"))
    if kind == "sqlite":
        from radar_pipeline.platform.run_settings import instance_yaml  # storage under this home

        (home / "dagster.yaml").write_text(instance_yaml(C.REPO / "dagster.yaml", home))
        os.environ["DAGSTER_HOME"] = str(home)
        return dg.DagsterInstance.get(), lambda: None
    import psycopg2

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER"):
        if not os.environ.get(var):
            raise SystemExit(f"{var} not set: run `eval \"$(bench/pg.sh start)\"` first")
    db = f"bench_{uuid.uuid4().hex[:10]}"
    conn_args = {"host": os.environ["DAGSTER_PG_HOST"], "port": os.environ["DAGSTER_PG_PORT"],
                 "user": os.environ["DAGSTER_PG_USER"], "password": os.environ.get("DAGSTER_PG_PASSWORD", ""),
                 "dbname": os.environ.get("DAGSTER_PG_DB", "dagster")}
    admin = psycopg2.connect(**conn_args)
    admin.autocommit = True
    admin.cursor().execute(f"create database {db}")
    os.environ["DAGSTER_PG_DB"] = db
    (home / "dagster.yaml").write_text((C.REPO / "dagster-postgres.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()

    def cleanup():
        instance.dispose()
        admin.cursor().execute(f"drop database if exists {db} with (force)")
        admin.close()
    return instance, cleanup


def worker_run(mode: str, n: int, kind: str, k: int) -> None:
    import duckdb

    from radar_pipeline.cli.runs import score_sites
    from radar_pipeline.platform.partitions import sites as sites_partitions

    wh = C.CACHE / f"partitions_{n}.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    keys = [r[0] for r in con.sql("select site_id from sites order by site_id").fetchall()]
    con.close()
    instance, cleanup = make_instance(kind)
    out: dict = {"mode": mode, "n": n, "instance": kind}
    try:
        with C.timer(out, "register_s"):
            instance.add_dynamic_partitions(sites_partitions.name, keys)
        if mode == "one-run":
            with C.timer(out, "run_s"):
                outcome = score_sites(keys, edition=2024, warehouse=wh, instance=instance)
            out["success"] = outcome.success
            out["peak_rss_mib"] = C.peak_rss_mib()
            con = duckdb.connect(str(wh), read_only=True)
            out["scored_rows"] = con.sql("select count(*) from site_scores where edition = 2024").fetchall()[0][0]
            con.close()
            out["event_rows"] = len(outcome.result.all_events)  # events of the run (held by the result)
        else:
            step = max(1, n // k)
            times = []
            for key in keys[::step][:k]:
                t = time.perf_counter()
                outcome = score_sites([key], edition=2024, warehouse=wh, instance=instance)
                times.append(time.perf_counter() - t)
                if not outcome.success:
                    raise SystemExit(f"single-partition run failed: {outcome.failures}")
            out["single_run_s"] = times
            out["success"] = True
            out["peak_rss_mib"] = C.peak_rss_mib()
    finally:
        cleanup()
    C.emit(out)


# --------------------------------------------------------------------------- driver

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        if sys.argv[2] == "setup":
            return worker_setup(int(sys.argv[3]))
        return worker_run(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, nargs="+", default=[10000])
    ap.add_argument("--instance", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--baseline-runs", type=int, default=5, help="single-partition runs sampled (0 = skip)")
    ap.add_argument("--no-pg-tuning", action="store_true", help="unset the two DAGSTER_* tuning env vars")
    args = ap.parse_args()
    env = {}
    if args.no_pg_tuning:
        for var in TUNING:
            os.environ.pop(var, None)
    tuning = {v: os.environ.get(v, "unset") for v in TUNING}
    print(f"machine: {C.machine()}; instance: {args.instance}; {tuning}", flush=True)
    rows = []
    for n in args.sites:
        sites_warehouse(n)
        one = C.run_worker(Path(__file__), ["one-run", str(n), args.instance, "0"], env)
        if not one["success"]:
            raise SystemExit(f"one-run over {n} partitions failed")
        total = one["register_s"] + one["run_s"]
        line = (f"ONE RUN   sites={n:>7}  register {one['register_s']:7.1f}s  run {one['run_s']:7.1f}s  "
                f"total {total:7.1f}s  {1000 * total / n:7.2f} ms/partition  peak RSS {one['peak_rss_mib']:6.0f} MiB"
                f"  ({one['scored_rows']} rows in site_scores, {one['event_rows']} event rows)")
        print(line, flush=True)
        row = {"n": n, **one, "total_s": total}
        if args.baseline_runs:
            base = C.run_worker(Path(__file__), ["per-partition", str(n), args.instance, str(args.baseline_runs)], env)
            med = C.median(base["single_run_s"])
            est = med * n
            print(f"PER-PARTITION (sampled {len(base['single_run_s'])} runs, extrapolated x{n}): median "
                  f"{med:.2f}s/run [{', '.join(f'{t:.2f}' for t in base['single_run_s'])}] -> est. {est:,.0f}s "
                  f"({est / 3600:.1f} h); one run is {est / total:,.0f}x faster; peak RSS "
                  f"{base['peak_rss_mib']:.0f} MiB", flush=True)
            row.update(per_partition_median_s=med, per_partition_est_s=est)
        rows.append(row)
    print("\nsites | instance | one-run total s | ms/partition | peak RSS MiB | per-partition est. s | speed-up")
    for r in rows:
        est = r.get("per_partition_est_s")
        total = r["total_s"]
        print(f"{r['n']} | {args.instance} | {r['total_s']:.1f} | {1000 * r['total_s'] / r['n']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {'-' if est is None else f'{est:,.0f}'} | "
              f"{'-' if est is None else f'{est / total:,.0f}x'}")


if __name__ == "__main__":
    main()
