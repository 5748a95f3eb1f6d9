"""Coverage report per edition x topic (issue 13): countries observed / partly imputed /
imputed / missing, the indicators that carried data and the publisher vintages used — as
the asset's metadata (a table in the UI) and as the warehouse table `coverage_report`,
published for BI tools. A methodology owner sees thin topics at a glance.

The logic is sql/country_risk/coverage_report.sql; this module validates, writes the
edition's slice and describes it. It only reports: a thin topic never fails the run.
"""

import functools
from typing import TYPE_CHECKING

import dagster as dg

from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import DuckDBWarehouse, read_sql, replace_slice, table_schema_metadata
from radar_pipeline.rules.methodology import TOPICS

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

POOL = "duckdb_write"
# A topic is flagged "thin" when fewer than this share of the edition's countries are observed
# (the rest is imputed from region means or missing).
THIN_SHARE = 0.5

@functools.cache
def coverage_report_schema() -> "pa.DataFrameSchema":
    """Built on first validation: pandera (and pandas under it) would otherwise be imported by
    every process that loads the definitions, for ~0.5 s (issue 24 item 3)."""
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "edition": pa.Column(pl.Int32),
            "topic": pa.Column(str, pa.Check.isin(TOPICS)),
            "n_countries": pa.Column(pl.Int32, pa.Check.ge(0)),
            "observed": pa.Column(pl.Int32, pa.Check.ge(0)),
            "partly_imputed": pa.Column(pl.Int32, pa.Check.ge(0)),
            "imputed": pa.Column(pl.Int32, pa.Check.ge(0)),
            "missing": pa.Column(pl.Int32, pa.Check.ge(0)),
            "indicators": pa.Column(pl.Int32, pa.Check.ge(1)),
            "indicators_with_data": pa.Column(pl.Int32, pa.Check.ge(0)),
            "indicator_observed": pa.Column(str),
            "vintages": pa.Column(str),
            "data_year_min": pa.Column(pl.Int32, nullable=True),
            "data_year_max": pa.Column(pl.Int32, nullable=True),
            "indicators_left_out": pa.Column(str, nullable=True),
            "methodology_version": pa.Column(str),
        },
        name="coverage_report",
        unique=["edition", "topic"],
        checks=[pa.Check(lambda d: d.lazyframe.select(
            (pl.col("observed") + pl.col("partly_imputed") + pl.col("imputed") + pl.col("missing"))
            == pl.col("n_countries")), error="observed + partly_imputed + imputed + missing = n_countries")],
    )


def coverage_table_md(rows: "pl.DataFrame") -> str:
    head = ("| topic | observed | partly imputed | imputed | missing | indicators with data | vintages |\n"
            "|---|---|---|---|---|---|---|\n")
    return head + "\n".join(
        f"| {r['topic']}{' (thin)' if is_thin(r) else ''} | {r['observed']}/{r['n_countries']} | "
        f"{r['partly_imputed']} | {r['imputed']} | {r['missing']} | "
        f"{r['indicators_with_data']}/{r['indicators']} | {r['vintages'] or '-'} |"
        for r in rows.iter_rows(named=True))


def is_thin(row: dict) -> bool:
    return row["n_countries"] > 0 and row["observed"] < THIN_SHARE * row["n_countries"]


def build_rows(con, edition: int) -> "pl.DataFrame":
    import polars as pl

    from radar_pipeline.rules import fingerprint

    rows = con.sql(read_sql("country_risk/coverage_report"), params={"edition": edition}).pl()
    import pandera.polars as pa

    rows = rows.with_columns(methodology_version=pl.lit(fingerprint.version("country")))  # §8c
    try:
        coverage_report_schema().validate(rows, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise dg.Failure(f"coverage_report edition {edition}: {exc.failure_cases.head(5)}") from exc
    return rows


@dg.asset(group_name="country_risk", pool=POOL, partitions_def=editions, kinds={"duckdb", "sql"},
          deps=[dg.AssetKey("country_topic_risk")],
          description="Coverage per edition x topic: countries observed / partly imputed / imputed / missing, "
                      "indicators with data and the publisher vintages used "
                      "(sql/country_risk/coverage_report.sql). Reports only; never fails on thin data.",
          metadata={"dagster/table_name": "coverage_report"})
def coverage_report(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    edition = int(context.partition_key)
    with warehouse.get_connection() as con:
        rows = build_rows(con, edition)
        n = replace_slice(con, "coverage_report", rows, {"edition": edition})
        schema = table_schema_metadata(con, "coverage_report")
    thin = [r["topic"] for r in rows.iter_rows(named=True) if is_thin(r)]
    missing = rows.filter(pl.col("indicators_with_data") == 0)["topic"].to_list()
    if thin:
        context.log.warning(f"edition {edition}: fewer than {THIN_SHARE:.0%} of countries observed on "
                            f"{', '.join(thin)}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "dagster/column_schema": schema,
        "coverage": dg.MetadataValue.md(coverage_table_md(rows)),
        "thin_topics": ", ".join(thin) or "none",
        "topics_without_data": ", ".join(missing) or "none",
        "indicators_left_out": dg.MetadataValue.md(
            "| topic | left out by the coverage rule |\n|---|---|\n" + "\n".join(
                f"| {t} | {why} |" for t, why in rows.filter(pl.col("indicators_left_out").is_not_null())
                .select("topic", "indicators_left_out").iter_rows()))
        if rows["indicators_left_out"].is_not_null().any() else "none",
        "share_observed": dg.MetadataValue.float(
            float(rows["observed"].sum() / max(1, rows["n_countries"].sum()))),
    })
