"""Which stored rows disagree with the rules in force (METHODOLOGY §8c, issue 21 item 2).

A rule edit changes a stage's version (radar_pipeline/rules/fingerprint.py); the rows computed
before it keep the old one. They are found by version, in every edition and every stage — not
by "the edition just refreshed" — plus the site scores computed from inputs that changed since
(older than their edition's inherent stage). sql/warehouse/stale_rows.sql counts them per table
and edition (`radar methodology --stale`, the published edition_status);
sql/warehouse/stale_site_scores.sql names the sites to rescore. A refresh recomputes what they
list (radar_pipeline/cli/runs.py `bring_current`; the daemon's `methodology_sensor`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.platform.settings import SQL_DIR
from radar_pipeline.rules import fingerprint
from radar_pipeline.rules.methodology import TOPICS

if TYPE_CHECKING:
    import polars as pl

STALE_ROWS_SQL = SQL_DIR / "warehouse" / "stale_rows.sql"
STALE_SITES_SQL = SQL_DIR / "warehouse" / "stale_site_scores.sql"


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Temp objects the staleness SQL reads: current_versions(stage, version) and the view
    stale_rows. Temp: a read-only connection (publish, `radar methodology`) can use them."""
    import polars as pl

    versions = pl.DataFrame([{"stage": s, "version": v} for s, v in fingerprint.versions().items()])  # noqa: F841
    con.execute("create or replace temp table current_versions as select * from versions")
    con.execute("create or replace temp view stale_rows as " + STALE_ROWS_SQL.read_text(encoding="utf-8"))


def stale_rows(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per table x edition: rows not current, with the reason (version | inputs)."""
    install(con)
    return con.sql("select * from stale_rows").pl()


def stale_site_scores(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """(edition, site_id) of every stored site score to recompute."""
    install(con)
    return con.sql(STALE_SITES_SQL.read_text(encoding="utf-8")).pl()


def stale_editions(stale: pl.DataFrame, stages: tuple[str, ...] = ("country", "inherent")) -> list[int]:
    """Editions with a stale row in one of `stages` (a refresh of the edition recomputes them)."""
    import polars as pl

    return sorted(int(e) for e in stale.filter(pl.col("stage").is_in(stages) & pl.col("edition").is_not_null())
                  ["edition"].unique().to_list())


def reference_stale(stale: pl.DataFrame) -> bool:
    """A rule table loaded without an edition (sector weights, indicator registry) is stale: the
    next refresh of any edition rewrites it."""
    import polars as pl

    return stale.filter(pl.col("edition").is_null()).height > 0


def missing_topics(con: duckdb.DuckDBPyConnection, edition: int) -> list[str]:
    """Topics the edition's stored country risk lacks: the topics its refresh was allowed to
    miss, so a refresh that brings it current asks for the same."""
    present = {r[0] for r in con.execute("select distinct topic from country_topic_risk where edition = $e",
                                         {"e": edition}).fetchall()}
    return [t for t in TOPICS if t not in present] if present else []


def describe(stale: pl.DataFrame) -> list[str]:
    """One line per stale table x edition, for the terminal."""
    return [f"edition {'-' if e is None else e} {stage:8s} {table}: {n} of {total} row(s) stale ({reason}"
            + (f"; stored {versions}" if versions else "") + ")"
            for table, stage, e, total, n, reason, versions in stale.iter_rows()]
