"""Fixed vocabulary of the methodology (METHODOLOGY §1). Rule *values* live in rules/.

The topics and their pillars have one home, rules/topics.csv (topic, pillar, topic_order,
label, pillar_label); TOPICS / PILLARS / TOPIC_PILLAR are read from it when this module is
imported, and SQL reads the same file as the temp table `topics` (radar_pipeline.rules.rule_sql).
Likewise the site score categories: rules/score_categories.csv (CATEGORIES, category_text;
SQL: the macro score_category in sql/sites/score_rules.sql).
"""
from __future__ import annotations

import csv
from pathlib import Path

from radar_pipeline.platform.settings import rules_dir

TOPICS_FILE = "topics.csv"
TOPIC_COLUMNS = ("topic", "pillar", "topic_order", "label", "pillar_label")


def _read_rule_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a rule CSV, refusing a file that lacks any of `columns`."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        return list(reader)


def read_topics(path: Path | None = None) -> list[dict[str, str]]:
    """Rows of rules/topics.csv in topic_order, checked: every column present, ids unique and
    non-blank, orders distinct integers, and each pillar's topics contiguous in that order (a
    pillar's topics are listed together in every table and chart)."""
    path = path or rules_dir() / TOPICS_FILE
    rows = _read_rule_csv(path, TOPIC_COLUMNS)
    problems = []
    for line, r in enumerate(rows, start=2):
        for col in TOPIC_COLUMNS:
            if not (r[col] or "").strip():
                problems.append(f"line {line}: {col} is empty")
        if not (r["topic_order"] or "").strip().isdigit():
            problems.append(f"line {line}: topic_order {r['topic_order']!r} is not a positive integer")
    for col in ("topic", "topic_order"):
        seen = [r[col] for r in rows]
        dups = sorted({v for v in seen if seen.count(v) > 1})
        if dups:
            problems.append(f"duplicate {col}: {', '.join(dups)}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    rows.sort(key=lambda r: int(r["topic_order"]))
    pillars_in_order = [r["pillar"] for r in rows]
    split = [p for i, p in enumerate(pillars_in_order) if p in pillars_in_order[:i] and pillars_in_order[i - 1] != p]
    if split:
        raise ValueError(f"{path}: the topics of pillar(s) {sorted(set(split))} are not contiguous in topic_order")
    return rows


SCORE_CATEGORY_COLUMNS = ("category", "min_score", "max_score", "color", "rationale")


def read_score_categories(path: Path | None = None) -> list[dict]:
    """rules/score_categories.csv in score order, checked: the bands are contiguous (each
    min_score is the previous max_score), only the first min and the last max may be open."""
    path = path or rules_dir() / "score_categories.csv"
    raw = _read_rule_csv(path, SCORE_CATEGORY_COLUMNS)

    def bound(line: int, r: dict, col: str) -> float | None:
        text = (r[col] or "").strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{path} line {line}: {col} {text!r} is not a number") from None

    rows = [{"category": r["category"].strip(), "min_score": bound(i, r, "min_score"),
             "max_score": bound(i, r, "max_score"), "color": r["color"].strip(), "rationale": r["rationale"]}
            for i, r in enumerate(raw, start=2)]
    problems = []
    if not rows:
        problems.append("no categories")
    for i, r in enumerate(rows):
        line = i + 2
        if not r["category"]:
            problems.append(f"line {line}: category is empty")
        if r["min_score"] is None and i > 0:
            problems.append(f"line {line}: only the first category may have no min_score")
        if r["max_score"] is None and i < len(rows) - 1:
            problems.append(f"line {line}: only the last category may have no max_score")
        if None not in (r["min_score"], r["max_score"]) and not r["min_score"] < r["max_score"]:
            problems.append(f"line {line}: min_score must be below max_score")
        if i > 0 and rows[i - 1]["max_score"] is not None and r["min_score"] != rows[i - 1]["max_score"]:
            problems.append(f"line {line}: min_score {r['min_score']} must equal the previous max_score "
                            f"{rows[i - 1]['max_score']} (no gap, no overlap)")
    names = [r["category"] for r in rows]
    if len(set(names)) != len(names):
        problems.append("duplicate category")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return rows


def categories() -> tuple[str, ...]:
    """The category names, lowest first (Low, Medium, High)."""
    return tuple(r["category"] for r in read_score_categories())


def category_text(path: Path | None = None) -> str:
    """'Low (< 4), Medium (< 6), High': the thresholds as documentation and help text show them."""
    rows = read_score_categories(path)
    return ", ".join(f"{r['category']} (< {r['max_score']:g})" if r["max_score"] is not None else r["category"]
                     for r in rows)


_ROWS = read_topics()
PILLARS: dict[str, tuple[str, ...]] = {}
for _r in _ROWS:
    PILLARS.setdefault(_r["pillar"], ())
    PILLARS[_r["pillar"]] += (_r["topic"],)
TOPICS: tuple[str, ...] = tuple(r["topic"] for r in _ROWS)
TOPIC_PILLAR: dict[str, str] = {r["topic"]: r["pillar"] for r in _ROWS}
TOPIC_LABELS: dict[str, str] = {r["topic"]: r["label"] for r in _ROWS}
DIRECTIONS = ("higher_is_riskier", "lower_is_riskier")
CATEGORIES: tuple[str, ...] = categories()  # site score categories, lowest first
# METHODOLOGY §2.3 gap filling, peers first, in the order tried; §8a confidence of each
# (1 observed, 0.5 peers: same income group, 0.25 geography alone, 0 the world mean)
IMPUTATION_CONFIDENCE: dict[str, float] = {
    "direct": 1.0,
    "peer_subregion_mean": 0.5,
    "peer_region_mean": 0.5,
    "income_group_mean": 0.5,
    "subregion_mean": 0.25,
    "region_mean": 0.25,
    "world_mean": 0.0,
}
IMPUTATION_METHODS = tuple(IMPUTATION_CONFIDENCE)
INCOME_GROUPS = ("low", "lower_middle", "upper_middle", "high")


GAP_FILLING_FILE = "gap_filling.csv"
GAP_FILLING_SETTINGS = {"min_donors": (1, 50)}  # setting -> allowed whole-number range


def gap_filling_settings(path: Path | None = None) -> dict[str, int]:
    """rules/gap_filling.csv (setting, value, reason) as {setting: int}: every known setting
    present once, a whole number in its range; errors name the file, line and setting."""
    path = path or rules_dir() / GAP_FILLING_FILE
    rows = _read_rule_csv(path, ("setting", "value", "reason"))
    out: dict[str, int] = {}
    for line, r in enumerate(rows, start=2):
        name, raw = (r["setting"] or "").strip(), (r["value"] or "").strip()
        if name not in GAP_FILLING_SETTINGS:
            raise ValueError(f"{path} line {line}: unknown setting {name!r} (known: {sorted(GAP_FILLING_SETTINGS)})")
        if name in out:
            raise ValueError(f"{path} line {line}: setting {name!r} given twice")
        lo, hi = GAP_FILLING_SETTINGS[name]
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise ValueError(f"{path} line {line}: {name} = {raw!r} must be a whole number {lo}-{hi}")
        out[name] = int(raw)
    missing = sorted(set(GAP_FILLING_SETTINGS) - set(out))
    if missing:
        raise ValueError(f"{path}: missing setting(s) {missing}")
    return out
