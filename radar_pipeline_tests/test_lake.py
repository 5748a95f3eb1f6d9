"""The warehouse as a DuckLake (catalog in PostgreSQL, Parquet in a temp folder): the pipeline
runs unchanged, each refresh / scoring run / publish is a named snapshot, the published state
is read back by time travel, and writers run side by side while readers read.

Needs the PostgreSQL of DAGSTER_PG_* (bench/pg.sh; .ci/run starts it): skipped without it,
failed in CI (conftest.lake_catalog).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from radar_pipeline.cli.runs import publish_metadata, publish_warehouse, refresh_edition, score_sites
from radar_pipeline.platform import lake, lake_commits, settings
from radar_pipeline.platform.warehouse import connect, declared_table_schema
from radar_pipeline.sites import store
from radar_pipeline.sites.generate import generate_sites, write_sites
from radar_pipeline.sites.score_file import score_file
from radar_pipeline_tests.conftest import make_lake_target

pytestmark = pytest.mark.slow


def rows(target, sql: str, **params) -> list[tuple]:
    con = connect(target, read_only=True)
    try:
        return con.sql(sql, params=params or None).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lake")
    mp = pytest.MonkeyPatch()
    mp.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    mp.setenv("RADAR_USER_FILES", str(tmp / "user"))
    mp.setenv("RADAR_LANDING", str(tmp / "landing"))
    mp.setenv("RADAR_BUYERS_INBOX", str(tmp / "buyers"))
    mp.setenv("RADAR_OVERRIDES", str(tmp / "overrides"))
    mp.setenv("RADAR_PUBLISHED", str(tmp / "published" / "radar.duckdb"))  # Parquet + buyer files go here
    yield tmp
    mp.undo()


@pytest.fixture(scope="module")
def lake_2024(env, lake_catalog):
    """A lake with edition 2024 refreshed from the sample mirror."""
    target = make_lake_target(lake_catalog, env, "radar")
    outcome = refresh_edition(2024, warehouse=target)
    assert outcome.success, outcome.failures
    return target


def reference(target) -> tuple[list[str], list[str]]:
    return ([r[0] for r in rows(target, "select iso3 from edition_countries where edition = 2024")],
            [r[0] for r in rows(target, "select code from isic where level = 'class'")])


def test_the_lake_is_the_default_catalog_with_the_file_warehouse_tables(lake_2024):
    con = connect(lake_2024, read_only=True)
    try:
        assert con.sql("select current_database()").fetchall() == [(lake.ALIAS,)]
        # the same columns and types as the DuckDB file's tables (only the keys are gone)
        for table in ("site_scores", "country_topic_risk", "inherent_risk_overall"):
            cols = con.sql("select column_name, data_type from information_schema.columns "
                           "where table_catalog = 'lake' and table_name = $t order by ordinal_position",
                           params={"t": table}).fetchall()
            declared = [(c.name, c.type) for c in declared_table_schema(table).columns]
            assert cols == declared, table
        n = con.sql("select count(*) from inherent_risk_overall where edition = 2024").fetchall()[0][0]
        assert n > 0
        # the refresh left a named snapshot: its message, and every asset's own commit message
        tags = con.sql("select kind, message from snapshot_tags").fetchall()
        assert ("refresh", "refresh edition 2024") in tags
        messages = [r[0] for r in con.sql("select commit_message from lake.snapshots()").fetchall()]
        # (the inherent stage's last step commits its edition_stages row in the same snapshot)
        assert any(m.startswith("replace inherent_risk_overall where {'edition': 2024}") for m in messages if m)
    finally:
        con.close()


def test_ingest_score_publish_by_tag_and_read_scores_as_published(lake_2024, env):
    countries, classes = reference(lake_2024)
    sites_file = env / "sites.jsonl"
    write_sites(generate_sites(150, 5, countries, classes), sites_file)
    con = connect(lake_2024)
    try:
        summary = store.ingest(con, sites_file)
    finally:
        con.close()
    assert len(summary.new) == 150
    outcome = score_sites(summary.to_score, edition=2024, warehouse=lake_2024)
    assert outcome.success, outcome.failures
    scored = rows(lake_2024, "select site_id, final_score, category from site_scores "
                             "where edition = 2024 and site_id like 'SYN-5-%' order by site_id")
    assert len(scored) == 150 and all(r[1] is not None for r in scored)
    # `radar score` (a file scored without writing) reads the lake's reference tables: same scores
    cli_scores, rejects = score_file(sites_file, 2024, lake_2024, chunk_lines=100)
    assert rejects.is_empty()
    assert sorted(cli_scores.select("site_id", "final_score", "category").rows()) == scored

    published = publish_warehouse(warehouse=lake_2024)
    assert published.success, published.failures
    meta = publish_metadata(published)
    assert meta["row_counts"]["site_scores"] >= 150
    assert not settings.published_path().exists()  # no copy: the lake itself is what BI reads
    kinds = [r[0] for r in rows(lake_2024, "select kind from snapshot_tags order by tagged_at")]
    assert kinds[-3:] == ["refresh", "scoring", "published"] or kinds[-2:] == ["scoring", "published"]

    # a later change: 10 sites' scores replaced (here: removed) after the publish
    con = connect(lake_2024)
    try:
        con.execute("delete from site_scores where site_id in "
                    "(select site_id from site_scores where site_id like 'SYN-5-%' order by site_id limit 10)")
    finally:
        con.close()
    assert len(rows(lake_2024, "select 1 from site_scores where site_id like 'SYN-5-%'")) == 140

    # the example reads them as published today: all 150, the scores they had
    example = (settings.SQL_DIR / "examples" / "lake" / "scores_as_published.sql").read_text(encoding="utf-8")
    con = connect(lake_2024, read_only=True)
    try:
        today = datetime.now(UTC).date()  # snapshot_tags.tagged_at is UTC
        con.execute(f"set variable published_on = date '{today.isoformat()}'")
        got = con.sql(example).pl().filter(pl_col_like("site_id", "SYN-5-"))
    finally:
        con.close()
    assert got.height == 150
    assert sorted(zip(got["site_id"], got["final_score"], got["category"])) == scored


def test_publish_on_a_lake_exports_parquet_and_buyer_files_from_the_tagged_snapshot(lake_2024, env):
    """`radar publish` on a lake tags a snapshot and cuts the Parquet export and one file per buyer
    (only that buyer's sites) from exactly that snapshot; the lake itself is not copied."""
    import duckdb

    countries, classes = reference(lake_2024)
    sites_file = env / "sites_buyers.jsonl"
    write_sites(generate_sites(40, 7, countries, classes), sites_file)
    con = connect(lake_2024)
    try:
        summary = store.ingest(con, sites_file)
    finally:
        con.close()
    assert score_sites(summary.to_score, edition=2024, warehouse=lake_2024).success
    mine = sorted(summary.to_score)
    inbox = env / "buyers"
    inbox.mkdir(exist_ok=True)
    (inbox / "acme.csv").write_text("buyer_id,site_id\n" + "".join(f"acme,{s}\n" for s in mine[:5]))
    (inbox / "beta.jsonl").write_text("".join(json.dumps({"buyer_id": "beta", "site_id": s}) + "\n"
                                              for s in mine[5:8]))

    outcome = publish_warehouse(warehouse=lake_2024)
    assert outcome.success, outcome.failures
    meta = publish_metadata(outcome)
    sid = meta["snapshot_id"]
    assert meta["buyers"] == {"acme": 5, "beta": 3}
    out = settings.published_path().parent
    assert not settings.published_path().exists()  # the lake is what BI reads: no main copy

    # the Parquet export holds the lake's scores as of the tagged snapshot
    tagged = {r[0]: (r[1], r[2]) for r in rows(
        lake_2024, f"select site_id, final_score, category from site_scores at (version => {int(sid)}) "
                   "where edition = 2024 and site_id like 'SYN-7-%'")}
    assert len(tagged) == 40
    pq = duckdb.connect()
    exported = {r[0]: (r[1], r[2]) for r in pq.sql(
        f"select site_id, final_score, category from '{out / 'parquet' / 'site_scores_latest.parquet'}' "
        "where site_id like 'SYN-7-%'").fetchall()}
    assert exported == tagged
    info = pq.sql(f"select distinct scope, source_warehouse from "
                  f"'{out / 'parquet' / 'publish_info.parquet'}'").fetchall()
    assert len(info) == 1 and info[0][0] == "all" and info[0][1].endswith(f"snapshot {sid}")
    assert pq.sql(f"select count(*) from '{out / 'parquet' / 'country_risk.parquet'}'").fetchall()[0][0] > 0

    # each buyer's file and Parquet hold only its own sites, plus the public country tables
    for buyer, expected in (("acme", mine[:5]), ("beta", mine[5:8])):
        db = duckdb.connect(str(out / "buyers" / f"{buyer}.duckdb"), read_only=True)
        try:
            assert [r[0] for r in db.sql("select site_id from site_scores_latest order by 1").fetchall()] == expected
            assert {r[0]: (r[1], r[2]) for r in db.sql(
                "select site_id, final_score, category from site_scores_latest").fetchall()} == \
                {s: tagged[s] for s in expected}
            assert db.sql("select count(*) from country_risk").fetchall()[0][0] > 0
            assert db.sql("select distinct scope from publish_info").fetchall() == [(f"buyer:{buyer}",)]
        finally:
            db.close()
        got = pq.sql(f"select site_id from '{out / 'buyers' / buyer / 'parquet' / 'site_scores_latest.parquet'}' "
                     "order by 1").fetchall()
        assert [r[0] for r in got] == expected
    pq.close()
    tags = rows(lake_2024, "select kind, snapshot_id from snapshot_tags where kind = 'published'")
    assert ("published", sid) in tags


def test_runs_launched_from_the_ui_or_a_schedule_get_their_closing_snapshot_tag(lake_2024, env):
    """A refresh and a scoring run launched as the UI, a schedule or a sensor launch them (the
    job executed on an instance with the warehouse in its launchpad config, not through radar's
    runners) get their closing tag from lake_snapshot_tag_sensor: the last snapshot the run itself
    wrote, tagged once however often the sensor sees the run."""
    import dagster as dg

    from radar_pipeline.definitions import defs
    from radar_pipeline.platform.partitions import add_site_partitions
    from radar_pipeline.publish.assets import lake_snapshot_tag_sensor
    from radar_pipeline.sites.assets import range_requests

    instance = dg.DagsterInstance.ephemeral()
    launchpad = {"resources": {"warehouse": {"config": {"database": lake_2024, "source": "sample"}}}}

    def sensor_sees(result) -> None:
        run = instance.get_run_by_id(result.run_id)
        event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
        for _ in range(2):  # a second tick over the same run adds nothing
            lake_snapshot_tag_sensor(dg.build_run_status_sensor_context(
                sensor_name=lake_snapshot_tag_sensor.name, dagster_instance=instance, dagster_run=run,
                dagster_event=event))

    def tags_of(run_id: str) -> list[tuple]:
        return rows(lake_2024, "select kind, snapshot_id, message from snapshot_tags "
                               "where json_extract_string(extra, '$.run_id') = $r", r=run_id)

    def last_write(run_id: str) -> int:
        return rows(lake_2024, "select max(snapshot_id) from lake.snapshots() "
                               "where json_extract_string(commit_extra_info, '$.run_id') = $r "
                               "and json_extract(commit_extra_info, '$.tagged_snapshot') is null", r=run_id)[0][0]

    refresh = defs.resolve_job_def("refresh_edition").execute_in_process(
        partition_key="2024", run_config=launchpad, instance=instance)
    assert refresh.success
    assert tags_of(refresh.run_id) == []  # no radar runner: nothing tagged the run yet
    sensor_sees(refresh)
    assert last_write(refresh.run_id) is not None  # the run's own commits name it
    assert tags_of(refresh.run_id) == [("refresh", last_write(refresh.run_id), "refresh edition 2024")]

    countries, classes = reference(lake_2024)
    sites_file = env / "sites_ui.jsonl"
    write_sites(generate_sites(20, 11, countries, classes), sites_file)
    con = connect(lake_2024)
    try:
        keys = sorted(store.ingest(con, sites_file).to_score)
    finally:
        con.close()
    add_site_partitions(instance, keys)
    (request,) = range_requests(keys, set(keys), edition=2024)
    scoring = defs.resolve_job_def("score_sites").execute_in_process(
        run_config={**request.run_config, **launchpad}, tags=request.tags, instance=instance)
    assert scoring.success
    sensor_sees(scoring)
    (kind, sid, message), = tags_of(scoring.run_id)
    # site scoring commits carry no run id (sites/store.py writes without a commit message): the
    # tag names the last snapshot committed by the time the run ended
    assert kind == "scoring" and sid >= last_write(refresh.run_id)
    assert keys[0] in message and keys[-1] in message
    # the tagged snapshot holds exactly what the run scored
    assert rows(lake_2024, f"select count(*) from site_scores at (version => {sid}) "
                           "where site_id like 'SYN-11-%'")[0][0] == 20


def pl_col_like(col: str, prefix: str):
    import polars as pl

    return pl.col(col).str.starts_with(prefix)


READER = textwrap.dedent("""
    import json, sys, time
    from radar_pipeline.platform.warehouse import connect
    target, stop = sys.argv[1], sys.argv[2]
    import os
    lat, errors = [], []
    con = connect(target, read_only=True)  # a BI client's one long-lived read-only session
    while not os.path.exists(stop):
        t = time.perf_counter()
        try:
            con.sql("select edition, count(*), avg(final_score) from site_scores group by 1 "
                    "union all select -edition, count(*), avg(score) from inherent_risk_overall "
                    "group by 1").fetchall()
            lat.append(time.perf_counter() - t)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)
    con.close()
    print(json.dumps({"queries": len(lat), "errors": errors[:5], "n_errors": len(errors)}))
""")

WRITER = textwrap.dedent("""
    import sys
    from radar_pipeline.cli.runs import refresh_edition
    from radar_pipeline.sites import store
    from radar_pipeline.platform.warehouse import connect
    target, what, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    if what == "refresh":
        out = refresh_edition(int(arg), warehouse=target)
        assert out.success, out.failures
    else:
        con = connect(target)
        print(len(store.ingest(con, arg).new))
        con.close()
""")


def test_two_refreshes_and_an_ingest_side_by_side_while_readers_read(lake_2024, env):
    """Edition 2023 and a rerun of 2024 refresh at once, a site file is ingested meanwhile, a
    reader queries throughout: every writer succeeds, no row is lost, the reader never errors."""
    countries, classes = reference(lake_2024)
    sites_file = env / "sites_concurrent.jsonl"
    write_sites(generate_sites(400, 9, countries, classes), sites_file)
    before = dict(rows(lake_2024, "select edition, count(*) from inherent_risk_overall group by 1"))
    stop = env / "stop-readers"
    py = [sys.executable, "-c"]
    readers = [subprocess.Popen([*py, READER, lake_2024, str(stop)], stdout=subprocess.PIPE, text=True,
                                env=os.environ.copy()) for _ in range(2)]
    writers = [subprocess.Popen([*py, WRITER, lake_2024, what, arg], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=os.environ.copy())
               for what, arg in (("refresh", "2023"), ("refresh", "2024"), ("ingest", str(sites_file)))]
    try:
        results = [w.communicate(timeout=900) for w in writers]
    finally:
        stop.write_text("stop")
    reads = [json.loads(r.communicate(timeout=120)[0].strip().splitlines()[-1]) for r in readers]
    for w, (_out, err) in zip(writers, results):
        assert w.returncode == 0, err[-3000:]
    assert results[2][0].strip().splitlines()[-1] == "400"
    for r in reads:
        assert r["n_errors"] == 0, r["errors"]
        assert r["queries"] > 0

    after = dict(rows(lake_2024, "select edition, count(*) from inherent_risk_overall group by 1"))
    assert after[2024] == before[2024]  # the rerun replaced its edition's rows: none lost, none doubled
    n_countries_2023 = rows(lake_2024, "select count(*) from edition_countries where edition = 2023")[0][0]
    n_classes = rows(lake_2024, "select count(*) from isic where level = 'class'")[0][0]
    assert after[2023] == n_countries_2023 * n_classes
    topics = rows(lake_2024, "select edition, count(*), count(distinct iso3) from country_topic_risk group by 1")
    for edition, n, n_iso in topics:
        assert n == n_iso * 14, edition
    assert rows(lake_2024, "select count(*) from sites where site_id like 'SYN-9-%'")[0][0] == 400
    kinds = rows(lake_2024, "select message from snapshot_tags where kind = 'refresh'")
    assert {("refresh edition 2023",), ("refresh edition 2024",)} <= set(kinds)


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from radar_pipeline.platform import lake, lake_commits
    from radar_pipeline.platform.warehouse import connect
    con = connect(sys.argv[1])
    with lake_commits.table_locks(con, ["source_files"]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_slice_writers_of_one_table_queue_on_its_lock_and_others_do_not_wait(lake_2024):
    """lake_commits.table_locks: while another process holds the lock of a table, a writer of that table
    waits for it (instead of failing at commit); a writer of another table does not wait."""
    import time

    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, lake_2024, "5"], stdout=subprocess.PIPE,
                              text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "locked"
        con = connect(lake_2024)
        try:
            t = time.perf_counter()
            with lake_commits.table_locks(con, ["indicator_observations"]):
                other = time.perf_counter() - t
            t = time.perf_counter()
            with lake_commits.table_locks(con, ["source_files", "edition_sources"]):
                same = time.perf_counter() - t
        finally:
            con.close()
    finally:
        holder.wait(timeout=60)
    assert other < 1.0
    assert same > 1.0  # waited for (most of) the holder's 5 s


def test_the_write_pool_has_one_slot_for_a_file_and_n_for_a_lake(monkeypatch, tmp_path):
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    assert lake.apply_pool_limit(instance, tmp_path / "radar.duckdb") == 1
    assert instance.event_log_storage.get_concurrency_info(lake.POOL).slot_count == 1
    monkeypatch.setenv("RADAR_LAKE_WRITERS", "3")
    assert lake.apply_pool_limit(instance, "ducklake:postgres:dbname=radar host=db") == 3
    assert instance.event_log_storage.get_concurrency_info(lake.POOL).slot_count == 3


def test_a_bi_client_reads_the_lake_read_only_through_sqlalchemy(lake_2024):
    """What Superset / Metabase do through duckdb-engine: attach the lake read-only on connect,
    list tables and columns, query; a write is refused."""
    import sqlalchemy as sa

    engine = sa.create_engine("duckdb:///:memory:")

    @sa.event.listens_for(engine, "connect")
    def _attach(dbapi_con, _record):
        lake.attach(dbapi_con, lake_2024, read_only=True)
        dbapi_con.execute(f"use {lake.ALIAS}")

    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from inherent_risk_overall")).scalar() > 0
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            c.execute(sa.text("delete from sites"))
    inspector = sa.inspect(engine)
    assert {"site_scores", "country_topic_risk", "snapshot_tags"} <= set(inspector.get_table_names())
    assert "final_score" in {col["name"] for col in inspector.get_columns("site_scores")}
    engine.dispose()


def test_a_lake_target_survives_pathlib_and_carries_its_options(monkeypatch):
    """The CLI passes RADAR_WAREHOUSE through pathlib.Path (resolve() prepends a folder, `//`
    folds): the lake target and its options come back intact; env vars fill what it lacks."""
    from pathlib import Path

    monkeypatch.delenv("RADAR_LAKE_DATA", raising=False)
    monkeypatch.delenv("RADAR_LAKE_SCHEMA", raising=False)
    t = lake.parse(Path("ducklake:postgres:dbname=radar host=db?data_path=s3://bucket/lake/&metadata_schema=r1"))
    assert (t.catalog, t.data_path, t.metadata_schema) == ("postgres:dbname=radar host=db", "s3://bucket/lake/", "r1")
    assert lake.parse(Path("ducklake:cat/radar.ducklake").resolve()).catalog == "cat/radar.ducklake"
    assert lake.parse("ducklake:x.ducklake?data_path=/srv/a+b%26c").data_path == "/srv/a+b&c"
    monkeypatch.setenv("RADAR_LAKE_DATA", "/srv/lake")
    monkeypatch.setenv("RADAR_LAKE_SCHEMA", "radar_lake")
    t = lake.parse("ducklake:postgres:dbname=radar")
    assert (t.data_path, t.metadata_schema, t.on_postgres) == ("/srv/lake", "radar_lake", True)
    assert not lake.is_lake("data/radar.duckdb") and lake.is_lake(Path("ducklake:x.ducklake"))
