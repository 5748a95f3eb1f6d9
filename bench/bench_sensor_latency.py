"""Latency from a JSON Lines file landing in the inbox to its sites' scores being in the warehouse.

    python bench/bench_sensor_latency.py [--sites 100 10000] [--runs 3] [--instance sqlite|postgres]

Per size and run, in a child process: a fresh copy of the sample warehouse (edition 2024) and a
fresh Dagster instance (dagster.yaml in a temp DAGSTER_HOME; or dagster-postgres.yaml with
--instance postgres, after `eval "$(bench/pg.sh start)"`). The file is written into
RADAR_SITES_INBOX (clock starts when the write completes), then:
  * intake  = evaluating site_inbox_sensor (build_sensor_context with the instance and the
              warehouse resource): validate + store the file, decide the run request;
  * scoring = registering the new site partitions (the sensor's dynamic-partitions request)
              and executing its ONE RunRequest in-process (score_sites job over the range);
  * check   = the scores are in site_scores (count = sites in the file).
NOT included: the wait for the sensor tick (every 5 s under the daemon, RADAR_INBOX_TICK_SECONDS)
and the run launcher's process start-up (the daemon launches runs in a new process: a few
seconds for imports). bench_inbox_to_published.py measures the whole path through a real daemon.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def worker(n: int, kind: str, seed: int) -> None:
    import dagster as dg
    import duckdb
    from bench_partitions import make_instance

    from radar_pipeline.definitions import defs
    from radar_pipeline.platform.warehouse import DuckDBWarehouse
    from radar_pipeline.sites.assets import site_inbox_sensor

    work = Path(tempfile.mkdtemp(prefix="radar-bench-sensor-"))
    wh = C.copy_warehouse(C.sample_warehouse(), work / "wh.duckdb")
    inbox = work / "inbox"
    inbox.mkdir()
    os.environ["RADAR_SITES_INBOX"] = str(inbox)
    df = C.synthetic_sites(wh, n, seed)
    instance, cleanup = make_instance(kind)
    warehouse = DuckDBWarehouse(database=str(wh))
    job = defs.resolve_job_def("score_sites")
    out: dict = {"n": n}
    try:
        C.land_sites(df, inbox / "sites.jsonl")   # the file "lands" atomically
        t0 = time.perf_counter()
        with dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as ctx:
            result = site_inbox_sensor(ctx)
        t1 = time.perf_counter()
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        (request,) = result.run_requests
        run = job.execute_in_process(run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}},
                                                  **request.run_config},
                                     instance=instance, resources={"warehouse": warehouse},
                                     tags=request.tags, raise_on_error=False)
        t2 = time.perf_counter()
        con = duckdb.connect(str(wh), read_only=True)
        scored = con.sql("select count(*) from site_scores").fetchall()[0][0]
        con.close()
        out.update(intake_s=t1 - t0, scoring_s=t2 - t1, total_s=t2 - t0, success=run.success, scored=scored,
                   peak_rss_mib=C.peak_rss_mib())
    finally:
        cleanup()
    C.emit(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, nargs="+", default=[100, 10000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--instance", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    print(f"machine: {C.machine()}; instance: {args.instance}; DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="
          f"{os.environ.get('DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS', 'unset')} DAGSTER_EVENT_BATCH_SIZE="
          f"{os.environ.get('DAGSTER_EVENT_BATCH_SIZE', 'unset')}", flush=True)
    C.sample_warehouse()
    table = []
    for n in args.sites:
        rs = [C.run_worker(Path(__file__), [str(n), args.instance, str(i + 1)]) for i in range(args.runs)]
        bad = [r for r in rs if not r["success"] or r["scored"] != n]
        med = {k: C.median([r[k] for r in rs]) for k in ("intake_s", "scoring_s", "total_s")}
        rss = max(r["peak_rss_mib"] for r in rs)
        all_totals = ", ".join(f"{r['total_s']:.2f}" for r in rs)
        print(f"sites={n:>6}: file landed -> scores stored: median {med['total_s']:.2f}s "
              f"[{all_totals}]  = intake (sensor) {med['intake_s']:.2f}s + "
              f"scoring run {med['scoring_s']:.2f}s  peak RSS {rss:.0f} MiB"
              + (f"  FAILED/INCOMPLETE: {bad}" if bad else f"  ({rs[0]['scored']} scores stored)"), flush=True)
        table.append((n, med, rss))
    print("\nsites in file | intake s | scoring run s | total s | peak RSS MiB")
    for n, med, rss in table:
        print(f"{n} | {med['intake_s']:.2f} | {med['scoring_s']:.2f} | {med['total_s']:.2f} | {rss:.0f}")


if __name__ == "__main__":
    main()
