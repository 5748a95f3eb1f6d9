"""The warehouse as a DuckLake: catalog in PostgreSQL (or a local .ducklake file), data as
Parquet files in a folder or on object storage (METHODOLOGY-neutral: only *where* tables live).

`RADAR_WAREHOUSE` chooses the backend; the embedded DuckDB file stays the default:

    RADAR_WAREHOUSE=data/radar.duckdb                                   (default) one DuckDB file
    RADAR_WAREHOUSE="ducklake:postgres:dbname=radar host=db user=radar"  catalog in PostgreSQL
    RADAR_WAREHOUSE=ducklake:data/radar.ducklake                        catalog in a local file
    RADAR_LAKE_DATA=/shared/radar-lake   (or s3://bucket/radar/)        where the Parquet files go
    RADAR_LAKE_SCHEMA=radar_lake         (optional) PostgreSQL schema of the catalog tables

The same options can ride in the target itself, after `?` (one self-contained string, as the
Dagster resource and the tests pass it): `ducklake:postgres:dbname=radar?data_path=/x&metadata_schema=t1`.

The lake is attached as `lake` and made the default catalog (`USE lake`), so every asset,
CLI command and sql/ file runs unchanged. DuckLake has no PRIMARY KEY/UNIQUE constraints:
the DDL is applied without them (every write is already delete-then-insert of one slice,
which is what kept keys unique). Extensions load offline from the pip packages
duckdb-extension-ducklake / duckdb-extension-postgres-scanner (/ -httpfs for s3://), never
from the network: `autoinstall_known_extensions` is off.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import random
import re
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import duckdb

log = logging.getLogger(__name__)
PREFIX = "ducklake:"
ALIAS = "lake"
# The pip package and extension file for each extension the lake may need.
EXTENSIONS = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "postgres": ("duckdb_extension_postgres_scanner", "postgres_scanner"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs"),
}


def is_lake(target: object) -> bool:
    return target is not None and PREFIX in str(target)


@dataclass(frozen=True)
class LakeTarget:
    catalog: str              # what follows "ducklake:" (postgres:..., or a path to a .ducklake file)
    data_path: str | None
    metadata_schema: str | None

    @property
    def on_postgres(self) -> bool:
        return self.catalog.startswith("postgres:")

    def display(self) -> str:
        return f"{PREFIX}{self.catalog}" + (f" (data {self.data_path})" if self.data_path else "")


def parse(target: object) -> LakeTarget:
    """Parse a lake target. The caller may have passed it through pathlib.Path (the CLI and the
    file-backend code do): that prepends a folder on resolve() and folds `s3://` into `s3:/`,
    so both are undone here."""
    text = str(target)
    text = text[text.index(PREFIX) + len(PREFIX):]
    options: dict[str, str] = {}
    if "?" in text:
        text, query = text.split("?", 1)
        # not parse_qsl: it reads "+" as a space, and folder names may hold one (%26 escapes "&")
        options = {k.strip().lower(): unquote(v) for k, v in
                   (part.split("=", 1) for part in query.split("&") if "=" in part) if v}
    data = options.get("data_path") or os.environ.get("RADAR_LAKE_DATA") or None
    if data:
        data = re.sub(r"^([a-z][a-z0-9+]*):/(?!/)", r"\1://", data)
    schema = options.get("metadata_schema") or os.environ.get("RADAR_LAKE_SCHEMA") or None
    return LakeTarget(text.strip(), data, schema)


def extension_file(name: str) -> Path:
    """The extension shipped by its pip package for the running duckdb version."""
    module, stem = EXTENSIONS[name]
    spec = importlib.util.find_spec(module)
    hint = (f"the DuckLake warehouse needs the pip package {module.replace('_', '-')}=={duckdb.__version__} "
            f"(pip install 'radar-pipeline' installs it; these packages exist for duckdb 1.5.x)")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{hint}: it is not installed")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{stem}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{hint}: {path} is missing (is duckdb {duckdb.__version__} the version it was built for?)")
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, lake: LakeTarget) -> None:
    con.execute("set autoinstall_known_extensions = false")
    names = ["ducklake"]
    if lake.on_postgres:
        names.append("postgres")
    if lake.data_path and "://" in lake.data_path:
        names.append("httpfs")
    for name in names:
        con.execute(f"load '{extension_file(name)}'")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def attach(con: duckdb.DuckDBPyConnection, target: object, alias: str = ALIAS, *,
           read_only: bool = False, snapshot: int | None = None) -> None:
    """Attach the lake `target` to `con` as `alias` (extensions loaded from the pip packages);
    `snapshot`: read-only, as of that snapshot id (time travel for every table at once)."""
    lake = parse(target)
    load_extensions(con, lake)
    options = []
    if lake.data_path:
        if "://" not in lake.data_path:
            Path(lake.data_path).mkdir(parents=True, exist_ok=True)
        options.append(f"data_path {_q(lake.data_path)}")
    if lake.metadata_schema:
        options.append(f"metadata_schema {_q(lake.metadata_schema)}")
    if read_only or snapshot is not None:
        options.append("read_only")
    elif not lake.on_postgres:
        Path(lake.catalog).parent.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        options.append(f"snapshot_version {int(snapshot)}")
    opts = f" ({', '.join(options)})" if options else ""
    retry(lambda: con.execute(f"attach {_q(PREFIX + lake.catalog)} as {alias}{opts}"))


# One in-memory DuckDB per (process, lake, read-only) with the extensions loaded and the lake
# attached; connect() hands out cursors of it. Opening a lake costs ~1 s of CPU (loading the
# 40 MB postgres extension, attaching, reading the catalog) and every asset opens its own
# connection; a cursor costs nothing and still has its own transactions and temp tables.
_INSTANCES: dict[tuple[int, str, bool], duckdb.DuckDBPyConnection] = {}
_INSTANCES_LOCK = threading.Lock()
READY: set[tuple[int, str, bool]] = set()  # instances whose schema warehouse.ensure_schema checked
# Every statement outside an explicit transaction starts a lake transaction, which costs a
# catalog round trip (~20-30 ms on a local PostgreSQL, more on a remote one). A refresh opens
# ~50 sessions and ran ~65 `select current_database()` probes: the cursors connect() hands out
# are remembered here (weakly), so "is this a lake session?" needs no query.
_CURSORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # cursor -> instance key
# connect() checks that the catalog connection is alive only when the instance has not handed
# out a session for this long (a code server idle between runs while PostgreSQL restarted);
# inside a run the sessions follow each other within seconds.
LIVENESS_IDLE_S = 10.0
_LAST_USED: dict[tuple[int, str, bool], float] = {}
_TARGETS: dict[tuple[int, str, bool], LakeTarget] = {}


def instance_key(target: object, read_only: bool) -> tuple[int, str, bool]:
    return (os.getpid(), str(parse(target)), read_only)


def connect(target: object, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB session with the lake attached as `lake` and used by default (a cursor of this
    process's cached instance for that lake; close it as any connection)."""
    key = instance_key(target, read_only)
    for attempt in (1, 2):
        with _INSTANCES_LOCK:
            base = _INSTANCES.get(key)
            if base is None:
                base = duckdb.connect()
                try:
                    attach(base, target, read_only=read_only)
                except BaseException:
                    base.close()
                    raise
                _INSTANCES[key] = base
            con = base.cursor()
            idle = time.monotonic() - _LAST_USED.get(key, float("-inf"))
        try:
            con.execute(f"use {ALIAS}")
            if idle > LIVENESS_IDLE_S:
                # one catalog round trip: a cached instance whose catalog connection died (the
                # PostgreSQL server restarted under a long-lived code server) is replaced, once
                con.sql(f"select id from {ALIAS}.current_snapshot()").fetchall()
            _LAST_USED[key] = time.monotonic()
            _CURSORS[con] = key
            _TARGETS[key] = parse(target)
            return con
        except duckdb.Error:
            con.close()
            if attempt == 2:
                raise
            with _INSTANCES_LOCK:
                if _INSTANCES.get(key) is base:
                    _INSTANCES.pop(key).close()
                    READY.discard(key)
                    _LAST_USED.pop(key, None)
    raise AssertionError("unreachable")


def target_of(key: tuple[int, str, bool]) -> LakeTarget | None:
    """The lake a session key (session_key) was opened on."""
    return _TARGETS.get(key)


def session_key(con: object) -> tuple[int, str, bool] | None:
    """The instance key of a session connect() handed out (None: not a lake session of ours)."""
    try:
        return _CURSORS.get(con)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def forget(target: object) -> None:
    """Close this process's cached instances of `target` (tests that drop a lake)."""
    with _INSTANCES_LOCK:
        for key in [k for k in _INSTANCES if k[1] == str(parse(target))]:
            _INSTANCES.pop(key).close()
            READY.discard(key)
            _LAST_USED.pop(key, None)


POOL = "duckdb_write"


def pool_limit(target: object) -> int:
    """Slots of the `duckdb_write` pool: 1 for a DuckDB file (one writer per file), N for a lake
    (RADAR_LAKE_WRITERS, default 4: writers commit snapshots side by side; DuckLake retries a
    commit that raced another, radar_pipeline.platform.warehouse reruns a slice replace that conflicted)."""
    return int(os.environ.get("RADAR_LAKE_WRITERS", "4")) if is_lake(target) else 1


def apply_pool_limit(instance, target: object) -> int:
    """Set the instance's `duckdb_write` pool to pool_limit(target) (what
    `dagster instance concurrency set duckdb_write N` does), unless it already has that limit.
    Called before every `radar` run; a deployment with a daemon sets it once (docs/deploy.md)."""
    n = pool_limit(target)
    storage = instance.event_log_storage
    try:
        if storage.get_concurrency_info(POOL).slot_count != n:
            storage.set_concurrency_slots(POOL, n)
    except NotImplementedError:  # an event log storage without pools: nothing to limit
        pass
    return n


def lake_ddl(ddl: str) -> str:
    """The warehouse DDL without PRIMARY KEY clauses, which DuckLake does not support.
    A table-level `, primary key (...)` (maybe after a `-- comment` on the line before) goes;
    a column-level `primary key` becomes `not null`, the half of it DuckLake keeps."""
    ddl = re.sub(r",([ \t]*--[^\n]*)?\s*primary key\s*\([^)]*\)",
                 lambda m: (m.group(1) or "") + "\n", ddl, flags=re.I)
    return re.sub(r"\bprimary key\b", "not null", ddl, flags=re.I)


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost a race it could not settle itself (two writers deleting from
    the same data file, two creates of one table): the whole transaction can be run again."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and ("conflict" in text or "concurrent" in text
                                             or "duplicate key value" in text)


RETRIES = 0  # conflicts retried by this process (bench/bench_lake.py reports them)


def retry(fn, attempts: int = 8):
    global RETRIES
    delay = 0.2
    for i in range(attempts):
        try:
            return fn()
        except duckdb.Error as exc:
            if i == attempts - 1 or not is_conflict(exc):
                raise
            RETRIES += 1
            log.info("lake write conflict, retry %d in %.1f s: %s", i + 1, delay, " ".join(str(exc).split())[:300])
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: two writers do not retry in step
            delay = min(delay * 2, 5.0)
