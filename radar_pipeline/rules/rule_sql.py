"""Rule tables and rule macros every SQL file may use, installed on a DuckDB connection.

`install(con)` creates, as temp objects of that connection (so read-only warehouses and the
in-memory publish connection get them too, and nothing is written to a warehouse):

  topics              rules/topics.csv (topic, pillar, topic_order, label, pillar_label)
  score_categories    rules/score_categories.csv (category, min_score, max_score, color, rationale)
  sector_weight_lookup()   table macro, sql/sectors/sector_weight_lookup.sql (§3 lookup)
  round_score(x), score_category(x)   macros, sql/sites/score_rules.sql (§8.3, §8.5)
  clip_value(x, lo, hi)    macro, sql/country_risk/clip_rules.sql (§2.2)
  clean_text(x)       macro, radar_pipeline/platform/text_input.py: control characters removed, a
                      formula start neutralised (the Python and polars rule, spelled for SQL)

Each rule thus has one home (a CSV row or one macro), read by every SQL file that applies it.
The CSVs are read from `settings.rules_dir()` at call time, like the other rule tables (parsed
once per file content: cached by path and bytes), and are part of the methodology version
(radar_pipeline/rules/fingerprint.py). Before anything is installed the whole folder is checked
(radar_pipeline/rules/check.py: truncated files, missing columns, duplicate keys, unknown ids).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.platform import settings, text_input
from radar_pipeline.rules import check as rules_check
from radar_pipeline.rules.methodology import TOPIC_COLUMNS, TOPICS_FILE, read_score_categories, read_topics

if TYPE_CHECKING:
    import polars as pl

MACRO_FILES = ("country_risk/clip_rules", "sectors/sector_weight_lookup", "sites/score_rules")


# polars -> DuckDB column types of a small frame created from SQL literals (the types an Arrow scan gives)
@functools.cache
def _small_types() -> dict[pl.DataType, str]:
    import polars as pl

    return {pl.Utf8: "VARCHAR", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Int32: "INTEGER",
            pl.Boolean: "BOOLEAN", pl.Date: "DATE"}


SMALL_FRAME_ROWS = 500


def _literal(value: object, sql_type: str) -> str:
    if value is None:
        return "NULL"
    if sql_type in ("VARCHAR", "DATE"):
        return "'" + str(value).replace("'", "''") + f"'::{sql_type}"
    if sql_type == "DOUBLE":
        return f"'{float(value)!r}'::DOUBLE"  # repr reads back as the same double (also inf, nan)
    return f"{bool(value)}" if sql_type == "BOOLEAN" else f"{int(value)}::{sql_type}"


def create_from_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, *,
                      temp: bool = True) -> None:
    """Create `table` (a constant name) from a polars frame handed over as Arrow — or, for a small
    frame of plain types (the rule tables), as SQL literals: DuckDB's first scan of an Arrow object
    (or binding of a Python parameter) imports pandas and pyarrow.dataset, ~1 s of a cold process."""
    types = [_small_types().get(dtype) for dtype in frame.dtypes]
    if frame.height <= SMALL_FRAME_ROWS and all(types) and not any(  # a NUL cannot be in SQL text
            frame[c].str.contains("\x00", literal=True).any() for c, t in zip(frame.columns, types) if t == "VARCHAR"):
        cols = ", ".join(f'"{c.replace(chr(34), chr(34) * 2)}" {t}' for c, t in zip(frame.columns, types))
        con.execute(f"create or replace {'temp ' if temp else ''}table {table} ({cols})")
        if frame.height:
            con.execute(f"insert into {table} values " + ", ".join(
                "(" + ", ".join(_literal(v, t) for v, t in zip(r, types)) + ")" for r in frame.iter_rows()))
        return
    view = f"_radar_load_{table}"
    con.register(view, frame)
    try:
        con.execute(f"create or replace {'temp ' if temp else ''}table {table} as select * from {view}")
    finally:
        con.unregister(view)


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the rule tables and macros above on `con` (idempotent; cheap: a few rows).
    First checks the whole rules folder (rules_check: once per content), so every scoring,
    sector, country and publish path stops on a broken rule table before computing anything."""
    rules = settings.rules_dir()
    rules_check.check(rules)
    create_from_frame(con, "topics", _cached(rules / TOPICS_FILE, _topics_frame))
    create_from_frame(con, "score_categories", _cached(rules / "score_categories.csv", _categories_frame))
    for name in MACRO_FILES:
        con.execute(_cached(settings.SQL_DIR / f"{name}.sql", lambda p: p.read_text(encoding="utf-8")))
    con.execute(text_input.clean_text_sql())  # free text as published (site names, override reasons)


# install() runs on every scoring, publish and sector connection; each file is parsed and checked
# once per content: path -> (bytes, value). Keyed by the content rather than the mtime, which
# has a coarse clock tick: a same-size edit within it would otherwise go unseen.
_CACHE: dict[str, tuple[bytes, object]] = {}


def _cached(path: Path, build):
    data = path.read_bytes()
    hit = _CACHE.get(str(path))
    if hit is None or hit[0] != data:
        hit = _CACHE[str(path)] = (data, build(path))
    return hit[1]


def _topics_frame(path: Path) -> pl.DataFrame:
    import polars as pl

    topics = pl.DataFrame(read_topics(path), schema=dict.fromkeys(TOPIC_COLUMNS, pl.Utf8))
    return topics.with_columns(pl.col("topic_order").cast(pl.Int32))


def _categories_frame(path: Path) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(read_score_categories(path),
                        schema={"category": pl.Utf8, "min_score": pl.Float64, "max_score": pl.Float64,
                                "color": pl.Utf8, "rationale": pl.Utf8})
