"""Writing sites into the warehouse and scoring a set of them — shared by the
Dagster sensor/asset and the CLI, so both paths give identical results.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline import METHODOLOGY_VERSION
from radar_pipeline.sites import scoring
from radar_pipeline.sites.intake import IntakeResult, read_sites_jsonl


@dataclass
class IngestSummary:
    file: str
    file_sha256: str
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: int = 0

    @property
    def to_score(self) -> list[str]:
        return [*self.new, *self.changed]


def reference(con: duckdb.DuckDBPyConnection) -> tuple[set[str], pl.DataFrame, set[str]]:
    """Country universe, ISIC table and control ids the intake validates against."""
    countries = {r[0] for r in con.sql("select iso3 from countries").fetchall()}
    isic = con.sql("select code, level, section, division, grp, is_primary_producer from isic").pl()
    if not countries or isic.is_empty():
        raise RuntimeError("the warehouse has no countries/isic yet: run `radar refresh` (or materialize "
                           "the reference assets) before loading sites")
    controls = set(scoring.read_controls()["control_id"].to_list())
    return countries, isic, controls


def read_file(con: duckdb.DuckDBPyConnection, path: Path) -> IntakeResult:
    countries, isic, controls = reference(con)
    return read_sites_jsonl(path, countries=countries, isic=isic, controls=controls)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, result: IntakeResult | None = None) -> IngestSummary:
    """Validate a JSON Lines file and store it: new/changed sites replace their
    current state, unchanged ones are left alone, rejects are (re)recorded for
    this file content. One transaction: a crash leaves the previous state."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = result or read_file(con, path)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    incoming = result.sites  # noqa: F841 — used by name in SQL
    known = con.sql("select site_id, content_hash from sites").pl()
    diff = result.sites.join(known, on="site_id", how="left", suffix="_old")
    new = diff.filter(pl.col("content_hash_old").is_null())["site_id"].to_list()
    changed = diff.filter(pl.col("content_hash_old").is_not_null()
                          & (pl.col("content_hash_old") != pl.col("content_hash")))["site_id"].to_list()
    summary = IngestSummary(path.name, digest, new, changed,
                            unchanged=result.sites.height - len(new) - len(changed),
                            rejected=result.rejects.height)
    touched = pl.DataFrame({"site_id": summary.to_score}, schema={"site_id": pl.String})
    upd = result.sites.join(touched, on="site_id", how="semi").with_columns(updated_at=pl.lit(now))
    saq = result.saq.join(touched, on="site_id", how="semi")
    ctl = result.controls.join(touched, on="site_id", how="semi")
    ncs = result.nonconformities.join(touched, on="site_id", how="semi")
    hist = upd.select("site_id", "content_hash",
                      change=pl.when(pl.col("site_id").is_in(new)).then(pl.lit("new")).otherwise(pl.lit("changed")),
                      source_file="source_file", source_line="source_line", received_at="updated_at")
    rejects = result.rejects.with_columns(file_sha256=pl.lit(digest), received_at=pl.lit(now))
    log = pl.DataFrame([{"file": path.name, "file_sha256": digest, "processed_at": now,
                         "n_valid": result.sites.height, "n_rejected": result.rejects.height,
                         "n_new": len(new), "n_changed": len(changed), "n_unchanged": summary.unchanged}])
    for name, frame in {"touched": touched, "upd": upd, "saq": saq, "ctl": ctl, "ncs": ncs,
                        "hist": hist, "rejects": rejects, "log": log}.items():
        con.register(f"_in_{name}", frame)
    con.execute("begin transaction")
    try:
        for table in ("site_saq", "site_controls", "site_nonconformities", "sites"):
            con.execute(f"delete from {table} where site_id in (select site_id from _in_touched)")
        con.execute("insert into sites by name select * from _in_upd")
        con.execute("insert into site_saq by name select * from _in_saq")
        con.execute("insert into site_controls by name select * from _in_ctl")
        con.execute("insert into site_nonconformities by name select * from _in_ncs")
        con.execute("insert into site_history by name select * from _in_hist")
        con.execute("delete from site_rejects where file_sha256 = $d", {"d": digest})
        con.execute("insert into site_rejects by name select * from _in_rejects")
        con.execute("insert into site_intake_files by name select * from _in_log")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        for name in ("touched", "upd", "saq", "ctl", "ncs", "hist", "rejects", "log"):
            con.unregister(f"_in_{name}")
    return summary


def latest_edition(con: duckdb.DuckDBPyConnection) -> int:
    row = con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0]
    if row is None:
        raise RuntimeError("no inherent risk in the warehouse: run `radar refresh --edition Y` first")
    return int(row)


def score_and_store(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                    methodology_version: str = METHODOLOGY_VERSION) -> pl.DataFrame:
    """Score the given sites (all when None) for an edition and replace their rows
    in site_scores / site_score_factors for that edition only. Returns the scores."""
    scoring.load_rules(con, temp=True)
    scores = scoring.score_sites(con, edition, site_ids, methodology_version)
    factors = con.sql(scoring._sql("site_score_factors"), params={"edition": edition}).pl()
    scores = scores.with_columns(scored_at=pl.lit(datetime.now(timezone.utc).replace(tzinfo=None)))
    con.register("_scored", scores)
    con.register("_factors", factors)
    con.execute("begin transaction")
    try:
        con.execute("delete from site_scores where edition = $e and site_id in (select site_id from score_scope)",
                    {"e": edition})
        con.execute("insert into site_scores by name select * from _scored")
        con.execute("delete from site_score_factors where edition = $e "
                    "and site_id in (select site_id from score_scope)", {"e": edition})
        con.execute("insert into site_score_factors by name select * from _factors")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_scored")
        con.unregister("_factors")
    return scores
