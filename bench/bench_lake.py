"""The warehouse as a DuckLake (catalog in PostgreSQL, Parquet in a local folder) vs the file.

    eval "$(bash bench/pg.sh start)"     # the PostgreSQL of DAGSTER_PG_* holds the lake catalogs
    python bench/bench_lake.py --sites 100000 --score-sites 1000000 --readers 8

Steps (each writer and reader is its own process; the lake is fresh, its own catalog schema):
  1. refresh: edition 2024 (untimed), then 2023 alone, then 2023 and 2024 again at once (two
     processes) on the same lake. Target: wall of the two <= 1.3 x the one.
  2. scoring: --score-sites SYNTHETIC sites ingested into the lake and into a DuckDB file with
     the same reference tables, then store.score_and_store (what the site_scores asset runs:
     scores + explanation rows written) on each. Target: lake <= 2 x file.
  3. readers: --readers processes each keep a read-only connection and query site scores in a
     loop (category counts of edition 2024) while edition 2024 is refreshed again and --sites
     more sites are ingested. Target: 0 reader errors; p50/p95 query latency printed.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

MIRROR = C.REPO / "radar_pipeline" / "sample_mirror"


def pg_libpq() -> str:
    host = os.environ.get("DAGSTER_PG_HOST")
    if not host:
        sys.exit('needs PostgreSQL: eval "$(bash bench/pg.sh start)" first (exports DAGSTER_PG_*)')
    return (f"dbname={os.environ.get('DAGSTER_PG_DB', 'dagster')} host={host} "
            f"port={os.environ.get('DAGSTER_PG_PORT', '5432')} user={os.environ.get('DAGSTER_PG_USER', 'dagster')}")


# --------------------------------------------------------------------------- child processes

def _env(work: Path) -> None:
    os.environ["RADAR_SOURCES_MIRROR"] = str(MIRROR)
    os.environ["RADAR_USER_FILES"] = str(work / "user")
    os.environ["RADAR_LANDING"] = str(work / "landing")


def refresh_worker(target: str, edition: int, work: str, out) -> None:
    _env(Path(work))
    import radar_pipeline.definitions  # noqa: F401 — imported before the clock starts, as the start-up is
    from radar_pipeline.cli.runs import refresh_edition
    from radar_pipeline.platform import lake, lake_commits

    t, cpu, start = time.perf_counter(), time.process_time(), time.time()
    outcome = refresh_edition(edition, warehouse=target)
    out.put(("refresh", edition, outcome.success, time.perf_counter() - t, str(outcome.failures)[:500],
             time.process_time() - cpu, lake.RETRIES, start, time.time(), list(lake_commits.LOCK_WAITS)))


def ingest_worker(target: str, sites_file: str, out) -> None:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store

    t = time.perf_counter()
    con = connect(target)
    try:
        summary = store.ingest(con, Path(sites_file))
    finally:
        con.close()
    out.put(("ingest", len(summary.new), True, time.perf_counter() - t, ""))


def reader_worker(target: str, stop, out) -> None:
    from radar_pipeline.platform.warehouse import connect

    lat, errors = [], []
    con = connect(target, read_only=True)
    try:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                con.sql("select category, count(*), avg(final_score) from site_scores "
                        "where edition = 2024 group by 1").fetchall()
                lat.append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 — counted and reported
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        con.close()
    out.put({"latencies": lat, "errors": errors})


def score_worker(target: str, out) -> None:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store

    con = connect(target)
    try:
        t = time.perf_counter()
        scores = store.score_and_store(con, 2024, None)
        out.put((time.perf_counter() - t, scores.height, C.peak_rss_mib()))
    finally:
        con.close()


def run(ctx, fn, *args):
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    return p, q


# --------------------------------------------------------------------------- steps

def step_refresh(ctx, target: str, work: Path) -> dict:
    """Edition 2024 first (untimed: it also fills the shared reference tables), then 2023 alone,
    then 2023 and 2024 again at once (each replaces its edition's rows: the same work as one).
    Walls are measured inside the workers (process start-up and imports excluded on both sides):
    two = last end - first start."""
    for edition in (2024, 2023):
        p, q = run(ctx, refresh_worker, target, edition, str(work))
        one = q.get()
        p.join()
        assert one[2], one
    procs = [run(ctx, refresh_worker, target, e, str(work)) for e in (2023, 2024)]
    two = [q.get() for _, q in procs]
    for p, _ in procs:
        p.join()
    wall_two = max(r[8] for r in two) - min(r[7] for r in two)
    assert all(r[2] for r in two), two
    ratio = wall_two / one[3]
    each = ", ".join(f"{r[1]}: {r[3]:.1f}s wall, {r[5]:.1f}s CPU, {r[6]} conflict retries, "
                     f"{r[9][0]} table-lock waits {r[9][1]:.1f}s" for r in two)
    print(f"refresh: one edition (2023) {one[3]:.1f}s wall ({one[5]:.1f}s CPU); two editions at once {wall_two:.1f}s "
          f"wall ({each})"
          f" -> {ratio:.2f} x one (target <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'}); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    return {"one_s": one[3], "one_cpu_s": one[5], "two_wall_s": wall_two, "ratio": ratio,
            "two_cpu_s": [r[5] for r in two], "conflict_retries": [r[6] for r in two],
            "lock_waits": [r[9] for r in two], "load_average": os.getloadavg()[0]}


def copy_reference_to_file(lake_target: str, path: Path) -> None:
    """A DuckDB file with the lake's tables (reference data and edition 2024), for the same inputs."""
    from radar_pipeline.platform.warehouse import attach_read_only, connect

    path.unlink(missing_ok=True)
    con = connect(path)
    try:
        attach_read_only(con, lake_target, "src")
        tables = [r[0] for r in con.sql("select table_name from duckdb_tables() where database_name = 'src' "
                                        "and table_name <> 'snapshot_tags'").fetchall()]
        mine = {r[0] for r in con.sql("select table_name from duckdb_tables() "
                                      "where database_name = current_database()").fetchall()}
        for t in tables:
            if t in mine:
                con.execute(f"insert into {t} by name select * from src.{t}")
    finally:
        con.close()


def step_scoring(ctx, target: str, work: Path, n: int) -> dict:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites.generate import generate_sites, write_sites

    con = connect(target, read_only=True)
    countries = [r[0] for r in con.sql("select iso3 from edition_countries where edition = 2024").fetchall()]
    classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    con.close()
    sites_file = work / f"score_sites_{n}.jsonl"
    write_sites(generate_sites(n, 21, countries, classes), sites_file)
    file_wh = work / "file_warehouse.duckdb"
    copy_reference_to_file(target, file_wh)
    res = {}
    for name, wh in (("file", str(file_wh)), ("lake", target)):
        p, q = run(ctx, ingest_worker, wh, str(sites_file))
        ing = q.get()
        p.join()
        p, q = run(ctx, score_worker, wh)
        secs, rows, rss = q.get()
        p.join()
        res[name] = {"ingest_s": ing[3], "score_s": secs, "rows": rows, "peak_rss_mib": rss}
        print(f"scoring {n} sites on the {name}: ingest {ing[3]:.1f}s, score_and_store {secs:.1f}s "
              f"({rows} scores + explanation rows written), peak RSS {rss:.0f} MiB", flush=True)
    ratio = res["lake"]["score_s"] / res["file"]["score_s"]
    print(f"scoring: lake / file = {ratio:.2f} (target <= 2: {'met' if ratio <= 2 else 'NOT met'})", flush=True)
    res["ratio"] = ratio
    return res


def step_readers(ctx, target: str, work: Path, n_sites: int, n_readers: int) -> dict:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites.generate import generate_sites, write_sites

    con = connect(target, read_only=True)
    countries = [r[0] for r in con.sql("select iso3 from edition_countries where edition = 2024").fetchall()]
    classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    con.close()
    sites_file = work / f"reader_sites_{n_sites}.jsonl"
    write_sites(generate_sites(n_sites, 33, countries, classes), sites_file)
    stop = ctx.Event()
    readers = [run(ctx, reader_worker, target, stop) for _ in range(n_readers)]
    time.sleep(3)  # the readers are connected and querying before the writers start
    t = time.perf_counter()
    writers = [run(ctx, refresh_worker, target, 2024, str(work)), run(ctx, ingest_worker, target, str(sites_file))]
    done = [q.get() for _, q in writers]
    for p, _ in writers:
        p.join()
    wall = time.perf_counter() - t
    stop.set()
    reads = [q.get() for _, q in readers]
    for p, _ in readers:
        p.join()
    lat = sorted(x for r in reads for x in r["latencies"])
    errors = [e for r in reads for e in r["errors"]]
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    p50 = statistics.median(lat) if lat else float("nan")
    print(f"readers: {n_readers} processes, {len(lat)} queries during {wall:.1f}s of refresh 2024 "
          f"({done[0][3]:.1f}s, ok={done[0][2]}) + ingest of {n_sites} sites ({done[1][3]:.1f}s, "
          f"{done[1][1]} new): errors {len(errors)}, latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
          + (f"; first error: {errors[0]}" if errors else ""), flush=True)
    assert all(d[2] for d in done), done
    return {"queries": len(lat), "errors": len(errors), "p50_ms": p50 * 1000, "p95_ms": p95 * 1000,
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=100_000, help="sites ingested while the readers read")
    ap.add_argument("--score-sites", type=int, default=1_000_000, help="sites scored on lake and file")
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--skip", nargs="*", default=[], choices=["refresh", "scoring", "readers"])
    args = ap.parse_args()
    work = C.CACHE / f"lake-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    target = (f"ducklake:postgres:{pg_libpq()}?data_path={work / 'lake-data'}"
              f"&metadata_schema=radar_bench_{uuid.uuid4().hex[:8]}")
    print(f"machine: {C.machine()}; lake catalog in PostgreSQL, data in {work / 'lake-data'}", flush=True)
    ctx = mp.get_context("spawn")
    from radar_pipeline.platform.warehouse import connect

    connect(target).close()  # the lake's tables exist before anything is timed
    out = {}
    if "refresh" not in args.skip:
        out["refresh"] = step_refresh(ctx, target, work)
    else:
        p, q = run(ctx, refresh_worker, target, 2024, str(work))
        assert q.get()[2]
        p.join()
    if "scoring" not in args.skip:
        out["scoring"] = step_scoring(ctx, target, work, args.score_sites)
    if "readers" not in args.skip:
        out["readers"] = step_readers(ctx, target, work, args.sites, args.readers)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
