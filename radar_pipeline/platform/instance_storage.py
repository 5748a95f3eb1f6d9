"""The Dagster instance's sqlite storage, with partitioned materializations written in batches.

Why: a run that scores N site partitions reports N materialization events. Dagster batches
them (DAGSTER_EVENT_BATCH_SIZE, set in .env) and hands each batch to the event log's
`store_event_batch`. dagster-postgres writes a batch with one statement per table; the sqlite
event log inherits the generic loop, which stores the events one by one: per event a new
connection and a committed transaction on the run's shard, another on the index shard, plus a
table inspection. For a 2000-site inbox run that was 17-24 s of the run's score step
(bench/bench_inbox_to_published.py), while the scoring SQL took about 2 s.

`BatchingSqliteEventLogStorage.store_event_batch` does what the PostgreSQL storage does: the
batch's rows go into the run shard in one transaction, and into the index shard (the cross-run
copy the UI and asset queries read) in one transaction together with their asset tags and the
asset's latest-materialization row. The rows, ids, tags and asset entries are the ones the
one-by-one path writes (radar_pipeline_tests/test_instance_storage.py compares both). Any batch
that is not purely materializations or purely observations of one run goes the generic way.
Within a batch, the partition materializations' JSON and tag rows are filled into one serialised
event (`_RowTemplate`) instead of serialised one by one: 0.42-0.47 -> 0.28-0.31 ms per event
end to end on 100k sites (bench/README.md, eighth session).

Engines kept per shard (`_connect`): Dagster's sqlite event log makes an SQLAlchemy engine, opens
a sqlite connection, and closes and disposes both for every statement it runs (NullPool). Closing
the last connection of a WAL database checkpoints it. On the instance `radar refresh` opens, a
cProfile of a sample refresh gave 3.4 s to storing its 257 events (1146 engines made, 1151
connections opened and closed) and 1.4 s to the data-version lookups of its 31 asset steps; a
sample refresh took 8.3-9.2 s, 5.4-5.8 s with the engines kept (bench/README.md). Here an
engine, with one pooled connection, is kept per shard: the index shard and the last
ENGINES_KEPT run shards, closed beyond that, by `wipe` (which deletes the run shards' files) and
`dispose`, and not shared with a forked child (keyed by process id). Statements, transactions and
the lock around them are Dagster's: one connection in use at a time per storage, a transaction per
`_connect`, and the pool rolls back whatever a connection left open when it is returned, so an
idle kept connection holds no lock or snapshot and other processes' commits are seen by the next
statement (test_instance_storage.py).

`RadarSqliteStorage` is Dagster's DagsterSqliteStorage (same folders under base_dir, so an
existing instance keeps its runs and partitions) with this event log. dagster.yaml selects it
with `storage: custom:`.
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dagster import _check as check
from dagster._core.definitions.events import AssetMaterialization
from dagster._core.events import DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.pool import QueuePool

_BATCHED = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})


# Run shards whose engine (and pooled connection) is kept besides the index shard's: a process
# writes one run's events at a time; a webserver reading many runs closes the oldest.
ENGINES_KEPT = 8


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose store_event_batch writes a batch of asset events in one
    transaction per shard, and which keeps an engine per shard (see the module docstring)."""

    def _engines(self) -> OrderedDict:
        # made on first use: SqliteEventLogStorage.__init__ may connect (a new index shard is
        # reindexed) before a subclass's __init__ body could run. A forked child starts with none:
        # the parent's connections are the parent's (sqlite connections must not cross a fork).
        pid = os.getpid()
        if self.__dict__.get("_radar_engines_pid") != pid:
            self.__dict__["_radar_engines"] = OrderedDict()
            self.__dict__["_radar_engines_pid"] = pid
        return self.__dict__["_radar_engines"]

    def _engine(self, shard: str):
        engines = self._engines()
        engine = engines.get(shard)
        if engine is not None:
            engines.move_to_end(shard)
            return engine
        # Dagster's own engine for the shard (its connect timeout), with one kept connection instead
        # of NullPool (overflow, closed when returned: _initdb inspects with a second one); used
        # under _db_lock, one thread at a time, hence check_same_thread off
        engine = create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                               max_overflow=2, pool_reset_on_return="rollback",
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        engines[shard] = engine
        runs = [s for s in engines if s != INDEX_SHARD_NAME]
        for old in runs[:max(0, len(runs) - ENGINES_KEPT)]:
            engines.pop(old).dispose()
        return engine

    def _close_engines(self, keep_index: bool = False) -> None:
        engines = self._engines()
        for shard in [s for s in engines if not (keep_index and s == INDEX_SHARD_NAME)]:
            engines.pop(shard).dispose()

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        # as SqliteEventLogStorage._connect (lock, first-use init, one transaction), on a kept engine
        with self._db_lock:
            check.str_param(shard, "shard")
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _found(self, kind: str, name: str, probe=None) -> bool:
        """Whether the table or column `name` was found before, else whether `probe()` finds it
        now. Migrations add tables and columns and none drops one, so what was found stays found;
        what was not is asked again (a migration may add it)."""
        known = self.__dict__.setdefault(f"_radar_found_{kind}", set())
        if name not in known and probe is not None and probe():
            known.add(name)
        return name in known

    def has_table(self, table_name: str) -> bool:
        # Dagster's makes an engine per call, and is asked for every asset event stored, also
        # inside an index transaction (so not through the locked kept engine)
        return self._found("tables", table_name, lambda: SqliteEventLogStorage.has_table(self, table_name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        # Dagster inspects asset_keys' columns (a PRAGMA) each time it asks whether a migration
        # added one: three times for every asset record a step's data-version lookup reads
        return self._found("asset_key_cols", column_name,
                           lambda: SqliteEventLogStorage._has_asset_key_col_on_connection(self, conn, column_name))

    def has_asset_key_col(self, column_name: str) -> bool:
        # a column found is answered without opening a connection
        return self._found("asset_key_cols", column_name) or super().has_asset_key_col(column_name)

    def wipe(self) -> None:
        # the run shards' files are deleted: their kept connections would write into deleted files
        with self._db_lock:
            self._close_engines(keep_index=True)
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._close_engines()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not _batchable(events):
            return super().store_event_batch(events)
        # Each event is serialised once and the same row goes to both shards, as store_event
        # does; the rows are written with one compiled INSERT run as executemany (one set of
        # bound values per row, so sqlite's cap on variables per statement does not apply).
        # Measured on 20k partitions: 0.98 ms per event before, when each event was serialised
        # twice and the index rows inserted by one compiled statement each; the JSON and the
        # tag rows of a run's partitions now come from one template (_RowTemplate; bench/README.md,
        # issue 24 item 3).
        template = _RowTemplate(self, events[0])
        rows, fitted = template.rows(events)
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            # The tags and the asset's row need each event's id in the index. The first insert
            # takes the shard's write lock, held to the commit, and sqlite gives a new row the
            # largest rowid + 1 (the table's `id INTEGER PRIMARY KEY`): the ids after it are free
            # and no other writer can take them before we commit. Were one taken anyway, the
            # primary key would fail the batch (and roll it back), not mispair an id.
            first = conn.execute(SqlEventLogStorageTable.insert().values(**rows[0])).inserted_primary_key[0]
            event_ids = list(range(first, first + len(rows)))
            if len(rows) > 1:
                conn.execute(SqlEventLogStorageTable.insert(),
                             [{**row, "id": event_id} for row, event_id in zip(rows[1:], event_ids[1:])])
            tag_rows = template.tag_rows(events, event_ids, rows, fitted)
            if tag_rows and self.has_table(AssetEventTagsTable.name):  # as _store_asset_event_tags
                conn.execute(AssetEventTagsTable.insert(), tag_rows)
            # the asset's row holds its latest event: the last one per asset key
            last: dict[str, tuple[EventLogEntry, int]] = {}
            for event, event_id, row in zip(events, event_ids, rows):
                last[row["asset_key"]] = (event, event_id)
            for event, event_id in last.values():
                self._store_asset_event(conn, event, event_id)


# Placeholders for what differs between a run's partition materializations: unlike anything
# Dagster writes (a NUL can only appear in its JSON escaped, as these are).
_TIMESTAMP = "\x00radar-timestamp\x00"
_PARTITION = "\x00radar-partition\x00"
_TAG = "\x00radar-tag\x00"


class _RowTemplate:
    """The event-log rows of a batch of partition materializations, their JSON filled into one
    serialised event instead of serialised one by one.

    Why: Dagster's serialize_value took 0.10-0.14 ms of the ~0.4 ms an event costs (1.8 KB of JSON
    packed field by field in Python), and a run's materializations of one asset differ only in
    their timestamp, partition and tag values (the data version is per partition). So the first
    event is serialised with placeholders in those places, and each event whose every other part is
    the same (types, values and order: `_same`) gets that JSON with its own values, JSON-encoded
    as serdes encodes them (strings and a float, sorted keys unchanged). The template is used only
    if it rebuilds the first event's serialize_value exactly; any event that does not fit it (or
    a batch whose first event does not) is serialised by Dagster (tests/test_instance_storage.py
    compares every row with the one-by-one path's)."""

    def __init__(self, storage: SqliteEventLogStorage, first: EventLogEntry):
        self.storage = storage
        self.row = storage._event_to_row(first)
        self.pieces: list[str] | None = None
        try:
            self._build(first)
        except Exception:  # noqa: BLE001 — a shape this code does not know: Dagster serialises it
            self.pieces = None

    def _build(self, first: EventLogEntry) -> None:
        self.skeleton = _skeleton(first)
        if self.skeleton is None:
            return
        text = json.dumps  # serdes' own encoder for the leaves (seven.json.dumps = json.dumps)
        from dagster_shared.serdes import serialize_value

        template = serialize_value(self.skeleton)
        marks = [text(_TIMESTAMP), text(_PARTITION), *(text(_TAG + key) for key in _tags(first))]
        if any(template.count(mark) != 1 for mark in marks):
            return
        order = sorted(range(len(marks)), key=lambda i: template.index(marks[i]))
        pieces, rest = [], template
        for i in order:
            head, rest = rest.split(marks[i], 1)
            pieces.append(head)
        pieces.append(rest)
        self.pieces, self.order = pieces, order
        if self.fill(first) != self.row["event"]:
            self.pieces = None

    def fill(self, event: EventLogEntry) -> str | None:
        """The event's JSON, or None if it does not fit the template."""
        if self.pieces is None:
            return None
        try:
            skeleton = _skeleton(event)
            if skeleton is None or not _same(skeleton, self.skeleton):
                return None
        except Exception:  # noqa: BLE001 — as in __init__: left to Dagster
            return None
        m = event.dagster_event.event_specific_data.materialization
        values = [json.dumps(event.timestamp), json.dumps(m.partition), *map(json.dumps, (m.tags or {}).values())]
        out = [self.pieces[0]]
        for i, piece in zip(self.order, self.pieces[1:]):
            out.append(values[i])
            out.append(piece)
        return "".join(out)

    def rows(self, events: Sequence[EventLogEntry]) -> tuple[list[dict[str, Any]], list[bool]]:
        """Each event's row as _event_to_row makes it (`events[0]` the template's event), and
        whether it was filled from the template."""
        rows, fitted = [self.row], [self.pieces is not None]
        for event in events[1:]:
            text = self.fill(event)
            fitted.append(text is not None)
            if text is None:
                rows.append(self.storage._event_to_row(event))
            else:
                m = event.dagster_event.event_specific_data.materialization
                rows.append({**self.row, "event": text, "partition": m.partition,
                             "timestamp": self.storage._event_insert_timestamp(event)})
        return rows, fitted

    def tag_rows(self, events: Sequence[EventLogEntry], event_ids: Sequence[int],
                 rows: Sequence[dict[str, Any]], fitted: Sequence[bool]) -> list[dict[str, Any]]:
        """The asset_event_tags rows SqlEventLogStorage._store_asset_event_tags writes for these
        events, in its order. A fitted event has the template's tag keys (in the same order) and
        asset key, so the keys Dagster indexes are asked once; the others are Dagster's own."""
        indexed: list[str] | None = None
        out = []
        for event, event_id, row, fit in zip(events, event_ids, rows, fitted):
            if fit:
                tags = event.dagster_event.event_specific_data.materialization.tags or {}
                if indexed is None:
                    wanted = self.storage.get_asset_tags_to_index(set(tags))
                    indexed = [key for key in tags if key in wanted]
                out.extend({"event_id": event_id, "asset_key": row["asset_key"], "key": key, "value": tags[key],
                            "event_timestamp": row["timestamp"]} for key in indexed)
            else:
                out.extend({"event_id": event_id,
                            "asset_key": check.not_none(event.get_dagster_event().asset_key).to_string(),
                            "key": key, "value": value, "event_timestamp": self.storage._event_insert_timestamp(event)}
                           for key, value in self.storage._tags_for_asset_event(event).items())
        return out


def _tags(event: EventLogEntry) -> list[str]:
    return list(event.dagster_event.event_specific_data.materialization.tags or {})


def _skeleton(event: EventLogEntry) -> EventLogEntry | None:
    """The event with its timestamp, partition and tag values replaced by placeholders; None
    for anything but a partition's materialization with string tags and a float timestamp.
    NamedTuple `_replace` builds the copies without the classes' checks, which the
    placeholders would not pass."""
    de = event.dagster_event
    data = de.event_specific_data if de is not None else None
    if type(data) is not StepMaterializationData or type(data.materialization) is not AssetMaterialization:
        return None
    m = data.materialization
    if m.tags is not None and type(m.tags) is not dict:  # another mapping type: left to Dagster
        return None
    tags = m.tags or {}
    if (type(event.timestamp) is not float or not math.isfinite(event.timestamp) or type(m.partition) is not str
            or any(type(value) is not str for value in tags.values())):
        return None
    # None stays None: serdes writes it as null, an empty dict as {}
    m = m._replace(partition=_PARTITION, tags=None if m.tags is None else {key: _TAG + key for key in tags})
    return event._replace(timestamp=_TIMESTAMP,
                          dagster_event=de._replace(event_specific_data=data._replace(materialization=m)))


def _same(a, b) -> bool:
    """a and b serialise alike: the same types, values and (for a dict, which serdes writes in
    its insertion order when it is metadata) key order. Plain `==` is not enough: records are
    tuples (IntMetadataValue(1) == FloatMetadataValue(1.0)), 1 == True, 0.0 == -0.0."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):  # a record bans iteration: its fields through tuple's own methods
        return tuple.__len__(a) == tuple.__len__(b) and all(map(_same, tuple.__iter__(a), tuple.__iter__(b)))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(_same(ka, kb) and _same(va, vb)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if type(a) is float:
        return repr(a) == repr(b)
    return a == b


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    if len(events) < 2 or any(not e.is_dagster_event or e.get_dagster_event().asset_key is None
                              for e in events):
        return False
    return ({e.run_id for e in events} == {events[0].run_id}
            and {e.get_dagster_event().event_type for e in events} in _BATCHED)


class RadarSqliteStorage(DagsterSqliteStorage):
    """DagsterSqliteStorage (runs, event logs and schedules under base_dir, the same layout)
    with BatchingSqliteEventLogStorage as its event log."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        # the parent's event log holds no connection or thread yet: replacing it is enough
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        # the parent's builds a DagsterSqliteStorage by name, not `cls`
        return cls.from_local(inst_data=inst_data, **config_value)
