"""One check of the whole rules folder (settings.rules_dir(), RADAR_RULES_DIR for a what-if copy)
before anything is scored, so a broken rule table stops the run with a message naming the file
and the line instead of silently changing numbers (issue 22 item 2: a controls.csv cut in half
was accepted and 271 of 300 valid sites were then rejected as "unknown control id").

`check()` runs from `rule_sql.install` (every scoring, sector, country and publish connection)
and from the site intake (`sites.store.reference`). Per table it checks, for every rule file:

* readable UTF-8 text (a BOM is fine; UTF-16, Latin-1 or binary is refused with the byte),
* the header has the table's columns,
* every line has as many fields as the header and no quote is left open (a truncated file or a
  lost comma), key cells are not empty, keys are unique,
* ids that point into another table exist there (a control's applicability question, a factor's
  level, an indicator's topic, ...),
* then the table's own semantic check where one exists in this floor (methodology.read_topics,
  read_score_categories, gap_filling_settings). The site tables' own checks (points vs level,
  bands) run when scoring loads them (sites.scoring.load_rules), also before any score.

A folder is checked once per content (sha256 of its rule files): install() runs on ~70
connections of a refresh.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from radar_pipeline.platform import settings
from radar_pipeline.platform.text_input import sniff_utf8
from radar_pipeline.rules import methodology


class RuleTableError(ValueError):
    """A broken rule table; the message names the file and the line."""


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]                      # required columns
    key: tuple[str, ...] = ()                     # unique and non-empty
    refs: tuple[tuple[str, str, str], ...] = ()   # (column, other file, its column): ids must exist there
    allowed: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, allowed values)


# topics.csv lists pillars as well as topics: a control belongs to either
TABLES: dict[str, Table] = {
    "topics.csv": Table(methodology.TOPIC_COLUMNS, ("topic",)),
    "score_categories.csv": Table(methodology.SCORE_CATEGORY_COLUMNS, ("category",)),
    "gap_filling.csv": Table(("setting", "value", "reason"), ("setting",)),
    "indicators.csv": Table(("indicator_id", "topic", "source", "direction", "unit", "vintages", "series",
                             "valid_min", "valid_max"), ("indicator_id", "source", "vintages"),
                            refs=(("topic", "topics.csv", "topic"),),
                            allowed=(("direction", methodology.DIRECTIONS),)),
    "sources.csv": Table(("source", "vintage", "file", "url"), ("source", "vintage", "file")),
    "country_overrides.csv": Table(("source", "value", "iso3", "action", "reason"), ("source", "value")),
    "universe_additions.csv": Table(("iso3", "iso2", "name", "region", "subregion"), ("iso3",)),
    "sector_weights.csv": Table(("isic_code", "level", "topic", "weight"), ("isic_code", "level", "topic"),
                                refs=(("topic", "topics.csv", "topic"),),
                                allowed=(("level", ("section", "division")),)),
    "goods_isic.csv": Table(("good", "isic_class"), ("good", "isic_class")),
    "fli_covered_divisions.csv": Table(("isic_code", "level"), ("isic_code",)),
    "ilab_derived_inputs.csv": Table(("good", "input_good"), ("good", "input_good")),
    "deforestation_default.csv": Table(("commodity", "isic_class"), ("commodity", "isic_class")),
    "eudr_low_risk_countries.csv": Table(("iso3",), ("iso3",)),
    "saq_fields.csv": Table(("field", "type", "min", "max", "allowed_values"), ("field",),
                            allowed=(("type", ("boolean", "number", "integer", "enum", "text")),)),
    "saq_levels.csv": Table(("level", "points"), ("level",)),
    "saq_factors.csv": Table(("factor", "field", "denominator_field", "kind", "band_min", "min_inclusive",
                              "band_max", "max_inclusive", "match_value", "level"),
                             ("factor", "band_min", "band_max", "match_value"),
                             refs=(("field", "saq_fields.csv", "field"),
                                   ("denominator_field", "saq_fields.csv", "field"),
                                   ("level", "saq_levels.csv", "level"))),
    "controls.csv": Table(("control_id", "topic", "title", "level", "points", "applies_when_field",
                           "applies_when_test", "applies_when_value"), ("control_id",),
                          refs=(("topic", "topics.csv", "topic|pillar"),
                                ("applies_when_field", "saq_fields.csv", "field")),
                          allowed=(("level", ("1", "2", "3", "4")),)),
}
# key columns that may be empty (a factor band without a bound or a match value)
OPTIONAL_KEY = {"saq_factors.csv": {"band_min", "band_max", "match_value"}}

_CHECKED: dict[str, str] = {}  # rules folder -> digest of the content last found valid


def read_table(path: Path, table: Table) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of one rule file, refusing what is not a whole CSV table."""
    if not path.is_file():
        raise RuleTableError(f"{path}: rule table missing (or not a regular file)")
    text = sniff_utf8(path.read_bytes(), path, error=RuleTableError)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in table.columns if c not in header]
        if missing:
            raise RuleTableError(f"{path} line 1: missing column(s) {missing}; the header is {header}")
        rows = []
        line = reader.line_num
        for record in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(header):
                raise RuleTableError(f"{path} line {start}: {len(record)} field(s), the header has "
                                     f"{len(header)} (file truncated or a comma lost?)")
            rows.append((start, dict(zip(header, record))))
    except csv.Error as exc:  # an open quote at the end: the file was cut inside a quoted cell
        raise RuleTableError(f"{path} line {reader.line_num}: {exc} (file truncated?)") from None
    return rows


def check(rules: Path | None = None) -> None:
    """Raise RuleTableError naming file and line for the first broken rule table in `rules`
    (default settings.rules_dir()); returns at once when that content was checked before."""
    rules = Path(rules or settings.rules_dir())
    digest = hashlib.sha256()
    for name in TABLES:
        path = rules / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<absent>") + b"\0")
    if _CHECKED.get(str(rules)) == digest.hexdigest():
        return
    tables = {name: read_table(rules / name, t) for name, t in TABLES.items()}
    for name, t in TABLES.items():
        path = rules / name
        rows = tables[name]
        first: dict[tuple, int] = {}
        for line, r in rows:
            for col in t.key:
                if not r[col].strip() and col not in OPTIONAL_KEY.get(name, ()):
                    raise RuleTableError(f"{path} line {line}: {col} is empty")
            key = tuple(r[c].strip() for c in t.key)
            if key in first:
                raise RuleTableError(f"{path} line {line}: duplicate key {dict(zip(t.key, key))} "
                                     f"(first on line {first[key]})")
            first[key] = line
            for col, values in t.allowed:
                if r[col].strip() not in values:
                    raise RuleTableError(f"{path} line {line}: {col} {r[col]!r} is not one of {list(values)}")
            for col, other, other_cols in t.refs:
                value = r[col].strip()
                known = {o[c].strip() for _, o in tables[other] for c in other_cols.split("|")}
                if value and value not in known:
                    raise RuleTableError(f"{path} line {line}: {col} {value!r} is not a {other_cols} "
                                         f"of {other}")
    # the semantic checks that live on this floor (they name file and line themselves)
    try:
        methodology.read_topics(rules / "topics.csv")
        methodology.read_score_categories(rules / "score_categories.csv")
        methodology.gap_filling_settings(rules / "gap_filling.csv")
    except RuleTableError:
        raise
    except ValueError as exc:
        raise RuleTableError(str(exc)) from None
    _CHECKED[str(rules)] = digest.hexdigest()


def check_stored_controls(con, control_ids: set[str], rules: Path | None = None) -> None:
    """Stored sites whose control ids the catalogue no longer lists: a controls.csv cut at a line
    end is a valid shorter table, but the sites already stored tell that ids went missing (their
    controls would silently score nothing, new sites would be rejected)."""
    import polars as pl

    known = pl.DataFrame({"control_id": sorted(control_ids)}, schema={"control_id": pl.Utf8})  # noqa: F841 (SQL)
    gone = con.execute("select control_id, count(distinct site_id) from site_controls "
                       "where control_id not in (select control_id from known) "
                       "group by control_id order by control_id limit 5").fetchall()
    if gone:
        path = Path(rules or settings.rules_dir()) / "controls.csv"
        listed = ", ".join(f"{c!r} ({n} site(s))" for c, n in gone)
        raise RuleTableError(f"{path}: stored sites use control id(s) the table does not list: {listed} "
                             "(file truncated? restore the rows, or remove the control from the sites)")
