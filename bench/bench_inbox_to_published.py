"""Latency from a JSON Lines file landing in the inbox to its sites being in the PUBLISHED file,
through the daemon's own steps, on a sqlite instance (dagster.yaml in a temp DAGSTER_HOME).

    python bench/bench_inbox_to_published.py [--sites 2000] [--runs 1]

Per run, in a child process: a fresh copy of the sample warehouse (edition 2024), a fresh
instance, one automation evaluation as the baseline (the daemon has evaluated before the file
lands). Then, timed from the moment the file lands:
  * intake   = site_inbox_sensor evaluated (validate + store + one run request);
  * scoring  = the new partitions registered and the ONE score_sites run executed in-process;
  * decide   = the automation conditions evaluated (dg.evaluate_automation_conditions): publish
               must be requested because site_scores changed;
  * publish  = the publish_warehouse run (buyer lists + the BI snapshot + Parquet);
  * check    = the published file lists every site of the file.
NOT included: the waits for the sensor ticks (site_inbox_sensor every 30 s, radar_automation
every 15 s under the daemon: add up to 45 s) and the run launcher's process start-up (~2-3 s of
imports per run) - the daemon adds those, not the pipeline.
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

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def worker(n: int, seed: int) -> None:
    import dagster as dg
    import duckdb
    from bench_partitions import make_instance

    work = Path(tempfile.mkdtemp(prefix="radar-bench-inbox-pub-"))
    wh = C.copy_warehouse(C.sample_warehouse(), work / "wh.duckdb")
    inbox = work / "inbox"
    inbox.mkdir()
    published = work / "published" / "radar.duckdb"
    os.environ.update(RADAR_SITES_INBOX=str(inbox), RADAR_PUBLISHED=str(published), RADAR_WAREHOUSE=str(wh),
                      RADAR_BUYERS_INBOX=str(work / "buyers"), RADAR_PICTURES=str(work / "pictures"))

    from radar_pipeline.definitions import defs
    from radar_pipeline.sites.assets import site_inbox_sensor
    from radar_pipeline.sites.generate import generate_sites, write_sites
    from radar_pipeline.warehouse import DuckDBWarehouse

    con = duckdb.connect(str(wh), read_only=True)
    countries, classes = C.reference_lists(con)
    con.close()
    df = generate_sites(n, seed, countries, classes)
    instance, cleanup = make_instance("sqlite")
    warehouse = DuckDBWarehouse(path=str(wh))
    out: dict = {"n": n}
    try:
        cursor = dg.evaluate_automation_conditions(defs, instance).cursor
        staged = work / "landing.jsonl"
        write_sites(df, staged)
        os.replace(staged, inbox / "sites.jsonl")   # the file "lands" atomically
        t0 = time.perf_counter()
        with dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as ctx:
            result = site_inbox_sensor(ctx)
        t1 = time.perf_counter()
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        scored_ok = True
        for request in result.run_requests:
            run = defs.resolve_job_def("score_sites").execute_in_process(
                run_config={**QUIET, **request.run_config}, instance=instance,
                resources={"warehouse": warehouse}, tags=request.tags, raise_on_error=False)
            scored_ok &= run.success
        t2 = time.perf_counter()
        decision = dg.evaluate_automation_conditions(defs, instance, cursor=cursor)
        wants_publish = decision.get_num_requested(dg.AssetKey("publish")) == 1
        t3 = time.perf_counter()
        pub = defs.resolve_job_def("publish_warehouse").execute_in_process(
            run_config=QUIET, instance=instance, resources={"warehouse": warehouse}, raise_on_error=False)
        t4 = time.perf_counter()
        con = duckdb.connect(str(published), read_only=True)
        in_file = con.sql("select count(*) from site_scores_latest").fetchall()[0][0]
        con.close()
        out.update(intake_s=t1 - t0, scoring_s=t2 - t1, decide_s=t3 - t2, publish_s=t4 - t3, total_s=t4 - t0,
                   success=scored_ok and pub.success and wants_publish, published_sites=in_file,
                   peak_rss_mib=C.peak_rss_mib())
    finally:
        cleanup()
    C.emit(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(int(sys.argv[2]), int(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, nargs="+", default=[2000])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {C.machine()}; instance: sqlite", flush=True)
    C.sample_warehouse()
    for n in args.sites:
        rs = [C.run_worker(Path(__file__), [str(n), str(i + 1)]) for i in range(args.runs)]
        for r in rs:
            ok = r["success"] and r["published_sites"] == n
            print(f"sites={n}: file landed -> published {r['total_s']:.1f}s = intake {r['intake_s']:.1f}s + "
                  f"scoring run {r['scoring_s']:.1f}s + automation decision {r['decide_s']:.2f}s + "
                  f"publish run {r['publish_s']:.1f}s; {r['published_sites']} sites in the published file; "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB" + ("" if ok else f"  FAILED: {r}"), flush=True)


if __name__ == "__main__":
    main()
