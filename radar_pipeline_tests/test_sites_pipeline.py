"""Sites through Dagster: the inbox sensor, one-run range scoring, CLI parity, explain."""
from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from radar_pipeline.cli.runs import score_sites
from radar_pipeline.platform.partitions import sites as sites_partitions
from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect
from radar_pipeline.sites import store
from radar_pipeline.sites.assets import RANGE_END, RANGE_START, site_inbox_sensor
from radar_pipeline.sites.explain import explain_text
from radar_pipeline.sites.generate import generate_sites, write_sites
from radar_pipeline.sites.score_file import score_file


@pytest.fixture(scope="module")
def sample_warehouse(sample_edition_2024):
    return sample_edition_2024


@pytest.fixture
def warehouse(sample_warehouse, tmp_path):
    """A private copy per test, so tests do not see each other's sites."""
    path = tmp_path / "w.duckdb"
    path.write_bytes(sample_warehouse.read_bytes())
    return path


def reference(path):
    con = connect(path, read_only=True)
    try:
        return ([r[0] for r in con.sql("select iso3 from countries").fetchall()],
                [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()])
    finally:
        con.close()


@pytest.mark.slow
def test_cli_score_equals_dagster_path(warehouse, tmp_path):
    countries, classes = reference(warehouse)
    sites_file = tmp_path / "sites.jsonl"
    write_sites(generate_sites(1000, 11, countries, classes), sites_file)

    # streamed in chunks of 300 lines (the last one partial): the same scores as one pass
    cli_scores, rejects = score_file(sites_file, 2024, warehouse, chunk_lines=300)
    assert rejects.is_empty() and cli_scores.height == 1000
    # `radar score` as a user runs it: the same rows in the file, explanation rows only on request
    from radar_pipeline.cli import main

    out = tmp_path / "out" / "scores.csv"
    args = ["score", "--sites", str(sites_file), "--edition", "2024", "--out", str(out), "--chunk-lines", "300",
            "--warehouse", str(warehouse)]
    assert main(args) == 0
    assert pl.read_csv(out, schema=cli_scores.schema).equals(cli_scores)
    assert not (tmp_path / "out" / "scores_factors.csv").exists()
    assert main([*args, "--explain"]) == 0
    cli_factors = pl.read_csv(tmp_path / "out" / "scores_factors.csv", infer_schema_length=None)

    con = connect(warehouse)
    summary = store.ingest(con, sites_file)
    con.close()
    assert len(summary.new) == 1000
    outcome = score_sites(summary.to_score, edition=2024, warehouse=warehouse)
    assert outcome.success, outcome.failures
    # one run materialised all 1000 partitions
    mats = [e for e in outcome.result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert len(mats) == 1000

    con = connect(warehouse, read_only=True)
    dagster_scores = con.sql("select * exclude (scored_at) from site_scores where edition = 2024").pl()
    con.close()
    cols = ["site_id", "inherent", "site_characteristics", "management_controls", "base", "adjustment",
            "final_score", "category", "inherent_only"]
    assert cli_scores.select(cols).sort("site_id").equals(dagster_scores.select(cols).sort("site_id"))
    assert set(cli_scores["category"]) <= {"Low", "Medium", "High"}
    con = connect(warehouse, read_only=True)
    dagster_factors = con.sql("select site_id, kind, item, points from site_score_factors "
                              "where edition = 2024 order by site_id, kind, item").pl()
    con.close()
    assert cli_factors.n_unique("site_id") == 1000
    assert cli_factors.select("site_id", "kind", "item", "points").sort("site_id", "kind", "item").equals(
        dagster_factors.with_columns(pl.col("points").cast(cli_factors["points"].dtype)))


def test_cli_score_reports_bad_override_rows_like_every_other_path(warehouse, tmp_path, monkeypatch, capsys):
    from radar_pipeline.cli import main

    countries, classes = reference(warehouse)
    sites = tmp_path / "s.jsonl"
    write_sites(generate_sites(3, 5, countries, classes), sites)
    folder = tmp_path / "overrides"
    folder.mkdir()
    (folder / "team.csv").write_text("site_id,category,reason,author,created_on,expires_on\n"
                                     "SYN-5-0000000,Huge,typo,ana,2026-01-01,\n"
                                     "SYN-5-0000001,Low,,ana,2026-01-01,\n")
    monkeypatch.setenv("RADAR_OVERRIDES", str(folder))
    assert main(["score", "--sites", str(sites), "--edition", "2024", "--out", str(tmp_path / "o.csv"),
                 "--warehouse", str(warehouse)]) == 0
    err = capsys.readouterr().err
    assert "override rejected: team.csv line 2 category: category 'Huge' is not one of" in err
    assert "override rejected: team.csv line 3 reason: an override needs a reason" in err


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_clean_file_larger_than_a_batch_is_read_natively_batch_by_batch(warehouse, tmp_path, monkeypatch,
                                                                           workers):
    """More sites than RADAR_SCORE_BATCH_SITES, every line valid: the native intake reads the file a
    part at a time (native.split_parts; the workers check the file's own bytes of each part) and
    the parts' scores are merged: the rows of one pass. A site_id repeated in a later part (each
    part alone is clean), or a bad line in the last part, sends the file to the line-exact reader,
    with nothing of the parts already scored left over: the same scores and rejects as that reader
    gives without the native intake."""
    from radar_pipeline.sites.intake import native

    countries, classes = reference(warehouse)
    sites = generate_sites(700, 3, countries, classes)
    sites.reverse()  # the file out of site_id order: the merge must order it
    clean = tmp_path / "sites.jsonl"
    write_sites(sites, clean)
    clean.write_bytes(clean.read_bytes().rstrip(b"\n"))  # and no final newline
    one_pass, _ = score_file(clean, 2024, warehouse)
    assert one_pass.height == 700 and one_pass["site_id"].is_sorted()

    loads = []
    real_load = native.load

    def spy(*args, **kwargs):
        loads.append(real_load(*args, **kwargs))
        return loads[-1]

    monkeypatch.setattr(native, "load", spy)
    monkeypatch.setenv("RADAR_INTAKE_WORKERS", workers)
    monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", "250")
    scores, rejects = score_file(clean, 2024, warehouse)
    assert loads == [250, 250, 200]  # natively, three parts
    assert scores.equals(one_pass) and rejects.is_empty()

    # a batch just short of the file (the estimate says it fits): at once refused (too many lines),
    # then part by part, not the chunked path
    loads.clear()
    monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", "680")
    scores, rejects = score_file(clean, 2024, warehouse)
    assert loads == [None, 680, 20] and scores.equals(one_pass) and rejects.is_empty()
    monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", "250")

    lines = clean.read_bytes().split(b"\n")
    for name, bad in (("repeated", [*lines, lines[3]]), ("bad last line", [*lines, b'{"site_id": "BAD"}'])):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"\n".join(bad) + b"\n")
        loads.clear()
        monkeypatch.setenv("RADAR_NATIVE_INTAKE", "1")
        scores, rejects = score_file(path, 2024, warehouse)
        assert loads[:2] == [250, 250] and loads[2:] in ([None], [201]), (name, loads)  # then the line-exact reader
        monkeypatch.setenv("RADAR_NATIVE_INTAKE", "0")
        exact_scores, exact_rejects = score_file(path, 2024, warehouse)
        assert scores.equals(exact_scores) and rejects.equals(exact_rejects), name
        assert rejects["line"].to_list() and set(rejects["line"]) <= {701}, name
    monkeypatch.delenv("RADAR_NATIVE_INTAKE")

    def no_room(_src, dest, *_a):
        raise OSError(28, "No space left on device", str(dest))

    monkeypatch.setattr(native, "_copy_range", no_room)  # a temp folder too small for a part
    loads.clear()
    scores, rejects = score_file(clean, 2024, warehouse)
    assert loads == [] and scores.equals(one_pass) and rejects.is_empty()  # read line by line instead


def test_the_merge_of_sorted_parts_writes_every_row_once_in_site_id_order(tmp_path, monkeypatch):
    """score_file._write_sorted over parts of different sizes (one empty), read a few batches at a
    time (MERGE_ROWS small): each round writes the rows up to the smallest last site_id held."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from radar_pipeline.sites import score_file as score_file_module

    rng = random.Random(5)
    ids = rng.sample([f"S-{i:05d}" for i in range(5000)], 1500)
    sizes = [700, 0, 500, 299, 1]
    parts, at = [], 0
    for k, size in enumerate(sizes):
        chunk = sorted(ids[at:at + size])
        at += size
        path = tmp_path / f"scores_{k}.parquet"
        pq.write_table(pa.table({"site_id": pa.array(chunk, pa.string()),
                                 "final_score": pa.array([float(len(x) + k) for x in chunk])}), path,
                       row_group_size=50)
        parts.append(path)
    monkeypatch.setattr(score_file_module, "MERGE_ROWS", 10)  # batches of 64 rows: many rounds
    for out in (tmp_path / "merged.parquet", tmp_path / "merged.csv"):
        score_file_module._write_sorted(parts, out)
        merged = pl.read_parquet(out) if out.suffix == ".parquet" else pl.read_csv(out)
        assert merged["site_id"].to_list() == sorted(ids)
        expected = pl.concat([pl.read_parquet(p) for p in parts]).sort("site_id")
        assert merged.equals(expected)
    assert pq.read_schema(tmp_path / "merged.parquet").field("site_id").type == pa.string()  # the parts' types


def test_cli_score_of_a_file_larger_than_a_batch_equals_one_pass(warehouse, tmp_path, monkeypatch):
    """A file of more valid sites than RADAR_SCORE_BATCH_SITES is scored in batches (the memory of
    any file is bounded: issue 24 item 6) and merged by site_id: the same rows as one pass."""
    countries, classes = reference(warehouse)
    sites_file = tmp_path / "sites.jsonl"
    sites = generate_sites(700, 3, countries, classes)
    sites.reverse()  # the file out of site_id order: the merge must order it
    write_sites(sites, sites_file)
    with sites_file.open("a") as fh:  # and a bad line, rejected in a batch like in one pass
        fh.write('{"site_id": "BAD"}\n')
    one_pass, one_rejects = score_file(sites_file, 2024, warehouse, chunk_lines=100)
    monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", "250")  # batches of 300, 300 and the last 100
    batched, rejects = score_file(sites_file, 2024, warehouse, chunk_lines=100)
    assert one_pass.height == 700 and one_pass["site_id"].is_sorted()
    assert batched.equals(one_pass)
    assert rejects.equals(one_rejects) and rejects.height >= 1
    # the chunks put into DuckDB a few at once (score_file._load_parts, LOAD_BATCH_SITES) and parsed by
    # worker processes started before the warehouse is read (intake.workers.IntakePool): the same
    from radar_pipeline.sites import score_file as score_file_module

    monkeypatch.setattr(score_file_module, "LOAD_BATCH_SITES", 150)
    monkeypatch.setenv("RADAR_INTAKE_WORKERS", "2")
    for batch in ("250", "1000000"):
        monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", batch)
        scores, rejects = score_file(sites_file, 2024, warehouse, chunk_lines=100)
        assert scores.equals(one_pass)
        assert rejects.equals(one_rejects)
    monkeypatch.delenv("RADAR_INTAKE_WORKERS")
    monkeypatch.setenv("RADAR_SCORE_BATCH_SITES", "many")
    with pytest.raises(SystemExit, match="RADAR_SCORE_BATCH_SITES 'many' is not a positive whole number"):
        score_file(sites_file, 2024, warehouse)


def test_score_file_reads_the_reference_as_the_intake_does(warehouse):
    """store.isic_frame (no pyarrow at `radar score`'s start) is the table DuckDB's .pl() gives, and
    reference(check_stored=False) what the checked reference gives on the same connection."""
    from radar_pipeline.sites import score_file as score_file_module

    con = score_file_module._scoring_connection(2024, warehouse)
    try:
        countries, isic, controls = store.reference(con, check_stored=False)
        expected = store.reference(con)
        arrow = con.sql("select code, level, section, division, grp, is_primary_producer from isic").pl()
    finally:
        con.close()
    assert countries == expected[0] and controls == expected[2]
    assert isic.schema == arrow.schema and isic.equals(arrow) and isic.equals(expected[1])


def test_cli_score_of_an_empty_or_all_rejected_file_writes_the_header(warehouse, tmp_path):
    from radar_pipeline.cli import main

    countries, classes = reference(warehouse)
    one = tmp_path / "one.jsonl"
    write_sites(generate_sites(1, 5, countries, classes), one)
    columns = score_file(one, 2024, warehouse)[0].columns
    for name, text in (("empty.jsonl", ""), ("bad.jsonl", "{not json\n")):
        sites = tmp_path / name
        sites.write_text(text)
        out = tmp_path / f"{name}.csv"
        assert main(["score", "--sites", str(sites), "--edition", "2024", "--out", str(out), "--explain",
                     "--warehouse", str(warehouse)]) == 0
        scores = pl.read_csv(out)
        assert scores.columns == columns and scores.height == 0
        assert pl.read_csv(tmp_path / f"{name}_factors.csv").height == 0


def _write(path: Path, rows: list[dict | str]):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _tick(instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
        return site_inbox_sensor(ctx)


def test_inbox_sensor_ingests_once_and_requests_one_run(warehouse, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("RADAR_SITES_INBOX", str(inbox))
    sites = [{"site_id": f"S-{i}", "country": "BGD", "isic": "1410",
              "saq": {"workers_total": 100 * (i + 1)}} for i in range(5)]
    _write(inbox / "batch1.jsonl", [*sites, "{not json", {"site_id": "'; drop table sites; --",
                                                          "country": "BGD", "isic": "1410"}])
    instance = dg.DagsterInstance.ephemeral()
    resources = {"warehouse": DuckDBWarehouse(database=str(warehouse))}

    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:  # the resource is a generator
        result = site_inbox_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == ("S-0", "S-4")
    added = result.dynamic_partitions_requests[0]
    assert list(added.partition_keys) == [f"S-{i}" for i in range(5)]

    con = connect(warehouse, read_only=True)
    assert con.sql("select count(*) from sites").fetchall()[0][0] == 5
    rejects = con.sql("select line, field, reason from site_rejects order by line").fetchall()
    con.close()
    assert [r[0] for r in rejects] == [6, 7]  # bad JSON and hostile id quarantined, good lines kept

    # a symlink in the inbox is reported once and never read (it could point at any file)
    secret = tmp_path / "secret.jsonl"
    _write(secret, [{"site_id": "LEAK", "country": "BGD", "isic": "1410"}])
    (inbox / "link.jsonl").symlink_to(secret)
    linked = _tick(instance, resources, result.cursor)
    assert isinstance(linked, dg.SensorResult) and not linked.run_requests
    assert "symlink" in linked.skip_reason.skip_message
    assert json.loads(linked.cursor)["files"]["link.jsonl"] == "symlink"
    result = linked
    con = connect(warehouse, read_only=True)
    assert con.sql("select count(*) from sites where site_id = 'LEAK'").fetchall()[0][0] == 0
    con.close()

    # unchanged file on the next tick, once the requested run has scored them: nothing to do
    instance.add_dynamic_partitions(sites_partitions.name, list(added.partition_keys))
    with connect(warehouse) as con:
        store.score_and_store(con, 2024, list(added.partition_keys))
    again = _tick(instance, resources, result.cursor)
    assert isinstance(again, dg.SkipReason)

    # the same content re-sent under a new name changes nothing and requests nothing
    _write(inbox / "batch1-copy.jsonl", sites)
    resent = _tick(instance, resources, result.cursor)
    assert resent.run_requests == [] and resent.dynamic_partitions_requests == []

    # one site changes its answers: only that site is requested
    sites[2]["saq"]["workers_total"] = 5000
    _write(inbox / "batch2.jsonl", [sites[2]])
    changed = _tick(instance, resources, resent.cursor)
    req = changed.run_requests[0]
    assert (req.tags[RANGE_START], req.tags[RANGE_END]) == ("S-2", "S-2")
    con = connect(warehouse, read_only=True)
    hist = con.sql("select change from site_history where site_id = 'S-2' order by received_at").fetchall()
    con.close()
    assert [h[0] for h in hist] == ["new", "changed"]


def test_rescoring_one_site_replaces_only_its_rows(warehouse, tmp_path):
    f = tmp_path / "a.jsonl"
    _write(f, [{"site_id": "A", "country": "DNK", "isic": "6419"},
               {"site_id": "B", "country": "BGD", "isic": "1410", "saq": {"workers_total": 3000}}])
    con = connect(warehouse)
    store.ingest(con, f)
    store.score_and_store(con, 2024, ["A", "B"])
    before_b = con.sql("select * exclude (scored_at) from site_scores where site_id = 'B'").pl()
    _write(f, [{"site_id": "A", "country": "DNK", "isic": "6419", "audits": [
        {"nc_id": "N1", "severity": "critical", "status": "open", "raised_on": "2024-01-01"}]}])
    store.ingest(con, f)
    store.score_and_store(con, 2024, ["A"])
    a = con.sql("select final_score, adjustment, category from site_scores where site_id = 'A'").fetchall()
    after_b = con.sql("select * exclude (scored_at) from site_scores where site_id = 'B'").pl()
    n = con.sql("select count(*) from site_scores").fetchall()[0][0]
    text = explain_text(con, "A", None)
    con.close()
    assert a == [(6.0, "floor_6.0", "High")]  # open critical on a low-risk bank -> floor (§8.4)
    assert before_b.equals(after_b) and n == 2
    assert "FINAL SCORE 6.0" in text and "1 critical" in text
    # how each country value of Denmark was obtained (METHODOLOGY §2.3), one line per indicator
    assert "How the country values of DNK were obtained" in text
    assert re.search(r"business_ethics +ti_cpi_score +[0-9.]+  observed 20[0-9]{2} = ", text)


def test_explain_prints_stored_values_half_up():
    from radar_pipeline.sites.explain import fmt

    # 4.125 is stored as a double just below it: format() would print 4.12; every stored score
    # rounds half up (METHODOLOGY §8.5), so explain does too
    assert (fmt(4.125), fmt(4.125, 1), fmt(3.95, 1), fmt(0.005), fmt(None), fmt(2.0, 0)) == (
        "4.13", "4.1", "4.0", "0.01", "-", "2")


def test_failed_scoring_run_is_recorded(warehouse, tmp_path):
    f = tmp_path / "a.jsonl"
    _write(f, [{"site_id": "A", "country": "DNK", "isic": "6419"}])
    con = connect(warehouse)
    summary = store.ingest(con, f)
    con.execute("delete from inherent_risk_overall")  # nothing to score against
    con.close()
    outcome = score_sites(summary.to_score, warehouse=warehouse)
    assert not outcome.success
    con = connect(warehouse, read_only=True)
    runs = con.sql("select status, n_sites, first_site, error from site_scoring_runs").fetchall()
    con.close()
    assert len(runs) == 1 and runs[0][:3] == ("failure", 1, "A") and "no inherent risk" in runs[0][3]


def test_ingest_records_the_file_digest_replaces_its_rejects_and_restores_threads(warehouse, tmp_path):
    """The digest is computed beside the parse (store.ingest): it must still be the file's
    sha256 on every row that names it, a re-load of the same content must replace its rejects
    rather than add to them, and the connection's DuckDB thread count (lowered while the file
    is parsed) is given back, also when the ingest fails."""
    import hashlib

    f = tmp_path / "a.jsonl"
    _write(f, [{"site_id": "A", "country": "DNK", "isic": "6419"}, "{broken",
               {"site_id": "B", "country": "XXX", "isic": "6419"}])
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    con = connect(warehouse)
    try:
        con.execute("set threads = 3")
        for _ in range(2):
            summary = store.ingest(con, f, chunk_lines=1)
            assert summary.file_sha256 == digest and summary.rejected == 2
        assert con.sql("select file_sha256, count(*) from site_rejects group by all").fetchall() == [(digest, 2)]
        assert {r[0] for r in con.sql("select file_sha256 from site_intake_files").fetchall()} == {digest}
        assert con.sql("select current_setting('threads')").fetchall()[0][0] == 3
        def interrupt(part):
            raise KeyboardInterrupt  # Ctrl-C while chunks are applied

        with pytest.raises(KeyboardInterrupt):
            store.ingest(con, f, chunk_lines=1, on_chunk=interrupt)
        assert con.sql("select current_setting('threads')").fetchall()[0][0] == 3
        assert con.sql("select count(*) from site_rejects").fetchall()[0][0] == 2  # rolled back
    finally:
        con.close()
