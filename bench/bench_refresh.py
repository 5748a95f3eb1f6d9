"""Edition refresh (all sources -> country risk -> inherent risk tables) through Dagster.

    python bench/bench_refresh.py [--runs 3] [--edition 2024]

Mirrors timed (each refresh in its own child process into a fresh warehouse file, an
ephemeral Dagster instance, --runs times, median reported):
  * sample: the packaged SYNTHETIC sample mirror (radar_pipeline/sample_mirror), edition 2024;
  * shared: ../shared/data/sources (the real publisher files), if present — edition --shared-edition
    (default 2023; every topic has a file there for 2022-2024, so none is allowed missing unless
    --shared-allow-missing lists some, e.g. regular_employment,children for 2025: README).
Wall time includes Python start-up and importing Dagster (as a user running `radar refresh` sees).
Target: <= 20 s per refresh (2 cores).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

SHARED = C.REPO.parent / "shared" / "data" / "sources"


def worker(mirror: str, edition: int, allow: list[str]) -> None:
    t0 = time.perf_counter()
    os.environ["RADAR_SOURCES_MIRROR"] = mirror
    wh = Path(os.environ["BENCH_WAREHOUSE"])
    import duckdb

    from radar_pipeline.cli.runs import refresh_edition

    t1 = time.perf_counter()
    outcome = refresh_edition(edition, allow_missing_topics=allow, warehouse=wh)
    t2 = time.perf_counter()
    out = {"import_s": t1 - t0, "run_s": t2 - t1, "success": outcome.success,
           "failures": outcome.failures, "peak_rss_mib": C.peak_rss_mib()}
    if outcome.success:
        con = duckdb.connect(str(wh), read_only=True)
        out["rows"] = {t: con.sql(f"select count(*) from {t} where edition = {edition}").fetchall()[0][0]
                       for t in ("country_topic_risk", "inherent_risk", "inherent_risk_overall")}
        out["rows"]["topics"] = con.sql(f"select count(distinct topic) from country_topic_risk "
                                        f"where edition = {edition}").fetchall()[0][0]
        con.close()
    C.emit(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], int(sys.argv[3]), [a for a in sys.argv[4].split(",") if a])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--edition", type=int, default=2024)
    ap.add_argument("--shared-edition", type=int, default=2023)
    ap.add_argument("--shared-allow-missing", default="", help="comma list of topics allowed missing")
    args = ap.parse_args()
    print(f"machine: {C.machine()}", flush=True)
    cases = [("sample", str(C.REPO / "radar_pipeline/sample_mirror"), args.edition, [])]
    if SHARED.is_dir():
        cases.append(("shared", str(SHARED), args.shared_edition,
                      [t for t in args.shared_allow_missing.split(",") if t]))
    else:
        print(f"(no {SHARED}: shared-mirror case skipped)")
    table = []
    for name, mirror, edition, allow in cases:
        walls, runs = [], []
        for i in range(args.runs):
            wh = C.CACHE / f"refresh_{name}_{i}.duckdb"
            C.CACHE.mkdir(parents=True, exist_ok=True)
            wh.unlink(missing_ok=True)
            t = time.perf_counter()
            r = C.run_worker(Path(__file__), [mirror, str(edition), ",".join(allow)], {"BENCH_WAREHOUSE": str(wh)})
            walls.append(time.perf_counter() - t)
            wh.unlink(missing_ok=True)
            if not r["success"]:
                print(f"{name}: refresh FAILED {r['failures']}")
                break
            runs.append(r)
        if not runs:
            continue
        med_wall = C.median(walls)
        med_run = C.median([r["run_s"] for r in runs])
        rss = max(r["peak_rss_mib"] for r in runs)
        print(f"{name:<7} edition {edition}: wall median {med_wall:.1f}s [{', '.join(f'{w:.1f}' for w in walls)}] "
              f"(of which the Dagster run {med_run:.1f}s, imports {C.median([r['import_s'] for r in runs]):.1f}s)  "
              f"peak RSS {rss:.0f} MiB  rows {runs[-1]['rows']}", flush=True)
        table.append((name, edition, med_wall, med_run, rss))
    if len(table) == 2:
        print(f"shared / sample wall ratio: {table[1][2] / table[0][2]:.2f}x")
    print("\nmirror | edition | wall median s | run median s | peak RSS MiB | target")
    for name, edition, w, r, rss in table:
        print(f"{name} | {edition} | {w:.1f} | {r:.1f} | {rss:.0f} | <= 20 s")


if __name__ == "__main__":
    main()
