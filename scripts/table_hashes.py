"""One content hash per table, to prove a refactor leaves every number unchanged.

    python scripts/table_hashes.py --mirror ../shared/data/sources \\
        --allow-missing-topics children,freedom_of_association,working_hours,water \\
        --out before.tsv
    ... refactor ...
    python scripts/table_hashes.py --mirror ../shared/data/sources \\
        --allow-missing-topics children,freedom_of_association,working_hours,water \\
        --compare before.tsv

In a fresh temporary folder (warehouse, published file, Dagster instance, empty user files,
overrides and buyer lists, so nothing of the caller's `data/` is read or touched) it
refreshes the editions (default 2022, 2023, 2024) from the mirror, generates N SYNTHETIC
sites (default 10 000, `radar sites generate`'s generator, fixed seed), stores and scores
them for every edition, publishes the BI snapshot, and prints one line per table:

    <file>.<table>  <rows>  <hash>  <excluded columns>

The hash does not depend on row order: each row is written as text (every column cast to
VARCHAR, NULL as \\N, separated by \\x1f), hashed with MD5, and the 64-bit halves of the
row hashes are summed. Equal hashes mean the same multiset of rows.

Columns left out of the hash (listed per table in the output), because they differ between
two runs of the same code or by design of a refactor:
  * methodology_version: the fingerprint of the rule/SQL *text* (METHODOLOGY §8c); any edit
    to a SQL file changes it even when every number stays the same;
  * TIMESTAMP / TIMESTAMPTZ columns (scored_at, ingested_at, fetched_at, published_at, ...):
    wall-clock times of the run;
  * run_id, snapshot_id: ids of the Dagster run / published snapshot;
  * columns whose name ends in `path`, `landing`, `source_warehouse` (publish_info): absolute
    paths into the temp folder.
Everything else counts, including text columns (explanations, reasons, missing_topics).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

EXCLUDED_NAMES = {"methodology_version", "run_id", "snapshot_id", "landing", "source_warehouse"}
EXCLUDED_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")


def excluded(name: str, dtype: str) -> bool:
    return name in EXCLUDED_NAMES or name.endswith("path") or dtype.upper() in EXCLUDED_TYPES


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_hashes(con, catalog: str, label: str) -> list[tuple[str, int, str, list[str]]]:
    """(label.table, rows, hash, excluded columns) for every base table of `catalog`."""
    tables = [r[0] for r in con.sql(
        "select table_name from information_schema.tables where table_catalog = $c "
        "and table_type = 'BASE TABLE' order by table_name", params={"c": catalog}).fetchall()]
    out = []
    for table in tables:
        cols = con.sql("select column_name, data_type from information_schema.columns "
                       "where table_catalog = $c and table_name = $t order by ordinal_position",
                       params={"c": catalog, "t": table}).fetchall()
        kept = [c for c, t in cols if not excluded(c, t)]
        dropped = [c for c, t in cols if excluded(c, t)]
        row_text = ("concat_ws(chr(31), " + ", ".join(f"coalesce({_ident(c)}::varchar, '\\N')" for c in kept) + ")"
                    if kept else "''")
        n, upper, lower = con.sql(
            f"select count(*), coalesce(sum(md5_number_upper(x)::hugeint), 0), "
            f"coalesce(sum(md5_number_lower(x)::hugeint), 0) "
            f"from (select {row_text} as x from {_ident(catalog)}.{_ident(table)})").fetchall()[0]
        mask = (1 << 64) - 1
        digest = f"{int(upper) & mask:016x}{int(lower) & mask:016x}" if n else "empty"
        out.append((f"{label}.{table}", int(n), digest, dropped))
    return out


def build(args: argparse.Namespace, tmp: Path) -> Path:
    """Refresh, generate + score sites, publish into `tmp`; returns the warehouse path."""
    for name in ("user", "overrides", "buyers", "landing", "pictures", "dagster_home", "inbox"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    warehouse = tmp / "radar.duckdb"
    os.environ.update({
        "RADAR_SOURCES_MIRROR": str(Path(args.mirror).resolve()),
        "RADAR_WAREHOUSE": str(warehouse),
        "RADAR_PUBLISHED": str(tmp / "published" / "radar.duckdb"),
        "RADAR_USER_FILES": str(tmp / "user"),
        "RADAR_OVERRIDES": str(tmp / "overrides"),
        "RADAR_BUYERS_INBOX": str(tmp / "buyers"),
        "RADAR_LANDING": str(tmp / "landing"),
        "RADAR_PICTURES": str(tmp / "pictures"),
        "RADAR_SITES_INBOX": str(tmp / "inbox"),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
    })
    from radar_pipeline.cli.runs import refresh_edition

    allow = [t for t in (args.allow_missing_topics or "").split(",") if t]
    for edition in args.editions:
        t0 = time.perf_counter()
        outcome = refresh_edition(edition, allow_missing_topics=allow, warehouse=warehouse)
        if not outcome.success:
            sys.exit(f"refresh of edition {edition} failed: {outcome.failures}")
        print(f"# refreshed {edition} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store
    from radar_pipeline.sites.generate import generate_sites, write_sites

    con = connect(warehouse)
    try:
        countries = [r[0] for r in con.sql("select distinct iso3 from countries order by iso3").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class' order by code").fetchall()]
        sites_file = tmp / "sites.jsonl"
        write_sites(generate_sites(args.sites, args.seed, countries, classes), sites_file)
        t0 = time.perf_counter()
        store.ingest(con, sites_file)
        for edition in args.editions:
            store.score_and_store(con, edition, None)
        print(f"# {args.sites} sites stored and scored for {args.editions} in {time.perf_counter() - t0:.1f}s",
              file=sys.stderr)
    finally:
        con.close()

    from radar_pipeline.publish.build import publish

    publish(warehouse, tmp / "published" / "radar.duckdb", log=lambda *a, **k: None)
    return warehouse


def hash_files(warehouse: Path, published: Path) -> list[tuple[str, int, str, list[str]]]:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        rows = table_hashes(con, "wh", "warehouse")
        if published.exists():
            con.execute(f"attach '{published}' as pub (read_only)")
            rows += table_hashes(con, "pub", "published")
    finally:
        con.close()
    return rows


def read_tsv(path: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, n, digest, *_ = line.split("\t")
            out[name] = (n, digest)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", required=True, help="publisher files <source>/<vintage>/<file>")
    ap.add_argument("--allow-missing-topics", default="",
                    help="comma-separated topics the mirror has no data for (as `radar refresh`)")
    ap.add_argument("--editions", default="2022,2023,2024",
                    type=lambda s: [int(x) for x in s.split(",") if x])
    ap.add_argument("--sites", type=int, default=10_000, help="SYNTHETIC sites to generate and score")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="also write the table to this TSV file")
    ap.add_argument("--compare", help="a TSV written by an earlier run: print same/DIFFERENT per table")
    ap.add_argument("--keep", help="build in this folder and keep it (default: a temp folder, removed)")
    ap.add_argument("--hash-only", metavar="DIR", help="build nothing: hash the radar.duckdb and "
                    "published/radar.duckdb a run with --keep DIR left")
    args = ap.parse_args()

    import duckdb

    # resolved before moving into the temp folder
    args.out = args.out and str(Path(args.out).resolve())
    args.compare = args.compare and str(Path(args.compare).resolve())
    if args.hash_only:
        tmp = Path(args.hash_only).resolve()
        rows = hash_files(tmp / "radar.duckdb", tmp / "published" / "radar.duckdb")
        ctx = None
    elif args.keep:
        tmp = Path(args.keep).resolve()
        tmp.mkdir(parents=True, exist_ok=True)
        ctx = None
    else:
        ctx = tempfile.TemporaryDirectory(prefix="radar_hashes_")
        tmp = Path(ctx.name)
    if not args.hash_only:
        try:
            os.chdir(tmp)  # relative defaults (data/...) land in the temp folder too
            warehouse = build(args, tmp)
            rows = hash_files(warehouse, tmp / "published" / "radar.duckdb")
        finally:
            if ctx is not None:
                ctx.cleanup()
    header = (f"# editions {','.join(map(str, args.editions))}; {args.sites} sites seed {args.seed}; "
              f"mirror {Path(args.mirror).resolve()}; duckdb {duckdb.__version__}")
    lines = [header] + [f"{name}\t{n}\t{digest}\t{','.join(dropped)}" for name, n, digest, dropped in rows]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.compare:
        before = read_tsv(Path(args.compare))
        now = {name: (str(n), digest) for name, n, digest, _ in rows}
        print("\n# comparison with", args.compare)
        for name in sorted(before.keys() | now.keys()):
            b, a = before.get(name), now.get(name)
            state = ("same" if a == b else "only before" if a is None else "only now" if b is None
                     else f"DIFFERENT rows {b[0]} -> {a[0]}")
            print(f"{name}\t{state}")
        return 0 if before == now else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
