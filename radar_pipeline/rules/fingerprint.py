"""Methodology version (METHODOLOGY §8c): a fingerprint of the rules that produced a row.

Every output row carries `methodology_version` = package version + a short sha256 of the
content of the rule tables and SQL files its stage reads, *plus its upstream stage's
version*. Three stages, each a superset of the one before:

    country   topics, indicators, country overrides,     -> indicator_scores, country_topic_risk
              universe additions, sql/country_risk
    inherent  + sector weights, goods mapping, FLI,        -> high_risk_goods, hrg_uplift,
                deforestation, sql/sectors (incl. the         sector_weighted_country_risk,
                sector_weight_lookup macro)                   inherent_risk(_overall)
    site      + SAQ fields/factors/levels, controls,       -> site_scores, site_score_factors
                score categories, sql/sites (incl. the
                score_rules macros), sites/scoring.py
                (renders bands and conditions into SQL)

So editing rules/sector_weights.csv changes the inherent and site versions and leaves the
country version alone; two rows with the same version were computed by the same rules.
The same strings are the Dagster `code_version` of the assets, so the UI marks them stale
after a rule edit.

Files are hashed by content with line endings normalised (a Windows checkout must not
change the version), keyed by their path relative to the rules/sql folder (a renamed
file is a different methodology). Documentation files (*.md) and the download catalogue
(sources.csv: where files come from, recorded per edition in source_files) are not rules.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from radar_pipeline.platform import settings

DIGEST_CHARS = 12


# The release months of the download catalogue (rules/sources.csv `released`) decide which
# vintages an edition may read (METHODOLOGY §1), so they are rules; its URLs are not. This label
# hashes only the (source, vintage, released) of the rows that declare a month.
RELEASE_MONTHS = "sources.csv:released"


@dataclass(frozen=True)
class Stage:
    name: str
    upstream: str | None
    rules: tuple[str, ...]        # file names under the rules folder
    sql: tuple[str, ...]          # folders under sql/ (every *.sql in them)
    tables: tuple[str, ...]       # warehouse tables whose rows carry this stage's version
    # Python modules that turn rules into SQL (radar_pipeline/<path>): the site stage renders
    # each factor's bands and each control's condition into SQL over site_saq's columns there
    code: tuple[str, ...] = ()


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("country", None,
          rules=("topics.csv", "indicators.csv", "country_overrides.csv", "universe_additions.csv",
                 "gap_filling.csv", RELEASE_MONTHS, "benchmarks.csv"),
          sql=("country_risk",),
          tables=("edition_countries", "edition_sources", "indicator_registry", "indicator_scores",
                  "indicator_coverage", "country_topic_risk", "coverage_report", "benchmark_agreement",
                  "benchmark_disagreements", "country_topic_uncertainty", "country_topic_draws"),
          # the seeded simulation behind country_topic_uncertainty (issue 25 item 2)
          code=("country_risk/uncertainty.py",)),
    Stage("inherent", "country",
          rules=("sector_weights.csv", "goods_isic.csv", "fli_covered_divisions.csv", "ilab_derived_inputs.csv",
                 "deforestation_default.csv", "eudr_low_risk_countries.csv"),
          sql=("sectors",),
          tables=("sector_weights", "fli_covered", "high_risk_goods", "hrg_unmapped", "hrg_uplift",
                  "sector_weighted_country_risk", "inherent_risk", "inherent_risk_overall")),
    Stage("site", "inherent",
          rules=("saq_fields.csv", "saq_factors.csv", "saq_levels.csv", "controls.csv", "score_categories.csv"),
          sql=("sites",),
          # site_rejects carries the site version too, as the record of the rules that judged a line
          # at intake: the file is not kept, so it is never recomputed (not listed here)
          tables=("site_scores", "site_score_factors", "site_remediation", "site_uncertainty"),
          code=("sites/scoring.py",)),
)}
# Files in the rules folder that do not change any number (checked by a test: every other
# file must belong to a stage, so a new rule table cannot silently escape the version).
NOT_RULES = ("sources.csv",)


@functools.cache  # the code loaded in this process cannot change version; ~0.5 ms a lookup x 18 at load
def package_version() -> str:
    try:
        return metadata.version("radar-pipeline")
    except metadata.PackageNotFoundError:  # running from a bare source tree
        return "0+unknown"


def _content_digest(path: Path) -> str:
    if path.name == RELEASE_MONTHS:
        return _release_months_digest(path.with_name(RELEASE_MONTHS.split(":")[0]))
    if not path.is_file():
        return "absent"
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _release_months_digest(path: Path) -> str:
    import csv

    if not path.is_file():
        return "absent"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = sorted((r.get("source", ""), r.get("vintage", ""), (r.get("released") or "").strip())
                      for r in csv.DictReader(fh) if (r.get("released") or "").strip())
    return hashlib.sha256("\n".join(",".join(r) for r in rows).encode()).hexdigest()


def stage_files(stage: str, *, rules_dir: Path | None = None,
                sql_dir: Path | None = None) -> list[tuple[str, Path]]:
    """(label, path) of the files the stage itself adds (not its upstream's), in a fixed order.
    A listed rule file that is absent is kept (hashed as absent, see `_content_digest`): the
    version is computed when the definitions load, and must not stop them loading."""
    s = STAGES[stage]
    rules = rules_dir or settings.rules_dir()
    sql = sql_dir or settings.SQL_DIR
    files = []
    for name in s.rules:
        files.append((f"rules/{name}", rules / name))
    for folder in s.sql:
        files += [(f"sql/{folder}/{p.name}", p) for p in sorted((sql / folder).glob("*.sql"))]
    for name in s.code:
        files.append((f"radar_pipeline/{name}", settings.PACKAGE_DIR / name))
    return files


def version(stage: str, *, rules_dir: Path | None = None, sql_dir: Path | None = None) -> str:
    """`<package version>+<12 hex>` for the stage, chained to its upstream stage's version."""
    s = STAGES[stage]
    h = hashlib.sha256()
    h.update(f"stage={stage}\n".encode())
    if s.upstream:
        h.update(f"upstream={version(s.upstream, rules_dir=rules_dir, sql_dir=sql_dir)}\n".encode())
    for label, path in stage_files(stage, rules_dir=rules_dir, sql_dir=sql_dir):
        h.update(f"{label}\n".encode())
        h.update(_content_digest(path).encode() + b"\n")
    return f"{package_version()}+{h.hexdigest()[:DIGEST_CHARS]}"


def versions(**kwargs) -> dict[str, str]:
    return {name: version(name, **kwargs) for name in STAGES}


def describe(**kwargs) -> str:
    """What `radar methodology` prints: each stage's version, tables and the files it covers."""
    lines = [f"radar-pipeline {package_version()}; rules from {kwargs.get('rules_dir') or settings.rules_dir()}"]
    for name, s in STAGES.items():
        lines += ["", f"{name:<9} {version(name, **kwargs)}",
                  f"  rows of: {', '.join(s.tables)}",
                  f"  covers:  everything in '{s.upstream}' plus" if s.upstream else "  covers:"]
        for label, path in stage_files(name, **kwargs):
            lines.append(f"    {label:<44} sha256 {_content_digest(path)[:12]}")
    return "\n".join(lines)
