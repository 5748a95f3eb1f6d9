"""The BI-facing published snapshot: tables, atomic replacement under readers, buyer files,
example queries, data dictionary."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from radar_pipeline.cli.runs import publish_warehouse, refresh_edition, score_sites
from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.publish import build, buyers, dictionary, schemas, tables
from radar_pipeline.rules.methodology import TOPICS
from radar_pipeline.sites import generate, store

try:
    import duckdb_engine  # noqa: F401 — the SQLAlchemy dialect BI tools use
    HAS_DUCKDB_ENGINE = True
except ImportError:
    HAS_DUCKDB_ENGINE = False
CONSISTENCY_SQL = ("select any_value(snapshot_id), "
                   "(select row_count from publish_info where table_name = 'site_scores_history'), "
                   "(select count(*) from site_scores_history) from publish_info")
EXAMPLES = sorted((settings.SQL_DIR / "examples").glob("*.sql"))
N_SITES = 200


def q(path, sql: str, **params) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql, params=params or None).fetchall()
    finally:
        con.close()


def one(path, sql: str, **params):
    return q(path, sql, **params)[0][0]


def snapshot_in_subprocess(path: Path) -> str:
    """What a NEW connection from another process (a BI server) sees."""
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.sql('select any_value(snapshot_id) from publish_info').fetchall()[0][0])")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool
    path, stop, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[4])
    # a BI server opening a fresh read-only connection for each query
    engine = sa.create_engine(f"duckdb:///{path}", connect_args={"read_only": True}, poolclass=NullPool)
    seen, errors, n = [], [], 0
    while not stop.exists():
        try:
            with engine.connect() as c:
                snap, info, actual = c.execute(sa.text(sys.argv[3])).one()
            if info != actual:
                errors.append(f"mixed snapshot: {info} != {actual}")
            if not seen or seen[-1] != snap:
                seen.append(snap)
            n += 1
            ready.touch()
        except Exception as exc:
            errors.append(repr(exc)[:300])
        time.sleep(0.05)
    print(json.dumps({"seen": seen, "errors": errors, "n": n}))
""")


class Readers:
    """BI readers of the published file while the pipeline runs:
    * in this process, ONE SQLAlchemy (duckdb-engine) connection held throughout, polled every 50 ms;
    * in another process, a NEW SQLAlchemy connection per query every 50 ms (a BI server with NullPool).
    Each query checks that publish_info's row count matches the table (one snapshot, never a mix)."""

    def __init__(self, target: Path, tmp: Path):
        import sqlalchemy as sa

        self.sa, self.stop, self.stop_file = sa, threading.Event(), tmp / "stop_readers"
        self.engine = sa.create_engine(f"duckdb:///{target}", connect_args={"read_only": True})
        self.held = self.engine.connect()
        self.results = {"n": 0, "errors": [], "seen": set()}
        ready = tmp / "reader_ready"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(target), str(self.stop_file), CONSISTENCY_SQL, str(ready)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        self.other: dict = {}
        deadline = time.monotonic() + 60
        while not ready.exists() and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the other process has answered once from snapshot 1

    def poll(self):
        while not self.stop.is_set():
            try:
                snap, info, actual = self.held.execute(self.sa.text(CONSISTENCY_SQL)).one()
                self.results["seen"].add(snap)
                if info != actual:
                    self.results["errors"].append(f"mixed snapshot: {info} != {actual}")
                self.results["n"] += 1
            except Exception as exc:  # noqa: BLE001 — any failure is what the test looks for
                self.results["errors"].append(repr(exc)[:300])
            time.sleep(0.05)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=60)
        self.held.close()
        self.engine.dispose()
        lines = out.strip().splitlines()
        self.other = json.loads(lines[-1]) if lines else {"errors": [err[-2000:]], "n": 0, "seen": []}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Edition 2024 from the sample mirror, 200 synthetic sites scored, two buyers, published
    (snapshot 1) through the Dagster job; then, while BI readers hold the published file,
    edition 2023 is refreshed, scored and published again (snapshot 2)."""
    tmp = tmp_path_factory.mktemp("publish")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    mp.setenv("RADAR_USER_FILES", str(tmp / "user"))
    published = tmp / "published" / "radar.duckdb"
    mp.setenv("RADAR_PUBLISHED", str(published))
    mp.setenv("RADAR_BUYERS_INBOX", str(tmp / "buyers"))
    wh = tmp / "radar.duckdb"
    outcome = refresh_edition(2024, warehouse=wh)
    assert outcome.success, outcome.failures
    con = connect(wh)
    countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
    classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
    con.close()
    generate.write_sites(generate.generate_sites(N_SITES, 7, countries, classes), tmp / "sites.jsonl")
    with connect(wh) as con:
        keys = store.ingest(con, tmp / "sites.jsonl").to_score
    instance = dg.DagsterInstance.ephemeral()
    outcome = score_sites(keys, edition=2024, warehouse=wh, instance=instance)
    assert outcome.success, outcome.failures
    (tmp / "buyers").mkdir()
    acme = keys[:5]
    (tmp / "buyers" / "acme.csv").write_text(
        "buyer_id,site_id\n" + "".join(f"acme,{k}\n" for k in acme) + "acme,NOT-A-SITE\nbad buyer!,x\n")
    (tmp / "buyers" / "zeta.jsonl").write_text(
        "".join(json.dumps({"buyer_id": "zeta", "site_id": k}) + "\n" for k in keys[5:8]) + "{not json\n")
    first = publish_warehouse(warehouse=wh, instance=instance)
    assert first.success, first.failures
    s1 = one(published, "select any_value(snapshot_id) from publish_info")

    readers = Readers(published, tmp) if HAS_DUCKDB_ENGINE else None
    try:
        refreshed = refresh_edition(2023, warehouse=wh)
        with connect(wh) as con:
            store.score_and_store(con, 2023, keys)  # what the site_scores asset runs
        second = publish_warehouse(warehouse=wh, instance=instance)
        time.sleep(0.3)
    finally:
        if readers:
            readers.close()
    assert refreshed.success, refreshed.failures
    assert second.success, second.failures
    yield {"tmp": tmp, "wh": wh, "published": published, "keys": keys, "acme": acme, "zeta": keys[5:8],
           "outcome": second, "refreshed": refreshed, "s1": s1, "readers": readers}
    mp.undo()


# --- the published tables ------------------------------------------------------------

WAREHOUSE_COUNTS = {
    "countries": "select count(*) from countries",
    "country_risk": "select count(*) from country_topic_risk",
    "country_risk_wide": "select count(*) from (select distinct edition, iso3 from country_topic_risk)",
    "inherent_risk": "select count(*) from inherent_risk",
    "inherent_risk_overall": "select count(*) from inherent_risk_overall",
    "edition_sources": "select count(*) from edition_sources",
    "site_scores_latest": "select count(distinct site_id) from site_scores",
    "site_scores_history": "select count(*) from site_scores",
    "site_score_factors": "select count(*) from site_score_factors",
    "site_nonconformities": "select count(*) from site_nonconformities",
    "site_rejects": "select count(*) from site_rejects",
}


@pytest.mark.slow
def test_published_tables_have_documented_columns_and_warehouse_row_counts(env):
    pub, wh = env["published"], env["wh"]
    for table, schema in schemas.SCHEMAS.items():
        cols = [r[0] for r in q(pub, "select column_name from information_schema.columns "
                                     "where table_name = $t order by ordinal_position", t=table)]
        assert cols == list(schema.columns), table
    for table, sql in WAREHOUSE_COUNTS.items():
        expected = one(wh, sql)
        assert one(pub, f"select count(*) from {table}") == expected, table
        assert expected > 0 or table == "site_rejects", table
    assert one(pub, "select count(*) from site_scores_latest") == N_SITES
    assert one(pub, "select count(distinct edition) from site_scores_history") == 2
    assert q(pub, "select distinct edition from site_scores_latest") == [(2024,)]
    # values carried over, not just counts
    assert one(pub, "select sum(final_score) from site_scores_history") == pytest.approx(
        one(wh, "select sum(final_score) from site_scores"))
    changes = q(pub, "select count(*), count(score_change) from site_scores_history where edition = 2024")[0]
    assert changes == (N_SITES, N_SITES)
    # publish_info tells the truth about every table
    info = dict(q(pub, "select table_name, row_count from publish_info"))
    assert set(info) == set(schemas.SCHEMAS)
    for table, n in info.items():
        assert one(pub, f"select count(*) from {table}") == n, table
    assert {r[0] for r in q(pub, "select distinct scope from publish_info")} == {"all"}


@pytest.mark.slow
def test_published_edition_sources_show_what_each_edition_read(env):
    # METHODOLOGY §1: the sample's only CAHRA list is the June 2026 one, newer than every edition
    rows = q(env["published"], "select edition, vintage, released_after_edition from edition_sources "
                               "where source = 'eu_cahra' order by edition")
    assert rows and all(v == "2026-06" and after for _, v, after in rows)
    assert q(env["published"], "select count(distinct source) from edition_sources")[0][0] >= 10


@pytest.mark.slow
def test_wide_country_risk_has_one_column_per_topic_matching_long_form(env):
    pub = env["published"]
    wide = duckdb.connect(str(pub), read_only=True)
    try:
        long = wide.sql("select edition, iso3, topic, score from country_risk").pl()
        w = wide.sql("select * from country_risk_wide").pl()
    finally:
        wide.close()
    assert all(t in w.columns for t in TOPICS)
    melted = (w.unpivot(index=["edition", "iso3"], on=list(TOPICS), variable_name="topic", value_name="score")
               .drop_nulls("score"))
    assert melted.sort("edition", "iso3", "topic").equals(long.sort("edition", "iso3", "topic"))


@pytest.mark.slow
def test_parquet_beside_the_file_matches_the_snapshot(env):
    pub = env["published"]
    folder = pub.parent / "parquet"
    assert folder.is_symlink()
    snap = one(pub, "select any_value(snapshot_id) from publish_info")
    assert snap in str(folder.resolve())
    con = duckdb.connect()
    try:
        for table, n in q(pub, "select table_name, row_count from publish_info"):
            path = folder / f"{table}.parquet"
            assert con.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0] == n, table
    finally:
        con.close()


# --- atomic replacement ---------------------------------------------------------------

def copy_without_buyers(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    with duckdb.connect(str(dst)) as con:
        con.execute("delete from buyer_sites")
    return dst


@pytest.mark.slow
def test_open_reader_keeps_its_snapshot_while_a_new_one_is_published(env, tmp_path):
    wh1 = copy_without_buyers(env["wh"], tmp_path / "w1.duckdb")
    wh2 = copy_without_buyers(env["wh"], tmp_path / "w2.duckdb")
    with duckdb.connect(str(wh2)) as con:  # snapshot 2 differs: edition 2023 site scores gone
        con.execute("delete from site_scores where edition = 2023")
    target = tmp_path / "out" / "radar.duckdb"
    s1 = build.publish(wh1, target, log=lambda *_: None)

    # what snapshot 1 must answer, computed from its warehouse (not through the reader, so the
    # reader's first read of these tables happens AFTER snapshot 2 is swapped in)
    expected = q(wh1, "select (select count(*) from site_scores), (select sum(final_score) from site_scores), "
                      "(select count(*) from inherent_risk), (select sum(score) from inherent_risk)")[0]
    check = ("select (select count(*) from site_scores_history), (select sum(final_score) from site_scores_history), "
             "(select count(*) from inherent_risk), (select sum(score) from inherent_risk)")
    inode = target.stat().st_ino
    reader = duckdb.connect(str(target), read_only=True)
    try:
        assert reader.sql("select any_value(snapshot_id) from publish_info").fetchall()[0][0] == s1.snapshot_id
        s2 = build.publish(wh2, target, log=lambda *_: None)
        assert s2.snapshot_id != s1.snapshot_id and s2.row_counts["site_scores_history"] == N_SITES
        assert target.stat().st_ino != inode  # a new file renamed in, the reader's file never written
        # the open connection still answers snapshot 1, consistently, table after table
        for _ in range(2):
            got = reader.sql(check).fetchall()[0]
            assert got[0] == expected[0] and got[2] == expected[2]
            assert got[1] == pytest.approx(expected[1]) and got[3] == pytest.approx(expected[3])
            assert reader.sql("select any_value(snapshot_id), count(*) from publish_info").fetchall()[0] == \
                (s1.snapshot_id, len(schemas.SCHEMAS))
        # a new connection from another process sees snapshot 2 while the old one is still open
        assert snapshot_in_subprocess(target) == s2.snapshot_id
    finally:
        reader.close()
    # ... and so does this process once its old connections are closed
    assert q(target, "select any_value(snapshot_id), (select count(*) from site_scores_history) "
                     "from publish_info")[0] == (s2.snapshot_id, N_SITES)
    # no temp files left, Parquet swapped too, previous Parquet kept for readers mid-query
    # (.publish_state.json: what the snapshot was built from, so a rerun after a kill knows it is behind)
    assert sorted(p.name for p in target.parent.iterdir()) == [".publish_state.json", ".snapshots", "parquet",
                                                                "radar.duckdb"]
    assert s2.snapshot_id in str((target.parent / "parquet").resolve())
    assert (target.parent / ".snapshots" / "all" / s1.snapshot_id / "parquet").is_dir()


@pytest.mark.slow
def test_failed_validation_leaves_the_published_snapshot_untouched(env, monkeypatch):
    target = env["published"]
    before = sorted(p.name for p in target.parent.iterdir())
    snapshot = one(target, "select any_value(snapshot_id) from publish_info")
    broken = schemas.SCHEMAS["site_scores_latest"].remove_columns(["score_change"])
    monkeypatch.setitem(schemas.SCHEMAS, "site_scores_latest", broken)
    with pytest.raises(build.PublishError, match="score_change"):
        build.publish(env["wh"], target, log=lambda *_: None)
    assert one(target, "select any_value(snapshot_id) from publish_info") == snapshot
    assert sorted(p.name for p in target.parent.iterdir()) == before  # no temp file left
    assert snapshot in str((target.parent / "parquet").resolve())
    assert not list((target.parent / "buyers").glob(".*"))


@pytest.mark.slow
def test_bi_readers_through_sqlalchemy_never_fail_during_refresh_and_publish(env):
    """duckdb-engine/SQLAlchemy readers (as Superset/Metabase) on the published file for the
    whole of a refresh + scoring + publish: the run succeeded (fixture) and no query failed."""
    if not HAS_DUCKDB_ENGINE:
        pytest.skip("duckdb-engine not installed (test extra)")
    readers, s1 = env["readers"], env["s1"]
    s2 = one(env["published"], "select any_value(snapshot_id) from publish_info")
    assert s2 != s1
    assert readers.results["errors"] == [] and readers.results["n"] >= 20
    assert readers.results["seen"] == {s1}  # the held connection stays on its snapshot
    assert readers.other["errors"] == [] and readers.other["n"] >= 20
    assert readers.other["seen"] == [s1, s2]  # fresh connections move to the new snapshot


# --- BI clients ---------------------------------------------------------------------------

DUCKDB_1X = "duckdb==1.1.3"  # the oldest 1.x line the published storage version (v1.1.0) promises
DUCKDB_2X = "duckdb==2.0.1"  # the newest line a BI tool may bring


def _client_python(tmp_path_factory, requirement: str) -> Path:
    """A separate venv with a DuckDB client of another version, as BI drivers bundle it."""
    venv = tmp_path_factory.mktemp("client-" + re.sub(r"[^\w.]+", "-", requirement)[:60]) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    out = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirement.split()],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        message = f"cannot install {requirement} from the package registry: {out.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture(scope="session")
def duckdb_1x_python(tmp_path_factory) -> Path:
    return _client_python(tmp_path_factory, DUCKDB_1X)


@pytest.fixture(scope="session")
def duckdb_2x_python(tmp_path_factory) -> Path:
    return _client_python(tmp_path_factory, DUCKDB_2X)


@pytest.mark.slow
@pytest.mark.parametrize("client", ["duckdb_1x_python", "duckdb_2x_python"])
def test_example_queries_run_on_old_and_new_clients(env, client, request):
    """Every sql/examples query answers the same on DuckDB 1.1 (what BI drivers often bundle:
    it rejects a CTE named like the table it reads) and 2.0 as on the project's 1.5."""
    python = request.getfixturevalue(client)
    code = textwrap.dedent("""
        import duckdb, json, sys
        con = duckdb.connect(sys.argv[1], read_only=True)
        out = {"version": duckdb.__version__}
        for path in sys.argv[2:]:
            rows = con.sql(open(path, encoding="utf-8").read()).fetchall()
            out[path] = sorted(json.dumps(r, default=str) for r in rows)
        print(json.dumps(out))
    """)
    run = subprocess.run([str(python), "-c", code, str(env["published"]), *map(str, EXAMPLES)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    assert seen["version"].startswith(client[len("duckdb_")])
    con = duckdb.connect(str(env["published"]), read_only=True)
    try:
        for path in EXAMPLES:
            ours = sorted(json.dumps(r, default=str) for r in con.sql(path.read_text(encoding="utf-8")).fetchall())
            assert seen[str(path)] == ours and ours, path.name
    finally:
        con.close()


# SQLAlchemy driver combinations a BI tool may bring (the README's BI section names them)
BI_DRIVERS = {
    "duckdb-engine + SQLAlchemy 2.0": ("duckdb==1.5.5", "duckdb-engine==0.17.0", "sqlalchemy==2.0.44"),
    "duckdb-sqlalchemy + SQLAlchemy 2.1": ("duckdb==1.5.5", "duckdb-sqlalchemy==1.5.6.5", "sqlalchemy==2.1.9"),
}


@pytest.mark.slow
@pytest.mark.parametrize("driver", list(BI_DRIVERS))
def test_sqlalchemy_driver_combinations_list_tables_and_columns(env, driver, tmp_path_factory):
    """What Superset/Metabase do first through SQLAlchemy: list the tables, reflect a table's
    columns (with their comments) and query — in a venv of exactly that driver combination."""
    python = _client_python(tmp_path_factory, " ".join(BI_DRIVERS[driver]))
    code = textwrap.dedent("""
        import json, sys
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool
        engine = sa.create_engine(f"duckdb:///{sys.argv[1]}", connect_args={"read_only": True}, poolclass=NullPool)
        insp = sa.inspect(engine)
        cols = insp.get_columns("site_scores_latest")
        with engine.connect() as c:
            n = c.execute(sa.text("select count(*) from site_scores_latest")).scalar()
        print(json.dumps({"sa": sa.__version__, "tables": sorted(insp.get_table_names()),
                          "columns": [c["name"] for c in cols], "comments": sum(bool(c.get("comment")) for c in cols),
                          "rows": n}))
    """)
    run = subprocess.run([str(python), "-c", code, str(env["published"])], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    assert seen["sa"] == BI_DRIVERS[driver][-1].split("==")[1]
    assert seen["tables"] == sorted(t for (t,) in q(env["published"], "select table_name from duckdb_tables()"))
    assert seen["columns"] == [c for c, *_ in q(env["published"], "select column_name from duckdb_columns() "
                                                "where table_name = 'site_scores_latest' order by column_index")]
    assert seen["comments"] == len(seen["columns"])
    assert seen["rows"] == one(env["published"], "select count(*) from site_scores_latest")


@pytest.mark.slow
def test_published_files_open_in_a_duckdb_1x_client(env, duckdb_1x_python):
    code = textwrap.dedent("""
        import duckdb, json, sys
        out = {"version": duckdb.__version__}
        for path in sys.argv[1:]:
            con = duckdb.connect(path, read_only=True)
            out[path] = {
                "tables": {t: con.sql(f"select count(*) from {t}").fetchall()[0][0]
                           for (t,) in con.sql("select table_name from duckdb_tables()").fetchall()},
                "comments": con.sql("select count(*) from duckdb_columns() where comment is not null "
                                    "and not internal").fetchall()[0][0]}
            con.close()
        print(json.dumps(out))
    """)
    files = [env["published"], env["published"].parent / "buyers" / "acme.duckdb"]
    run = subprocess.run([str(duckdb_1x_python), "-c", code, *map(str, files)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    assert seen["version"].startswith("1.")
    for path in files:
        counts = dict(q(path, "select table_name, row_count from publish_info"))
        assert seen[str(path)]["tables"] == counts  # every table, every row
        assert seen[str(path)]["comments"] == one(path, "select count(*) from data_dictionary")


@pytest.mark.slow
def test_published_tables_and_columns_carry_the_dictionary_as_comments(env):
    pub = env["published"]
    tables = dict(q(pub, "select table_name, comment from duckdb_tables()"))
    assert tables == {t: s.description for t, s in schemas.SCHEMAS.items()}
    columns = q(pub, "select c.table_name, c.column_name, c.comment, d.description from duckdb_columns() c "
                     "join data_dictionary d on d.table_name = c.table_name and d.column_name = c.column_name")
    assert len(columns) == one(pub, "select count(*) from data_dictionary")
    assert all(comment == description for _, _, comment, description in columns)


@pytest.mark.slow
def test_sqlalchemy_inspection_lists_tables_columns_and_comments(env):
    """What Superset/Metabase-style tools do first: list tables, then columns; the
    connection must stay usable afterwards."""
    if not HAS_DUCKDB_ENGINE:
        pytest.skip("duckdb-engine not installed (test extra)")
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(f"duckdb:///{env['published']}", connect_args={"read_only": True},
                              poolclass=NullPool)
    try:
        with engine.connect() as con:
            inspector = sa.inspect(con)
            assert set(inspector.get_table_names()) == set(schemas.SCHEMAS)
            for table, schema in schemas.SCHEMAS.items():
                cols = inspector.get_columns(table)
                assert [c["name"] for c in cols] == list(schema.columns), table
                assert [c["comment"] for c in cols] == [col.description for col in schema.columns.values()]
                assert inspector.get_table_comment(table)["text"] == schema.description
            assert con.execute(sa.text("select count(*) from site_scores_latest")).scalar() == N_SITES
    finally:
        engine.dispose()


@pytest.mark.slow
def test_publish_keeps_the_configured_number_of_snapshots(env, tmp_path, monkeypatch):
    wh = copy_without_buyers(env["wh"], tmp_path / "w.duckdb")
    target = tmp_path / "out" / "radar.duckdb"
    monkeypatch.setenv("RADAR_KEEP_SNAPSHOTS", "2")
    ids = [build.publish(wh, target, log=lambda *_: None).snapshot_id for _ in range(4)]
    kept = sorted(p.name for p in (target.parent / ".snapshots" / "all").iterdir())
    assert kept == ids[-2:]
    assert ids[-1] in str((target.parent / "parquet").resolve())
    build.publish(wh, target, log=lambda *_: None, keep_snapshots=1)
    assert len(list((target.parent / ".snapshots" / "all").iterdir())) == 1


# --- buyers -----------------------------------------------------------------------------

@pytest.mark.slow
def test_buyer_files_contain_only_their_sites(env):
    out = env["published"].parent / "buyers"
    assert sorted(p.name for p in out.glob("*.duckdb")) == ["acme.duckdb", "zeta.duckdb"]
    for buyer in ("acme", "zeta"):
        path = out / f"{buyer}.duckdb"
        mine = set(env[buyer])
        for table in tables.SITE_TABLES:
            ids = {r[0] for r in q(path, f"select distinct site_id from {table}")}
            assert ids <= mine, (buyer, table, ids - mine)
        assert {r[0] for r in q(path, "select site_id from site_scores_latest")} == mine
        assert one(path, "select count(*) from site_score_factors") == one(
            env["wh"], "select count(*) from site_score_factors where site_id in (select unnest($s))",
            s=sorted(mine))
        for table in tables.PUBLIC_TABLES:  # public tables are complete
            assert one(path, f"select count(*) from {table}") == one(env["published"], f"select count(*) from {table}")
        assert q(path, "select distinct scope from publish_info") == [(f"buyer:{buyer}",)]
        parquet = out / buyer / "parquet" / "site_scores_latest.parquet"
        with duckdb.connect() as con:
            assert con.sql(f"select count(*) from read_parquet('{parquet}')").fetchall()[0][0] == len(mine)


@pytest.mark.slow
def test_buyer_lists_validated_and_unknown_sites_reported(env):
    rejects = q(env["wh"], "select file, line, reason from buyer_site_rejects order by file, line")
    assert [(f, n) for f, n, _ in rejects] == [("acme.csv", 8), ("zeta.jsonl", 4)]
    assert "buyer_id 'bad buyer!' does not match" in rejects[0][2]
    assert "not valid JSON" in rejects[1][2]
    checks = {c.check_name: c for c in env["outcome"].result.get_asset_check_evaluations()}
    assert not checks["buyer_sites_known"].passed
    assert "acme/NOT-A-SITE" in checks["buyer_sites_known"].metadata["unknown"].value


def test_buyer_reader_rules(tmp_path):
    (tmp_path / "a.csv").write_text("site_id,buyer_id\nS1,B1\n,B1\nS2,\nS" + "x" * 64 + ",B1\nS1,B1\n")
    (tmp_path / "b.jsonl").write_text('{"buyer_id": "B2", "site_id": 5}\n[1]\n{"buyer_id": "B2", "site_id": "S.3"}\n')
    (tmp_path / "c.csv").write_text("buyer,site\nB3,S1\n")
    (tmp_path / "ignored.txt").write_text("buyer_id,site_id\nB4,S1\n")
    load = buyers.read_folder(tmp_path)
    assert load.rows.select("buyer_id", "site_id").rows() == [("B1", "S1"), ("B2", "S.3")]
    reasons = [(r["file"], r["line"], r["reason"]) for r in load.rejects.iter_rows(named=True)]
    assert [(f, n) for f, n, _ in reasons] == [("a.csv", 3), ("a.csv", 4), ("a.csv", 5),
                                                ("b.jsonl", 1), ("b.jsonl", 2), ("c.csv", 1)]
    assert "site_id is missing" in reasons[0][2] and "buyer_id is missing" in reasons[1][2]
    assert "must be a string" in reasons[3][2] and "header must have" in reasons[5][2]


# --- examples and dictionary ------------------------------------------------------------------

EXPECTED_EXAMPLES = {"high_risk_sites_by_country_sector", "primary_producers", "site_score_changes",
                     "country_topic_changes", "open_critical_findings"}


@pytest.mark.slow
def test_example_queries_answer_on_the_published_snapshot(env):
    assert {p.stem for p in EXAMPLES} == EXPECTED_EXAMPLES
    con = duckdb.connect(str(env["published"]), read_only=True)
    try:
        for path in EXAMPLES:
            df = con.sql(path.read_text(encoding="utf-8")).pl()
            assert df.height > 0, path.name
        changes = con.sql((settings.SQL_DIR / "examples" / "site_score_changes.sql").read_text()).pl()
        moved = con.sql("select site_id from site_scores_history where edition = 2024 and "
                        "(final_score is distinct from previous_final_score "
                        "or category is distinct from previous_category)").pl()
        assert 0 < changes.height < N_SITES  # editions 2023 and 2024 differ for some sites, not all
        assert set(changes["site_id"]) == set(moved["site_id"]) and set(changes["edition"]) == {2024}
        diff = (changes["final_score"] - changes["previous_final_score"]).round(1)
        assert (changes["score_change"] == diff).all()
        # rounded: no float artefacts like -0.20000000000000107
        assert all(v == round(v, 1) and len(repr(v)) <= 5 for v in changes["score_change"].drop_nulls())
        hist = con.sql("select score_change from site_scores_history where score_change is not null").pl()
        assert all(len(repr(v)) <= 5 for v in hist["score_change"])
        expected_open = con.sql("select count(distinct site_id) from site_nonconformities where status = 'open' "
                                "and severity in ('critical', 'business_critical')").fetchall()[0][0]
        crit = con.sql((settings.SQL_DIR / "examples" / "open_critical_findings.sql").read_text()).pl()
        assert crit.height == expected_open
        producers = con.sql((settings.SQL_DIR / "examples" / "primary_producers.sql").read_text()).pl()
        assert producers.height == con.sql("select count(*) from site_scores_latest "
                                           "where is_primary_producer").fetchall()[0][0]
    finally:
        con.close()
    # and on a buyer's file, limited to its sites
    acme = duckdb.connect(str(env["published"].parent / "buyers" / "acme.duckdb"), read_only=True)
    try:
        df = acme.sql((settings.SQL_DIR / "examples" / "site_score_changes.sql").read_text()).pl()
        assert set(df["site_id"]) <= set(env["acme"])
    finally:
        acme.close()


@pytest.mark.slow
def test_data_dictionary_markdown_is_up_to_date(env):
    assert dictionary.DOC_PATH.read_text(encoding="utf-8") == dictionary.render_markdown(), \
        "docs/data_dictionary.md is stale: run `python -m radar_pipeline.publish.dictionary`"
    con = duckdb.connect(str(env["published"]), read_only=True)
    try:
        published = con.sql("select * from data_dictionary").pl()
    finally:
        con.close()
    assert published.equals(build.empty_dictionary())
    assert published.filter(pl.col("description") == "").is_empty()


# --- triggers ------------------------------------------------------------------------------------

# Publishing after a refresh or scoring run (whatever launched it) is the publish asset's
# automation condition: radar_pipeline_tests/test_automation.py.


def test_buyers_inbox_sensor_requests_a_publish_on_change(tmp_path, monkeypatch):
    from radar_pipeline.publish.assets import buyers_inbox_sensor

    monkeypatch.setenv("RADAR_BUYERS_INBOX", str(tmp_path))
    first = buyers_inbox_sensor(dg.build_sensor_context(cursor=None))
    assert not first.run_requests  # empty folder, nothing to do
    (tmp_path / "b.csv").write_text("buyer_id,site_id\nB1,S1\n")
    changed = buyers_inbox_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert len(changed.run_requests) == 1
    same = buyers_inbox_sensor(dg.build_sensor_context(cursor=changed.cursor))
    assert not same.run_requests
    (tmp_path / "b.csv").unlink()  # a removed list must be published too (the buyer loses access)
    assert len(buyers_inbox_sensor(dg.build_sensor_context(cursor=same.cursor)).run_requests) == 1


def test_validation_streams_batches_and_checks_uniqueness_over_the_whole_table(monkeypatch):
    """Published tables are validated in bounded batches (memory at 1M sites): a bad value in a
    later batch and a duplicate key split across two batches are both reported."""
    import pandera.polars as pa

    schema = pa.DataFrameSchema({"site_id": pa.Column(str, unique=True),
                                 "score": pa.Column(float, pa.Check.in_range(1.0, 6.0))}, name="t")
    monkeypatch.setattr(schemas, "SCHEMAS", {"t": schema})
    monkeypatch.setattr(build, "VALIDATE_BATCH_ROWS", 2)
    con = duckdb.connect()
    con.execute("create table t (site_id varchar, score double)")
    con.execute("insert into t values ('a', 1.0), ('b', 2.0), ('c', 3.0), ('d', 4.0), ('e', 5.0)")
    build.validate(con, "memory", {"t": 5})  # clean: no error
    con.execute("update t set score = 7.5 where site_id = 'e'")  # third batch
    with pytest.raises(build.PublishError, match="score"):
        build.validate(con, "memory", {"t": 5})
    con.execute("update t set score = 5.0 where site_id = 'e'")
    con.execute("update t set site_id = 'a' where site_id = 'e'")  # batches 1 and 3
    with pytest.raises(build.PublishError, match=r"\(site_id\) appear more than once"):
        build.validate(con, "memory", {"t": 5})
    con.execute("delete from t")
    build.validate(con, "memory", {"t": 0})  # empty table: dtype checks only
    con.execute("alter table t alter score type varchar")
    with pytest.raises(build.PublishError, match="score"):
        build.validate(con, "memory", {"t": 0})
