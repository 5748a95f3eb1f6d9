"""What the published snapshot was built from (`.publish_state.json` beside it), and whether the
warehouse has moved on since: a rerun after a kill between scoring and publishing (or after
--no-publish) publishes even when it has nothing to score."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import duckdb

from radar_pipeline.platform import lake, settings
from radar_pipeline.platform.safe_paths import checked
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.publish.tables import SQL_TABLES, publish_sql

# Written after a successful swap; `publish_due` compares it with the warehouse now, so a rerun
# after a kill between scoring and publishing (or after --no-publish) publishes even when it
# has nothing to score.
STATE_FILE = ".publish_state.json"
MARKER_HASH_ROWS = 2_000_000  # unstamped tables up to this size are hashed whole (~0.1 s per 1M rows)


def warehouse_marker(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[str]]:
    """A cheap fingerprint of the warehouse tables publish reads (those sql/publish/*.sql names,
    and buyer_sites): per table its row count and the latest value of each timestamp column;
    tables without one (edition and reference tables) are hashed row by row up to
    MARKER_HASH_ROWS rows. The site tables are stamped by every write (updated_at, scored_at,
    received_at, resolved_at); the large unstamped ones (site_score_factors) are written in the
    same transaction as a stamped one (site_scores)."""
    text = " ".join(publish_sql(name) for name in SQL_TABLES)
    tables = [r[0] for r in con.sql("select table_name from information_schema.tables where table_catalog = $db "
                                    "and table_schema = 'main' and table_type = 'BASE TABLE' order by 1",
                                    params={"db": db}).fetchall()
              if r[0] == "buyer_sites" or re.search(rf"\b{r[0]}\b", text)]
    marker = {}
    for table in tables:
        stamps = [r[0] for r in con.sql("select column_name from information_schema.columns where table_catalog = $db "
                                        "and table_schema = 'main' and table_name = $t and data_type like 'TIMESTAMP%' "
                                        "order by ordinal_position", params={"db": db, "t": table}).fetchall()]
        name = f'{db}.main."{table}"'
        n = con.sql(f"select count(*) from {name}").fetchall()[0][0]
        hashed = not stamps and n <= MARKER_HASH_ROWS
        if stamps or hashed:
            maxima = ", ".join([f'max("{c}")' for c in stamps] or ["null"])
            row = con.sql(f"select {maxima}, {'sum(hash(_radar_row))' if hashed else 'null'} "
                          f"from {name} as _radar_row").fetchall()[0]
        else:
            # nothing to aggregate (a large unstamped table: its count is its marker). Not
            # `select null, null from it`: with no aggregate that returns one row per table row
            # (2 s for site_score_factors' 8M rows at 100k sites, issue 24 item 3)
            row = (None, None)
        marker[table] = [str(n), *(str(v) for v in row)]
    return marker


def warehouse_name(warehouse: Path | str) -> str:
    return lake.parse(warehouse).display() if lake.is_lake(warehouse) else str(Path(warehouse).resolve())


def write_state(out: Path, state: dict) -> None:
    path = checked(out, out / STATE_FILE)
    tmp = checked(out, out / f".{STATE_FILE}.{os.getpid()}.tmp")  # a killed publish's: remove_orphans
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def publish_due(warehouse: Path | str, published: Path | str | None = None) -> str | None:
    """Why the published snapshot is behind `warehouse` (no published file, no record of what it
    was built from, another warehouse, tables changed since), or None when it is up to date."""
    published = Path(published or settings.published_path()).absolute()
    if not lake.is_lake(warehouse) and not published.exists():
        return f"no published file at {published}"
    try:
        state = json.loads((published.parent / STATE_FILE).read_text(encoding="utf-8"))
        built_from, then = state["warehouse"], state["marker"]
    except FileNotFoundError:
        return f"no record of what {published.parent} was published from"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its record {published.parent / STATE_FILE} is unreadable ({exc})"
    if built_from != warehouse_name(warehouse):
        return f"it was published from {built_from}"
    con = connect(warehouse, read_only=True)
    try:
        now = warehouse_marker(con, con.sql("select current_database()").fetchall()[0][0])
    finally:
        con.close()
    changed = sorted(t for t in now.keys() | then.keys() if now.get(t) != then.get(t))
    return f"changed since it was published: {', '.join(changed)}" if changed else None
