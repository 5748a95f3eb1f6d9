"""Country risk per edition (METHODOLOGY §1-2) as Dagster assets.

sources (one asset per publisher) -> indicator_scores -> country_topic_risk.
Each source asset validates what it parsed *before* writing: a failing
source reports a failed blocking check and raises, so its previous rows and
everything downstream stay as they were.
"""

import csv
from contextlib import ExitStack
from typing import TYPE_CHECKING

import dagster as dg

from radar_pipeline.country_risk import edition_backup
from radar_pipeline.platform import integrity, settings
from radar_pipeline.platform.lazy import lazy_module
from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import (
    DuckDBWarehouse,
    read_sql,
    replace_slice,
    replace_slices,
    replace_table_unless_same,
    table_schema_metadata,
)
from radar_pipeline.rules import fingerprint, rule_sql
from radar_pipeline.rules.methodology import TOPICS
from radar_pipeline.sources import registry
from radar_pipeline.sources.toolkit import SourceError

if TYPE_CHECKING:
    import polars as pl

# pandera (and pandas under it) is 0.47 s of a cold import: loaded when a refresh first validates,
# not by every process that imports the definitions (issue 24 item 3)
schemas = lazy_module("radar_pipeline.metadata.schemas")
# numpy (0.1 s) is only for the uncertainty simulation, run by country_topic_risk
uncertainty = lazy_module("radar_pipeline.country_risk.uncertainty")

POOL = "duckdb_write"
GROUP = "country_risk"


# --- reference -------------------------------------------------------------------

@dg.asset(group_name="reference", pool=POOL, kinds={"duckdb", "polars"}, partitions_def=editions,
          description="The edition's country universe (METHODOLOGY §1): UN M49 areas with a region from the "
                      "M49 vintage released by the edition, plus Taiwan and Kosovo "
                      "(rules/universe_additions.csv); the gap-fill groups. Per edition, so refreshing one "
                      "edition never changes another (view `countries` = every edition's countries).",
          metadata={"dagster/table_name": "edition_countries"})
def countries(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    from radar_pipeline.sources import prefetch
    from radar_pipeline.sources.reference import un_m49

    edition = int(context.partition_key)
    # the run's publisher files parsed on a thread while this step and the next run (a no-op under
    # `radar refresh`, which started it before the run): sources/prefetch.py
    prefetch.start_for_run(context.run)
    files = registry.collect_files("un_m49", mirror=settings.sources_mirror(),
                                   landing=settings.landing_dir(), user_dir=settings.user_files_dir(),
                                   log=context.log.info)
    if not files:
        raise dg.Failure(f"no UN M49 file found (looked for un_m49/<vintage>/*.csv in "
                         f"{settings.sources_mirror() or settings.landing_dir()})")
    vintage, _, after = registry.choose_list_vintage("un_m49", files, edition)
    chosen = files[vintage][0]
    try:
        df = un_m49.parse_universe(chosen.path)
    except SourceError as exc:
        raise dg.Failure(str(exc)) from exc
    problems = schemas.validate(schemas.countries, df)
    if problems:
        raise dg.Failure(f"un_m49 {chosen.name}: " + "; ".join(problems[:5]))
    income, income_vintage, income_sources = income_groups(edition, context.log)
    rows = (df.select(pl.lit(edition, pl.Int32).alias("edition"), pl.all(),
                      pl.lit(vintage).alias("m49_vintage"))
              .join(income, on="iso3", how="left")
              .with_columns(income_vintage=pl.when(pl.col("income_group").is_not_null())
                            .then(pl.lit(income_vintage, pl.String))))
    sources_read = registry.list_source_rows(edition, "un_m49", files)
    country = pl.lit(fingerprint.version("country"))  # §8c: the universe and vintages are country rules
    with warehouse.get_connection() as con:
        # §1: a refresh of this edition starts here (every edition step is downstream of it): keep
        # the edition's rows as they are, so a failed refresh can put them back
        edition_backup.begin(con, edition, context.run.run_id, context.instance)
        n, *_ = replace_slices(con, [
            ("edition_countries", rows.with_columns(methodology_version=country), {"edition": edition}),
            ("edition_sources", sources_read.with_columns(methodology_version=country),
             {"edition": edition, "source": "un_m49"}),
            ("edition_sources", income_sources.with_columns(methodology_version=country),
             {"edition": edition, "source": "worldbank_class"})])
        schema = table_schema_metadata(con, "edition_countries")
    by_group = rows.group_by("income_group").len().sort("income_group", nulls_last=True)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "dagster/column_schema": schema,
        "file": chosen.name, "sha256": chosen.sha256, "vintage": vintage,
        "released_after_edition": after,
        "added_to_m49": ", ".join(df.filter(pl.col("m49").is_null())["iso3"].to_list()) or "none",
        "income_vintage": income_vintage or "none (no worldbank_class file: gap filling skips the peer groups)",
        "income_groups": dg.MetadataValue.json({str(g or "unclassified"): k for g, k in by_group.iter_rows()}),
    })


def income_groups(edition: int, log) -> "tuple[pl.DataFrame, str | None, pl.DataFrame]":
    """The World Bank income group of each economy as of the edition (METHODOLOGY §1: the
    CLASS.xlsx vintage released by the edition, else the oldest), the vintage, and its
    edition_sources row. Without any CLASS file every country is unclassified: gap filling then
    skips the peer groups (§2.3) and the run says so."""
    import polars as pl

    from radar_pipeline.sources.reference import worldbank_class

    empty = pl.DataFrame(schema={"iso3": pl.String, "income_group": pl.String})
    files = registry.collect_files("worldbank_class", mirror=settings.sources_mirror(),
                                   landing=settings.landing_dir(), user_dir=settings.user_files_dir(),
                                   log=log.info)
    if not files:
        log.warning(f"edition {edition}: no World Bank income classification (worldbank_class/<vintage>/"
                    "CLASS.xlsx): every country is unclassified and gap filling skips the peer groups")
        return empty, None, registry.edition_source_rows(edition, "worldbank_class", [], "")
    vintage, _, _ = registry.choose_list_vintage("worldbank_class", files, edition)
    try:
        groups = worldbank_class.parse_income_groups(files[vintage][0].path)
    except SourceError as exc:
        raise dg.Failure(str(exc)) from exc
    return (groups.select("iso3", "income_group"), vintage,
            registry.list_source_rows(edition, "worldbank_class", files))


@dg.asset(group_name="reference", pool=POOL, kinds={"duckdb"},
          description="Indicator registry (rules/indicators.csv): topic, source and direction of each indicator.",
          metadata={"dagster/table_name": "indicator_registry"})
def indicator_registry(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    path = settings.rules_dir() / "indicators.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    problems = registry_rule_problems(rows)
    # blank = the default (METHODOLOGY §1-2): 5 years, 100 countries, no clipping
    whole = r"^\s*\d+\s*$"
    df = (pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String) if rows else None)
            .with_columns(
                max_age_years=pl.when(pl.col("max_age_years").fill_null("").str.contains(whole))
                                .then(pl.col("max_age_years").str.strip_chars().cast(pl.Int32))
                                .otherwise(pl.lit(registry.EDITION_WINDOW, pl.Int32)),
                min_countries=pl.when(pl.col("min_countries").fill_null("").str.contains(whole))
                                .then(pl.col("min_countries").str.strip_chars().cast(pl.Int32))
                                .otherwise(pl.lit(registry.DEFAULT_MIN_COUNTRIES, pl.Int32)),
                clip_min=pl.col("clip_min").str.strip_chars().replace("", None).cast(pl.Float64, strict=False),
                clip_max=pl.col("clip_max").str.strip_chars().replace("", None).cast(pl.Float64, strict=False))
            .select("indicator_id", "topic", "source", "direction", "unit", "note",
                    "max_age_years", "min_countries", "clip_min", "clip_max")
            .unique("indicator_id", keep="first", maintain_order=True)
            .with_columns(methodology_version=pl.lit(fingerprint.version("country"))))
    conflicts = (pl.DataFrame(rows).group_by("indicator_id")
                   .agg(*(pl.col(c).fill_null("").n_unique().alias(c) for c in
                          ("topic", "direction", "max_age_years", "min_countries", "clip_min", "clip_max")))
                   .filter(pl.any_horizontal(pl.exclude("indicator_id") > 1)))
    problems += schemas.validate(schemas.indicator_registry, df)
    if conflicts.height:
        problems.append(f"indicators whose rows disagree on topic, direction, max_age_years, min_countries or "
                        f"clipping: {conflicts['indicator_id'].to_list()}")
    if problems:
        raise dg.Failure(f"{path}: " + "; ".join(problems[:5]))
    with warehouse.get_connection() as con:
        # unchanged rules are not rewritten; a DuckLake write conflict is retried
        replace_table_unless_same(con, "indicator_registry", df)
        schema = table_schema_metadata(con, "indicator_registry")
    return dg.MaterializeResult(metadata={"dagster/row_count": df.height, "dagster/column_schema": schema,
                                          "topics_covered": len(set(df["topic"]))})


def registry_rule_problems(rows: list[dict]) -> list[str]:
    """Rows of rules/indicators.csv whose coverage/age/clipping cells are not numbers, named by
    line and column (a blank cell is the default)."""
    problems = []
    for line, r in enumerate(rows, start=2):
        for col in ("max_age_years", "min_countries"):
            v = (r.get(col) or "").strip()
            if v and not v.isdigit():
                problems.append(f"line {line} ({r.get('indicator_id')}): {col} = {v!r} is not a whole number")
        bounds = {}
        for col in ("clip_min", "clip_max"):
            v = (r.get(col) or "").strip()
            if v:
                try:
                    bounds[col] = float(v)
                except ValueError:
                    problems.append(f"line {line} ({r.get('indicator_id')}): {col} = {v!r} is not a number")
        if len(bounds) == 2 and bounds["clip_min"] >= bounds["clip_max"]:
            problems.append(f"line {line} ({r.get('indicator_id')}): clip_min must be below clip_max")
    return problems


# --- sources ---------------------------------------------------------------------

def edition_sources_md(rows: "pl.DataFrame") -> str:
    if rows is None or rows.is_empty():
        return "no vintage read"
    return ("| source | vintage | released | after edition | indicators | rule |\n|---|---|---|---|---|---|\n"
            + "\n".join(f"| {r['source']} | {r['vintage']} | {r['release_year'] or '-'} | "
                         f"{'**yes**' if r['released_after_edition'] else 'no'} | {r['indicators'] or '-'} | "
                         f"{r['rule']} |" for r in rows.iter_rows(named=True)))


def build_source_asset(source: str) -> dg.AssetsDefinition:
    check_name = "parsed_and_valid"

    @dg.asset(
        name=f"{source}_observations", group_name="sources", pool=POOL,
        partitions_def=editions, deps=[countries], kinds={"duckdb", "polars"},
        description=(f"Observations from the `{source}` adapter inside the edition window "
                     "(Y-5..Y), written to indicator_observations (slice edition x source)."),
        metadata={"dagster/table_name": "indicator_observations", "source": source},
        check_specs=[dg.AssetCheckSpec(check_name, asset=f"{source}_observations", blocking=True,
                                       description="Publisher files parse, countries map, schema holds")],
        retry_policy=dg.RetryPolicy(max_retries=1, delay=5),
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
        import polars as pl

        edition = int(context.partition_key)
        # One connection for the step (opening the warehouse file costs 40-90 ms: catalog read,
        # the checkpoint when it closes; 18 sources per refresh), opened once the files are
        # fetched and parsed, when the country universe is needed: a download or a big parse
        # never holds the file's lock.
        with ExitStack() as stack:
            held: list = []

            def universe() -> set[str]:
                if not held:
                    held.append(stack.enter_context(warehouse.get_connection()))
                countries = {r[0] for r in held[0].sql("select iso3 from edition_countries where edition = $e",
                                                       params={"e": edition}).fetchall()}
                if not countries:
                    # a retry 5 s later finds no countries either
                    raise dg.Failure(f"edition {edition} has no countries: materialize `countries` for it first",
                                     allow_retries=False)
                return countries

            def failed(exc: SourceError) -> dg.AssetCheckResult:
                # Report, then fail: the check shows why in the UI, the raise stops
                # downstream, and the previous slice of this source is kept.
                return dg.AssetCheckResult(check_name=check_name, passed=False,
                                           severity=dg.AssetCheckSeverity.ERROR,
                                           metadata={"error": str(exc), "file": exc.file or "",
                                                     "row": exc.row or "", "field": exc.field or ""})

            try:
                load = registry.load_source(source, edition, universe, log=context.log.info)
                if not held:  # no rows to resolve: the universe is still checked
                    universe()
                con = held[0]
                problems = schemas.validate(schemas.indicator_observations, load.observations)
                if problems:
                    raise SourceError(source, "; ".join(problems[:10]))
            except SourceError as exc:
                yield failed(exc)
                raise dg.Failure(str(exc)) from exc

            obs, notes = load.observations, load.notes
            files_df = pl.DataFrame(
                [{"edition": edition, "source": source, "vintage": f.vintage, "file": f.name,
                  "url": f.url, "sha256": f.sha256, "bytes": f.path.stat().st_size,
                  "fetched_at": f.extra.get("fetched_at")} for f in load.files],
                schema={"edition": pl.Int32, "source": pl.String, "vintage": pl.String, "file": pl.String,
                        "url": pl.String, "sha256": pl.String, "bytes": pl.Int64, "fetched_at": pl.String})
            notes_df = notes.with_columns(edition=pl.lit(edition, pl.Int32))
            # e.g. a user row for a publisher's value: refused before anything is written
            from radar_pipeline.sources.adapters import user as user_source  # polars: not with the definitions
            clash = user_source.clash_with_other_sources(con, edition, source, obs)
            if not clash:
                where = {"edition": edition, "source": source}
                # one transaction: the source's rows, files, notes and vintages land together
                n, *_ = replace_slices(con, [("indicator_observations", obs, where),
                                             ("source_files", files_df, where), ("source_notes", notes_df, where),
                                             ("edition_sources", load.edition_sources.with_columns(
                                                 methodology_version=pl.lit(fingerprint.version("country"))),
                                              where)])
                schema = table_schema_metadata(con, "indicator_observations")
        if clash:
            exc = SourceError(source, clash)
            yield failed(exc)
            raise dg.Failure(str(exc)) from exc
        context.log.info(f"[{source}] {len(load.files)} file(s) in vintages {load.vintages}: "
                         f"{obs.height} observations for edition {edition}, {notes.height} rows left out")
        yield dg.AssetCheckResult(check_name=check_name, passed=True,
                                  metadata={"rows": n, "left_out": notes.height})
        per_indicator = obs.group_by("indicator_id").agg(pl.col("iso3").n_unique()).sort("indicator_id")
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": n,
            "dagster/column_schema": schema,
            "countries": obs["iso3"].n_unique(),
            "coverage": dg.MetadataValue.md(
                "| indicator | countries |\n|---|---|\n" + "\n".join(
                    f"| {r[0]} | {r[1]} |" for r in per_indicator.iter_rows())) if n else "no data in window",
            "vintages": ", ".join(load.vintages),
            # METHODOLOGY §1 "as of the edition": which vintages this edition read, and why
            "edition_sources": dg.MetadataValue.md(edition_sources_md(load.edition_sources)),
            "not_yet_released": ", ".join(load.not_yet_released) or "none",
            "files": dg.MetadataValue.json({f.name: {"sha256": f.sha256, "url": f.url, "vintage": f.vintage}
                                            for f in load.files}),
            "left_out_rows": notes.height,
        })

    return _asset


source_assets = [build_source_asset(s) for s in registry.indicator_sources()]


# --- scores ----------------------------------------------------------------------

@dg.asset(group_name=GROUP, pool=POOL, partitions_def=editions, kinds={"duckdb", "sql"},
          deps=[indicator_registry, countries, *source_assets],
          description="Indicator values normalised to 1-6 (min-max by direction, after clipping) for the latest "
                      "observation in each indicator's window, for the indicators the coverage rule keeps "
                      "(table indicator_coverage); gaps filled peers first (income group within the sub-region, "
                      "the region, anywhere; then geography; then the world) and flagged with the donors "
                      "(sql/country_risk/indicator_coverage.sql, indicator_scores.sql).",
          metadata={"dagster/table_name": "indicator_scores"}, code_version=fingerprint.version("country"))
def indicator_scores(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    from radar_pipeline.rules.methodology import gap_filling_settings

    edition = int(context.partition_key)
    version = fingerprint.version("country")
    try:
        min_donors = gap_filling_settings()["min_donors"]
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    cap = settings.min_countries_cap()
    with warehouse.get_connection() as con:
        coverage = con.sql(read_sql("country_risk/indicator_coverage"),
                           params={"edition": edition, "min_countries_cap": cap or 1_000_000}).pl()
        coverage = coverage.with_columns(methodology_version=pl.lit(version))
        rule_sql.install(con)  # clip_value (the clipping rule's one home), temp on this connection
        # the coverage decision first: indicator_scores.sql reads it (a failure below leaves the
        # previous scores in place; the coverage rows then describe the current inputs)
        replace_slice(con, "indicator_coverage", coverage, {"edition": edition})
        rows = con.sql(read_sql("country_risk/indicator_scores"),
                       params={"edition": edition, "min_donors": min_donors}).pl()
        problems = schemas.validate(schemas.indicator_scores, rows)
        if problems:
            raise dg.Failure("indicator_scores: " + "; ".join(problems[:5]))
        # §8c: the rows carry the fingerprint of the rules that produced them
        rows = rows.with_columns(methodology_version=pl.lit(version))
        n = replace_slice(con, "indicator_scores", rows, {"edition": edition})
        flat = flat_indicators(con, edition)
        for ind in flat:
            context.log.warning(f"indicator {ind}: every country has the same value (after clipping) in edition "
                                f"{edition}; all get 3.5 (METHODOLOGY §2.2)")
        left_out = coverage.filter(~pl.col("included"))
        for r in left_out.iter_rows(named=True):
            context.log.warning(f"edition {edition}: indicator {r['indicator_id']} (topic {r['topic']}) left out "
                                f"by the coverage rule: {r['reason']} (METHODOLOGY §2)")
        world = world_mean_fills(con, rows, edition)
        for r in world.iter_rows(named=True):
            context.log.warning(
                f"edition {edition}: indicator {r['indicator_id']} (topic {r['topic']}) has fewer than {min_donors} "
                f"observed countries in any peer or regional group of {r['n']} countries ({r['countries']}): "
                "they get the world mean, flagged world_mean with confidence 0 (METHODOLOGY §2.3)")
        schema = table_schema_metadata(con, "indicator_scores")
    by_method = rows.group_by("method").len().sort("method")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "dagster/column_schema": schema,
        "indicators": rows["indicator_id"].n_unique(),
        "by_method": dg.MetadataValue.json(dict(by_method.iter_rows())),
        "min_donors": min_donors,
        "min_countries_cap": cap if cap else "none",
        "flat_indicators": ", ".join(flat) or "none",
        "left_out_by_coverage": dg.MetadataValue.md(
            "| indicator | topic | countries | min_countries |\n|---|---|---|---|\n"
            + "\n".join(f"| {r['indicator_id']} | {r['topic']} | {r['n_countries']} | {r['min_countries']} |"
                        for r in left_out.iter_rows(named=True))) if left_out.height else "none",
        "world_mean_fills": dg.MetadataValue.md(
            "| indicator | topic | regions without enough donors | countries |\n|---|---|---|---|\n"
            + "\n".join(f"| {r['indicator_id']} | {r['topic']} | {r['regions']} | {r['countries']} |"
                        for r in world.iter_rows(named=True))) if world.height else "none",
    })


def flat_indicators(con, edition: int) -> list[str]:
    """Indicators whose observed values, as used (latest, clipped), are all equal (METHODOLOGY §2.2:
    every country gets 3.5 and a warning is recorded). Looks at the values the scores used, not at
    every year observed."""
    return [i for (i,) in con.sql("""
        select s.indicator_id
        from indicator_scores as s
        inner join indicator_registry as r using (indicator_id)
        where s.edition = $e and s.method = 'direct'
        group by s.indicator_id
        having count(distinct clip_value(s.value, r.clip_min, r.clip_max)) = 1
        order by 1""", params={"e": edition}).fetchall()]


def world_mean_fills(con, rows: "pl.DataFrame", edition: int) -> "pl.DataFrame":
    """Per indicator filled from the world mean: its topic, the regions lacking it and their countries."""
    import polars as pl

    world = rows.filter(pl.col("method") == "world_mean").select("indicator_id", "iso3")  # noqa: F841
    return con.sql("""
        select w.indicator_id, r.topic, string_agg(distinct c.region, ', ' order by c.region) as regions,
               count(*) as n, string_agg(w.iso3, ', ' order by w.iso3) as countries
        from world as w
        join indicator_registry as r using (indicator_id)
        join edition_countries as c on c.iso3 = w.iso3 and c.edition = $e
        group by all order by all""", params={"e": edition}).pl()


def topic_coverage(rows: "pl.DataFrame") -> "pl.DataFrame":
    """Countries per topic with all-direct data vs some imputation."""
    import polars as pl

    return (rows.group_by("topic")
                .agg(direct=(pl.col("n_imputed") == 0).sum(), imputed=(pl.col("n_imputed") > 0).sum())
                .sort("topic"))


@dg.asset(group_name=GROUP, pool=POOL, partitions_def=editions, kinds={"duckdb", "sql"},
          deps=[indicator_scores],
          description="Topic score 1-6 per country: mean of the topic's indicator scores "
                      "(sql/country_risk/country_topic_risk.sql). A topic with no data fails the run "
                      "unless listed in allow_missing_topics.",
          metadata={"dagster/table_name": "country_topic_risk"}, code_version=fingerprint.version("country"))
def country_topic_risk(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    edition = int(context.partition_key)
    # the run's settings: the launchpad's resources.warehouse.config.allow_missing_topics (checked
    # when the resource starts), the CLI's --allow-missing-topics (cli/runs.py), both through
    # RADAR_ALLOW_MISSING_TOPICS: one field in the launchpad
    from radar_pipeline.platform.run_settings import UI_FIELD, allowed_missing_topics, no_run_retry, unknown_topics

    allowed = allowed_missing_topics()
    unknown = unknown_topics(allowed)
    if unknown:
        no_run_retry(context)  # a setting to fix: a retry would fail the same way
        raise dg.Failure(f"allow_missing_topics names unknown topics {unknown}; topics are {list(TOPICS)}",
                         allow_retries=False)
    with warehouse.get_connection() as con:
        present = {r[0] for r in con.sql(
            "select distinct r.topic from indicator_scores s join indicator_registry r using (indicator_id) "
            "where s.edition = $e", params={"e": edition}).fetchall()}
        missing = [t for t in TOPICS if t not in present]
        not_allowed = [t for t in missing if t not in allowed]
        if not_allowed:
            n_countries = con.sql("select count(*) from edition_countries where edition = $e",
                                  params={"e": edition}).fetchall()[0][0]
            lacking = []
            for t in not_allowed:
                inds = con.sql("select r.indicator_id, r.source, c.reason from indicator_registry as r "
                               "left join indicator_coverage as c on c.indicator_id = r.indicator_id "
                               "and c.edition = $e where r.topic = $t order by 1",
                               params={"t": t, "e": edition}).fetchall()
                lacking.append(f"topic {t}: indicator(s) "
                               + (", ".join(f"{i} (source {src}"
                                            + (f"; left out by the coverage rule: {why})" if why else ")")
                                            for i, src, why in inds)
                                  or "none in rules/indicators.csv"))
            lacking = "; ".join(lacking)
            no_run_retry(context)  # the same sources and settings would fail the same way
            raise dg.Failure(
                f"edition {edition}: no indicator data for topic(s) {', '.join(not_allowed)} — {lacking} — "
                f"lacking for all {n_countries} countries of every region (no observation within each "
                "indicator's max_age_years of the edition, or too few countries). "
                "Supply a source (user file, mirror) or allow them: "
                # the whole list the next run needs: the topics already allowed plus these
                f"radar refresh --edition {edition} --allow-missing-topics "
                f"{','.join(t for t in TOPICS if t in set(not_allowed) | set(allowed))} "
                f"(UI launchpad: {UI_FIELD.format('allow_missing_topics')})")
        rows = con.sql(read_sql("country_risk/country_topic_risk"),
                       params={"edition": edition, "missing_topics": ",".join(missing)}).pl()
        problems = schemas.validate(schemas.country_topic_risk, rows)
        if problems:
            raise dg.Failure("country_topic_risk: " + "; ".join(problems[:5]))
        rows = rows.with_columns(methodology_version=pl.lit(fingerprint.version("country")))  # §8c
        # how sure (issue 25 item 2): the seeded simulation of the stated errors and the donors' spread,
        # stored beside the scores in the same transaction (country_risk/uncertainty.py)
        draws, intervals = uncertainty.compute(con, edition, reported=rows)
        mv = pl.lit(fingerprint.version("country"))
        n, *_ = replace_slices(con, [("country_topic_risk", rows, {"edition": edition}),
                                     ("country_topic_uncertainty", intervals.with_columns(methodology_version=mv),
                                      {"edition": edition}),
                                     ("country_topic_draws", draws.with_columns(methodology_version=mv),
                                      {"edition": edition}),
                                     ("edition_stages", edition_backup.stage_row(edition, "country"),
                                      {"edition": edition, "stage": "country"})])
        schema = table_schema_metadata(con, "country_topic_risk")
        # METHODOLOGY §1 "as of the edition": every vintage the edition's numbers rest on
        read = con.sql("select * from edition_sources where edition = $e order by source, vintage",
                       params={"e": edition}).pl()
    if missing:
        context.log.warning(f"edition {edition}: topics left out of every mean: {', '.join(missing)}")
    cov = topic_coverage(rows)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "dagster/column_schema": schema,
        "countries": rows["iso3"].n_unique(),
        "missing_topics": ", ".join(missing) or "none",
        "mean_confidence": float(rows["confidence"].mean()) if rows.height else 0.0,
        "uncertainty": f"{uncertainty.N_DRAWS} draws, seed {uncertainty.SEED}; interval sources: "
                       + ", ".join(f"{src} {k}" for src, k in intervals.group_by("source").len().sort("source")
                                   .iter_rows()),
        "edition_sources": dg.MetadataValue.md(edition_sources_md(read)),
        "released_after_edition": ", ".join(
            f"{s} {v}" for s, v in read.filter(pl.col("released_after_edition")).select("source", "vintage")
                                        .iter_rows()) or "none",
        "coverage": dg.MetadataValue.md(
            "| topic | countries direct | countries imputed |\n|---|---|---|\n"
            + "\n".join(f"| {t} | {d} | {i} |" for t, d, i in cov.iter_rows())),
    })


@dg.asset_check(asset=country_topic_risk, blocking=True,
                description="Every universe country has every present topic; scores within 1-6.")
def country_topic_risk_complete(context: dg.AssetCheckExecutionContext,
                                warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        edition = (int(context.partition_key) if context.has_partition_key
                   else integrity.latest_edition(con, "country_topic_risk"))
        passed, metadata = integrity.country_topic_risk_complete(con, edition)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)
