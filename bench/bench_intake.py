"""JSON Lines site intake (store.ingest) on a generated file, in this process.

    python bench/bench_intake.py FILE.jsonl [--twice]

Builds a fresh DuckDB warehouse in $RADAR_BENCH_CACHE holding the sample warehouse's
reference tables (countries, isic), runs store.ingest(FILE) and prints wall seconds,
µs/site and this process's peak RSS (ru_maxrss). --twice ingests the same file again
(everything unchanged) and reports that too. Generate the file with
`radar sites generate --n 1000000 --out FILE.jsonl --warehouse $RADAR_BENCH_CACHE/sample_2024.duckdb`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", type=Path)
    ap.add_argument("--twice", action="store_true")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit for the connection, e.g. 1GB")
    args = ap.parse_args()
    import duckdb

    from radar_pipeline.platform.warehouse import ensure_schema
    from radar_pipeline.sites import store

    src = C.sample_warehouse(2024)
    db = C.CACHE / f"intake_{args.file.stem}.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    ensure_schema(con)
    con.execute(f"attach '{src}' as wh (read_only)")
    for table in ("edition_countries", "isic"):
        con.execute(f"insert into {table} select * from wh.{table}")
    con.execute("detach wh")
    if args.memory_limit:
        con.execute(f"set memory_limit = '{args.memory_limit}'")
    memory_limit = con.sql("select current_setting('memory_limit')").fetchall()[0][0]
    out: dict = {"file": str(args.file), "memory_limit": memory_limit,
                 "rss_before_mib": round(C.peak_rss_mib())}
    t = time.perf_counter()
    s = store.ingest(con, args.file)
    out["ingest_s"] = round(time.perf_counter() - t, 2)
    out["new"], out["changed"], out["unchanged"], out["rejected"] = len(s.new), len(s.changed), s.unchanged, s.rejected
    n = len(s.new) + len(s.changed) + s.unchanged + s.rejected
    out["us_per_site"] = round(out["ingest_s"] / max(n, 1) * 1e6, 1)
    out["peak_rss_mib"] = round(C.peak_rss_mib())
    if args.twice:
        t = time.perf_counter()
        s2 = store.ingest(con, args.file)
        out["reingest_s"] = round(time.perf_counter() - t, 2)
        out["reingest_new_changed_unchanged"] = (len(s2.new), len(s2.changed), s2.unchanged)
        out["peak_rss_after_reingest_mib"] = round(C.peak_rss_mib())
    out["rows"] = {t: con.sql(f"select count(*) from {t}").fetchall()[0][0]
                   for t in ("sites", "site_saq", "site_controls", "site_nonconformities", "site_history",
                             "site_rejects")}
    con.close()
    db.unlink(missing_ok=True)
    C.emit(out)


if __name__ == "__main__":
    main()
