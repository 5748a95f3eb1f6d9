"""Site scoring and `radar score` beside their floor and peer, cold single processes, one run
(issue 24 items 1 and 2).

    python bench/bench_site_scoring.py --n 200000 1000000 [--rounds 1]

For each N, every figure is one whole child process (Python start, imports, reading, work,
writing; wall from spawn to exit, CPU = user + sys of the child, peak RSS = its own VmHWM, C.spawn_measured):
  engine  radar_pipeline.sites.scoring: load_rules + score_sites_to over the N sites of a DuckDB
          file (bench_scoring_engine.py's prepared engine_N.duckdb), the scores (33 columns,
          ordered by site_id) written to parquet by DuckDB (snappy) under RADAR_MEMORY_LIMIT
          (score_sites, which returns them as a polars frame, held 3M sites' scores in 4.4 GiB)
  floor   DuckDB reading every input the engine reads (sites + site_saq by a positional join,
          site_controls and site_nonconformities scanned) and writing 33 columns of the same
          types by plain projection to parquet (COPY, snappy): reading + writing, no scoring
  peer    bench/peer_polars.py, a hand-written polars implementation of §6-§8 reading the same
          tables, written like the engine's; its scores must equal the engine's (checked here)
  score   `radar score --sites FILE --edition 2024 --out X.parquet` (the CLI) on N generated
          sites (bench_cli_score.py's cached file)
  read_json  DuckDB `copy (select * from read_json('FILE')) to 'X.parquet'` of the same file
Targets: engine <= 2.0x floor and <= 0.8x peer, <= 1.5 GiB; radar score <= 2.0x read_json,
<= 1.5 GiB, 200k <= 5 s. With --rounds k every step runs k times (alternating), medians shown.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

EDITION = 2024
VERSION = "bench"
ENGINE_TARGETS = {"floor": 2.0, "peer": 0.8}
SCORE_TARGET, SCORE_200K_S, RSS_TARGET_MIB = 2.0, 5.0, 1536.0


def engine_db(n: int) -> Path:
    return C.CACHE / f"engine_{n}.duckdb"


def sites_file(n: int) -> Path:
    return C.CACHE / f"cli_score_sites_{n}.jsonl"


def out_file(name: str, n: int) -> Path:
    return C.CACHE / f"site_scoring_{name}_{n}.parquet"


# --------------------------------------------------------------------------- workers (child processes)

def worker_engine(n: int) -> None:
    import duckdb

    from radar_pipeline.platform import settings
    from radar_pipeline.sites import scoring

    con = duckdb.connect(str(engine_db(n)))
    # the pipeline's own limit (RADAR_MEMORY_LIMIT, 1GB by default): DuckDB spills beyond it
    con.execute(f"set memory_limit = '{settings.memory_limit()}'")
    scoring.load_rules(con, temp=True)
    scoring.score_sites_to(con, EDITION, out_file("engine", n), None, VERSION)
    con.close()


def worker_peer(n: int) -> None:
    import duckdb
    import peer_polars

    con = duckdb.connect(str(engine_db(n)), read_only=True)
    peer_polars.score(con, EDITION, VERSION).write_parquet(out_file("peer", n), compression="snappy")
    con.close()


FLOOR_COLUMNS = (  # (output column, input expression of the same type)
    ("edition", "2024::integer"), ("site_id", "s.site_id"), ("iso3", "s.iso3"), ("isic_code", "s.isic_code"),
    ("isic_class", "s.isic_class"), ("inherent", "q.migrant_pct"), ("labour_standards", "q.apprentice_pct"),
    ("health_safety", "q.pay_in_kind_pct"), ("business_ethics", "q.permanent_pct"),
    ("environment", "q.women_workers_pct"), ("site_characteristics", "q.women_managers_pct"),
    ("raw_points", "q.women_supervisors_pct"), ("total_available", "q.young_workers_pct"),
    ("n_unanswered", "q.workers_total"), ("management_controls", "q.migrant_pct"),
    ("mc_rounded", "q.apprentice_pct"), ("open_critical", "q.workers_total"), ("open_major", "q.workers_total"),
    ("base", "q.pay_in_kind_pct"), ("adjustment", "s.isic_level"), ("final_score", "q.permanent_pct"),
    ("category_calculated", "q.worker_representation"), ("category", "q.worker_representation"),
    ("override_reason", "s.site_name"), ("override_author", "s.site_name"),
    ("is_primary_producer", "q.labour_intensive"), ("inherent_only", "q.prison_labour"),
    ("missing_topics", "s.isic_level"), ("inherent_confidence", "q.migrant_pct"),
    ("saq_completeness", "q.apprentice_pct"), ("confidence", "q.young_workers_pct"),
    ("confidence_label", "s.iso3"), ("methodology_version", "'bench'"),
)


def worker_floor(n: int) -> None:
    import duckdb

    con = duckdb.connect(str(engine_db(n)), read_only=True)
    cols = ", ".join(f"{expr} as {name}" for name, expr in FLOOR_COLUMNS)
    con.execute(f"copy (select {cols} from sites as s positional join site_saq as q) "
                f"to '{out_file('floor', n)}' (format parquet, compression snappy)")
    con.sql("select count(*), max(site_id), max(control_id) from site_controls").fetchall()
    con.sql("select count(*), max(site_id), max(severity), max(status) from site_nonconformities").fetchall()
    con.close()


def worker_read_json(n: int) -> None:
    import duckdb

    duckdb.connect().execute(f"copy (select * from read_json('{sites_file(n)}')) to '{out_file('read_json', n)}' "
                             "(format parquet, compression snappy)")


WORKERS = {"engine": worker_engine, "peer": worker_peer, "floor": worker_floor, "read_json": worker_read_json}


# --------------------------------------------------------------------------- driver

def measure(cmd: list[str]) -> dict:
    """Wall, CPU (user + sys) and peak RSS of one child process."""
    code, wall, cpu, peak, out = C.spawn_measured(cmd, cwd=C.REPO)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return {"wall": wall, "cpu": cpu, "rss": peak}


def step(name: str, n: int, warehouse: Path) -> dict:
    if name == "score":
        return measure([C.PYTHON, "-m", "radar_pipeline.cli", "score", "--sites", str(sites_file(n)), "--edition",
                        str(EDITION), "--out", str(out_file("score", n)), "--warehouse", str(warehouse)])
    return measure([C.PYTHON, __file__, "--worker", name, str(n)])


def prepare(n: int, warehouse: Path) -> None:
    import bench_cli_score

    if not engine_db(n).exists():
        print(f"[setup] {engine_db(n)}: generating and ingesting {n} sites", file=sys.stderr, flush=True)
        C.run_worker(Path(__file__).parent / "bench_scoring_engine.py", ["prepare", str(n)])
    bench_cli_score.sites_file(n, warehouse)


def same_scores(n: int) -> str:
    import polars as pl
    from polars.testing import assert_frame_equal

    try:
        assert_frame_equal(pl.read_parquet(out_file("engine", n)), pl.read_parquet(out_file("peer", n)),
                           check_exact=True)
    except AssertionError as exc:
        return f"DIFFERENT: {str(exc).splitlines()[0]}"
    return "identical (all 33 columns, exact)"


def median(xs: list[dict], key: str) -> float:
    return C.median([x[key] for x in xs])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return WORKERS[sys.argv[2]](int(sys.argv[3]))
    import duckdb

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-score", action="store_true", help="engine, floor and peer only")
    args = ap.parse_args()
    warehouse = C.sample_warehouse(EDITION)
    for n in args.n:
        prepare(n, warehouse)
    load0 = os.getloadavg()
    print(f"machine: {C.machine()}; duckdb {duckdb.__version__}; load average at the start {load0}", flush=True)
    rows = []
    for n in args.n:
        names = ["floor", "engine", "peer"] + ([] if args.skip_score else ["read_json", "score"])
        runs: dict[str, list[dict]] = {k: [] for k in names}
        for _ in range(args.rounds):
            for name in names:
                r = step(name, n, warehouse)
                runs[name].append(r)
                print(f"n={n:>8} {name:<9} {r['wall']:6.2f} s wall {r['cpu']:6.2f} s CPU {r['rss']:6.0f} MiB  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        fig = {k: {m: median(v, m) for m in ("wall", "cpu", "rss")} for k, v in runs.items()}
        same = same_scores(n)
        print(f"n={n:>8} engine vs peer: {same}", flush=True)
        rows.append((n, fig, same))
        for name in names:
            out_file(name, n).unlink(missing_ok=True)
    load1 = os.getloadavg()
    print(f"\nload average at the end {load1} on {os.cpu_count()} cores; duckdb {duckdb.__version__}")
    print("\n| sites | step | wall s | CPU s | peak RSS MiB | ratio (wall) | ratio (CPU) | target | |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---|")
    for n, fig, same in rows:
        for name, f in fig.items():
            ratio, target, verdict = "", "", ""
            if name == "engine":
                parts = []
                for base, limit in ENGINE_TARGETS.items():
                    w, c = f["wall"] / fig[base]["wall"], f["cpu"] / fig[base]["cpu"]
                    parts.append((base, w, c, limit))
                ratio = " / ".join(f"{w:.2f}x {b}" for b, w, _, _ in parts)
                cpu_ratio = " / ".join(f"{c:.2f}x {b}" for b, _, c, _ in parts)
                target = "<= 2.0x floor, <= 0.8x peer, <= 1.5 GiB"
                ok = all(w <= limit for _, w, _, limit in parts) and f["rss"] <= RSS_TARGET_MIB
                verdict = "OK" if ok else "MISSED"
            elif name == "score":
                w, c = f["wall"] / fig["read_json"]["wall"], f["cpu"] / fig["read_json"]["cpu"]
                ratio, cpu_ratio = f"{w:.2f}x read_json", f"{c:.2f}x read_json"
                target = "<= 2.0x read_json, <= 1.5 GiB" + (", <= 5 s" if n == 200_000 else "")
                ok = w <= SCORE_TARGET and f["rss"] <= RSS_TARGET_MIB and (n != 200_000 or f["wall"] <= SCORE_200K_S)
                verdict = "OK" if ok else "MISSED"
            else:
                cpu_ratio = ""
            print(f"| {n:,} | {name} | {f['wall']:.2f} | {f['cpu']:.2f} | {f['rss']:.0f} | {ratio} | {cpu_ratio} | "
                  f"{target} | {verdict} |")
        print(f"| {n:,} | engine = peer | {same} | | | | | | |")
    print(json.dumps({"load_start": load0, "load_end": load1}))


if __name__ == "__main__":
    main()
