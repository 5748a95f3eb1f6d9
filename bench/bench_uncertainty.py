"""Issue 25 item 2, "How sure": what the uncertainty costs against the scoring it qualifies.

Target: at 1M sites the whole uncertainty step costs at most 1x the scoring time.

One run, two cold single processes on copies of the same prepared warehouse (edition 2024, N
generated sites ingested and scored):
  * score: the scoring engine over every site and its rows written to site_scores (what
    store.score_and_store does before the explanation rows) — the scoring time; its "engine alone"
    figure (scoring.score_sites, nothing written) is printed beside it;
  * uncertainty: the country simulation of the edition (radar_pipeline/country_risk/uncertainty.py:
    N_DRAWS seeded draws, stated standard errors read from the mirror's files, rows written) and
    site_uncertainty for every site (sql/sites/site_uncertainty.sql, rows written).
Both write their rows into empty tables (the score copy's site_scores is emptied before the
process starts). Each figure is the whole child process (Python start, imports, reading, work, writing: wall, CPU,
peak RSS), with the in-process time of its work beside it; ratio = uncertainty / score.

The warehouse is refreshed from the real publisher files in ../shared/data/sources (the stated
standard errors of TI CPI and WGI are in them; topics the mirror lacks are allowed missing), or
with --sample from the packaged synthetic mirror (no stated errors: donors' spread only). The
prepared warehouse is cached in $RADAR_BENCH_CACHE (default /tmp/radar-bench).

    python bench/bench_uncertainty.py --n 1000000
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as C

EDITION = 2024
REAL_MIRROR = C.REPO.parent / "shared" / "data" / "sources"
ALLOW_MISSING = ["children", "freedom_of_association", "working_hours", "water"]


def base_db(sample: bool) -> Path:
    return C.CACHE / f"uncertainty_base_{'sample' if sample else 'real'}_{EDITION}.duckdb"


def sites_db(n: int, sample: bool) -> Path:
    return C.CACHE / f"uncertainty_{'sample' if sample else 'real'}_{n}.duckdb"


def run_db(name: str) -> Path:
    return C.CACHE / f"uncertainty_run_{name}.duckdb"


def mirror(sample: bool) -> Path:
    return C.REPO / "radar_pipeline" / "sample_mirror" if sample else REAL_MIRROR


# --------------------------------------------------------------------------- prepare

def worker_base(sample: int) -> None:
    from radar_pipeline.cli.runs import refresh_edition

    path = base_db(bool(sample))
    tmp = path.with_suffix(".building.duckdb")
    tmp.unlink(missing_ok=True)
    out = refresh_edition(EDITION, warehouse=tmp, allow_missing_topics=ALLOW_MISSING)
    if not out.success:
        raise SystemExit(f"refresh failed: {out.failures}")
    tmp.rename(path)
    C.emit({"built": str(path)})


def worker_sites(n: int, sample: int) -> None:
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store
    from radar_pipeline.sites.generate import iter_sites, write_sites

    path = sites_db(n, bool(sample))
    tmp = path.with_suffix(".building.duckdb")
    C.copy_warehouse(base_db(bool(sample)), tmp)
    con = connect(tmp)
    countries, classes = C.reference_lists(con)
    jsonl = C.CACHE / f"uncertainty_{n}.jsonl"
    write_sites(iter_sites(n, 1, countries, classes), jsonl)
    store.ingest(con, jsonl)
    jsonl.unlink()
    _score(con)
    con.close()
    tmp.rename(path)
    C.emit({"built": str(path)})


def _score(con, out: dict | None = None) -> int:
    """The scoring engine over every site, its rows replacing the edition's site_scores."""
    from radar_pipeline.sites import scoring

    out = {} if out is None else out
    with C.timer(out, "engine_s"):
        scoring.load_rules(con, temp=True)
        scoring.score_sites_unordered(con, EDITION, None)
    con.execute("begin transaction")
    con.execute("delete from site_scores where edition = $e", {"e": EDITION})
    con.execute("insert into site_scores by name select *, now()::timestamp as scored_at from scored_sites")
    con.execute("commit")
    return con.sql("select count(*) from site_scores where edition = $e", params={"e": EDITION}).fetchall()[0][0]


# --------------------------------------------------------------------------- the two measured steps

def worker_score(name: str) -> None:
    from radar_pipeline.platform.warehouse import connect

    con = connect(run_db(name))
    out: dict = {}
    t, cpu = time.perf_counter(), time.process_time()
    rows = _score(con, out)
    C.emit({"work_s": time.perf_counter() - t, "work_cpu_s": time.process_time() - cpu, "rows": rows, **out})
    con.close()


def worker_uncertainty(name: str, sample: int) -> None:
    import polars as pl

    from radar_pipeline.country_risk import uncertainty
    from radar_pipeline.platform.warehouse import connect, replace_slices
    from radar_pipeline.rules import fingerprint, rule_sql
    from radar_pipeline.sites import scoring

    con = connect(run_db(name))
    out: dict = {}
    t, cpu = time.perf_counter(), time.process_time()
    with C.timer(out, "country_s"):
        draws, intervals = uncertainty.compute(con, EDITION, root=mirror(bool(sample)))
        mv = pl.lit(fingerprint.version("country"))
        replace_slices(con, [("country_topic_uncertainty", intervals.with_columns(methodology_version=mv),
                              {"edition": EDITION}),
                             ("country_topic_draws", draws.with_columns(methodology_version=mv),
                              {"edition": EDITION})])
    with C.timer(out, "sites_s"):
        rule_sql.install(con)
        scoring.load_rules(con, temp=True)
        con.execute("create or replace temp table score_scope as select site_id from sites")
        con.execute("begin transaction")
        con.execute("delete from site_uncertainty where edition = $e", {"e": EDITION})
        con.execute("insert into site_uncertainty by name " + scoring._sql("site_uncertainty"),
                    {"edition": EDITION, "methodology_version": scoring.site_version()})
        con.execute("commit")
    out["work_s"] = time.perf_counter() - t
    out["work_cpu_s"] = time.process_time() - cpu
    out["rows"], out["unstable"], out["mean_stability"] = con.sql(
        "select count(*), count(*) filter (where category_stability < 1), avg(category_stability) "
        "from site_uncertainty where edition = $e", params={"e": EDITION}).fetchall()[0]
    out["draws"] = draws.height
    out["interval_sources"] = dict(intervals.group_by("source").len().iter_rows())
    C.emit(out)
    con.close()


WORKERS = {"base": lambda a: worker_base(int(a[0])), "sites": lambda a: worker_sites(int(a[0]), int(a[1])),
           "score": lambda a: worker_score(a[0]), "uncertainty": lambda a: worker_uncertainty(a[0], int(a[1]))}


# --------------------------------------------------------------------------- driver

def measure(args: list[str], env: dict) -> tuple[dict, dict]:
    """Wall, CPU (user + sys) and peak RSS of one cold child process, and what it printed."""
    import json

    started = time.perf_counter()
    proc = subprocess.Popen([C.PYTHON, __file__, "--worker", *args], cwd=C.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"worker {args} failed:\n{text[-3000:]}")
    last = [ln for ln in text.splitlines() if ln.startswith("{")][-1]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}, json.loads(last)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return WORKERS[sys.argv[2]](sys.argv[3:])
    import duckdb

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--sample", action="store_true", help="the packaged synthetic mirror instead of the real files")
    args = ap.parse_args()
    sample = int(args.sample)
    if not args.sample and not REAL_MIRROR.is_dir():
        raise SystemExit(f"{REAL_MIRROR} not found: give --sample")
    env = {**os.environ, "RADAR_SOURCES_MIRROR": str(mirror(args.sample)),
           "RADAR_USER_FILES": str(C.CACHE / "uncertainty_no_user"),
           "RADAR_OVERRIDES": str(C.CACHE / "uncertainty_no_overrides"),
           "DAGSTER_HOME": str(C.CACHE / "uncertainty_dagster_home")}
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    C.CACHE.mkdir(parents=True, exist_ok=True)
    if not base_db(args.sample).exists():
        print(f"[setup] refreshing edition {EDITION} from {mirror(args.sample)}", file=sys.stderr, flush=True)
        measure(["base", str(sample)], env)
    for n in args.n:
        if not sites_db(n, args.sample).exists():
            print(f"[setup] generating, ingesting and scoring {n} sites", file=sys.stderr, flush=True)
            measure(["sites", str(n), str(sample)], env)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {C.machine()}; duckdb {duckdb.__version__}; uptime at the start: {uptime}", flush=True)
    print(f"mirror: {'packaged SYNTHETIC sample' if args.sample else REAL_MIRROR}", flush=True)
    table = []
    for n in args.n:
        figs = {}
        for name in ("score", "uncertainty"):
            C.copy_warehouse(sites_db(n, args.sample), run_db(name))
            if name == "score":
                # both steps write their rows for the first time (the uncertainty step has none to
                # replace either): DuckDB deletes and re-inserts indexed rows far slower than it inserts
                con = duckdb.connect(str(run_db(name)))
                con.execute("delete from site_scores")
                con.execute("checkpoint")
                con.close()
            fig, out = measure([name, name, *([str(sample)] if name == "uncertainty" else [])], env)
            run_db(name).unlink(missing_ok=True)
            figs[name] = (fig, out)
            extra = (f"; engine alone (scoring.score_sites, no write) {out['engine_s']:.2f} s" if name == "score"
                     else f"; country simulation {out['country_s']:.2f} s, sites {out['sites_s']:.2f} s, "
                     f"{out['unstable']} of {out['rows']} sites with stability < 1 (mean {out['mean_stability']:.4f})"
                     )
            print(f"n={n:>8} {name:<11} {fig['wall']:7.2f} s wall {fig['cpu']:7.2f} s CPU {fig['rss']:7.0f} MiB "
                  f"peak; work in-process {out['work_s']:.2f} s ({out['work_cpu_s']:.2f} s CPU), {out['rows']} rows"
                  f"{extra}  (load {os.getloadavg()[0]:.1f})", flush=True)
        s, u = figs["score"][0], figs["uncertainty"][0]
        ratio_wall, ratio_cpu = u["wall"] / s["wall"], u["cpu"] / s["cpu"]
        ratio_work = figs["uncertainty"][1]["work_s"] / figs["score"][1]["work_s"]
        ratio_engine = figs["uncertainty"][1]["work_s"] / figs["score"][1]["engine_s"]
        verdict = "OK" if ratio_wall <= 1.0 else "MISSED (target <= 1.0x the scoring time)"
        table.append((n, s, u, ratio_wall, ratio_cpu, ratio_work, verdict))
        print(f"n={n:>8} ratio uncertainty / score: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x CPU, "
              f"{ratio_work:.2f}x in-process work -> {verdict}; in-process uncertainty / the engine alone "
              f"(no write): {ratio_engine:.2f}x", flush=True)
    print(f"uptime at the end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("\n| sites | step | wall s | CPU s | peak RSS MiB | ratio (wall) | ratio (CPU) | ratio (in-process) "
          "| target |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for n, s, u, rw, rc, rk, verdict in table:
        print(f"| {n:,} | score | {s['wall']:.2f} | {s['cpu']:.2f} | {s['rss']:.0f} |  |  |  |  |")
        print(f"| {n:,} | uncertainty | {u['wall']:.2f} | {u['cpu']:.2f} | {u['rss']:.0f} | {rw:.2f}x | {rc:.2f}x | "
              f"{rk:.2f}x | <= 1.0x score: {verdict} |")


if __name__ == "__main__":
    main()
