"""Bad input, kind by kind: each gives a clear error (file, row/field, reason) or a
quarantined reject row, and the valid input next to it is still processed.

Publisher and user files are SYNTHETIC copies of the packaged sample mirror,
edited in tmp_path and read through `registry.load_source` (mirror mode), the
path the source assets take. Site files go through `read_sites_jsonl`.
"""
from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.metadata import schemas
from radar_pipeline.platform import settings
from radar_pipeline.sites.intake import read_sites_jsonl
from radar_pipeline.sources import registry
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import SourceError

SAMPLE = settings.SAMPLE_MIRROR_DIR
EDITION = 2023


@pytest.fixture(scope="module")
def universe() -> set[str]:
    return set(un_m49.parse_countries(next((SAMPLE / "un_m49").glob("*/*.csv")))["iso3"])


def _one_file(source: str) -> Path:
    """The newest sample file the edition reads: as of the edition (METHODOLOGY §1), the newest
    vintage released by EDITION, else the oldest vintage."""
    files = sorted(p for p in (SAMPLE / source).glob("*/*") if p.is_file())
    released = [p for p in files if int(p.parent.name[:4]) <= EDITION]
    return released[-1] if released else [p for p in files if p.parent == files[0].parent][-1]


def _edit_text(path: Path, fn: Callable[[str], str]) -> None:
    path.write_text(fn(path.read_text(encoding="utf-8-sig")), encoding="utf-8")


def _replace_line(line_no: int, fn: Callable[[str], str]) -> Callable[[str], str]:
    """Edit one physical line (1-based)."""
    def edit(text: str) -> str:
        lines = text.split("\n")
        lines[line_no - 1] = fn(lines[line_no - 1])
        return "\n".join(lines)
    return edit


def _append(extra: str) -> Callable[[str], str]:
    return lambda text: text.rstrip("\n") + "\n" + extra + "\n"


# (id, source, edit of the source's newest sample file, substrings the error must contain)
PUBLISHER_CASES = [
    ("renamed_column", "nd_gain", lambda t: t.replace('"ISO3"', '"ISO_3"', 1), ["gain.csv", "ISO3"]),
    ("missing_column", "ituc", lambda t: t.replace("country,rating", "country,score", 1),
     ["ituc_ratings.csv", "rating"]),
    ("renamed_column_user", "user",
     lambda t: t.replace("iso3,indicator_id,year,value", "iso3,indicator_id,yr,value", 1),
     ["ilo_weekly_hours.csv", "year"]),
    ("non_numeric_value", "nd_gain", _replace_line(3, lambda ln: ln.replace('"BGD","Bangladesh",41.6738467837868',
                                                                           '"BGD","Bangladesh",forty-one')),
     ["gain.csv", "line 3", "forty-one"]),
    ("duplicate_country_ituc", "ituc", _append("Australia,2"), ["ituc_ratings.csv", "Australia"]),
    ("bad_rating_ituc", "ituc", _append("Namibia,7"), ["ituc_ratings.csv", "7"]),
    ("bad_rating_text_ituc", "ituc", _append("Namibia,very bad"), ["ituc_ratings.csv", "very bad"]),
    ("unknown_country_name", "ituc", _append("Atlantis,3"), ["Atlantis"]),
    ("two_names_one_country", "ituc", _append("Commonwealth of Australia,2"),
     ["Australia", "Commonwealth of Australia", "same country"]),
    ("latin1_text", "undp_gii", None, ["Gender_Inequality_Index_GII_2019.csv", "UTF-8"]),
]


@pytest.mark.parametrize("case_id,source,edit,expect", PUBLISHER_CASES, ids=[c[0] for c in PUBLISHER_CASES])
def test_bad_publisher_or_user_file_names_file_row_and_reason(case_id, source, edit, expect, tmp_path, universe):
    mirror = tmp_path / "mirror"
    shutil.copytree(SAMPLE / source, mirror / source)
    target = mirror / source / _one_file(source).relative_to(SAMPLE / source)
    # the untouched copy loads: the failure below is caused by the edit alone
    good = registry.load_source(source, EDITION, universe, mirror=mirror, landing=tmp_path / "l",
                                user_dir=tmp_path / "nouser", log=lambda m: None)
    assert good.observations.height > 0
    if edit is None:  # re-encode as latin-1 (the sample file has non-ASCII text)
        target.write_bytes(target.read_text(encoding="utf-8-sig").encode("latin-1", errors="replace"))
    else:
        _edit_text(target, edit)
    with pytest.raises(SourceError) as err:
        registry.load_source(source, EDITION, universe, mirror=mirror, landing=tmp_path / "l",
                             user_dir=tmp_path / "nouser", log=lambda m: None)
    msg = str(err.value)
    assert msg.startswith(f"[{source}]"), msg
    for part in expect:
        assert part in msg, f"{part!r} not in {msg!r}"


# (id, edit of the sample user file, line, field, substrings of the reason): a bad row of a user
# file is quarantined (issue 22): a source_notes row naming file, line and field; the rest loads
USER_ROW_CASES = [
    ("non_numeric_value", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,2020,about 36"), 3, "value",
     ["about 36", "not a number"]),
    ("non_integer_year", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,twenty,35.9"), 3, "year", ["twenty"]),
    ("duplicate_key", _append("DNK,ilo_weekly_hours,2019,40.0"), None, "iso3",
     ["DNK ilo_weekly_hours 2019 given twice (first on line"]),
    ("unknown_indicator", _append("DNK,no_such_indicator,2020,1.0"), None, "indicator_id", ["no_such_indicator"]),
    ("ragged_row", _append("DNK,ilo_weekly_hours,2018,35.0,extra,cells"), None, "line",
     ["6 fields, the header has 4"]),
    ("inf", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,2020,inf"), 3, "value", ["not a finite number", "inf"]),
    ("-inf", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,2020,-inf"), 3, "value", ["-inf"]),
    ("nan", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,2020,nan"), 3, "value", ["not a finite number"]),
    # one typo (4700 h/week) would rescale every other country's score
    ("outside_plausible_range", _replace_line(3, lambda ln: "DNK,ilo_weekly_hours,2020,4700"), 3, "value",
     ["4700", "plausible range 0 to 168", "hours per week"]),
]


@pytest.mark.parametrize("case_id,edit,line,field,expect", USER_ROW_CASES, ids=[c[0] for c in USER_ROW_CASES])
def test_bad_user_row_is_quarantined_with_file_line_field_and_the_rest_loads(case_id, edit, line, field, expect,
                                                                              tmp_path, universe):
    mirror = _user_mirror(tmp_path)
    target = next((mirror / "user").glob("*/*.csv"))
    good = _load_user(mirror, tmp_path, universe)
    assert good.notes.filter(pl.col("source") == "user").is_empty()
    _edit_text(target, edit)
    line = line or len(target.read_text(encoding="utf-8").splitlines())
    load = _load_user(mirror, tmp_path, universe)  # no SourceError: the refresh goes on
    notes = load.notes.rows(named=True)
    assert len(notes) == 1, notes
    note = notes[0]
    assert (note["file"], note["row_ref"]) == (target.name, f"line {line}")
    assert note["reason"].startswith(f"field '{field}': ")
    for part in expect:
        assert part in note["reason"], (part, note["reason"])
    # every other row is used: the good load less the replaced row (if any)
    kept = set(good.observations.select("iso3", "data_year").iter_rows())
    now = set(load.observations.select("iso3", "data_year").iter_rows())
    assert now <= kept and len(kept - now) <= 1 and load.observations.height >= good.observations.height - 1


@pytest.mark.parametrize("column,bad,expect", [
    ("value", math.inf, "value"),
    ("value", math.nan, "value"),
    ("iso3", "xx", "iso3"),
    ("data_year", 1800, "data_year"),
], ids=["inf", "nan", "bad_iso3", "year_out_of_range"])
def test_observation_checks_reject_out_of_range_values(column, bad, expect):
    row = {"edition": 2023, "source": "user", "indicator_id": "ilo_weekly_hours", "iso3": "DNK",
           "data_year": 2020, "value": 36.0, "vintage": "2024", "file": "f.csv", "row_ref": "line 2"}
    good = pl.DataFrame([row, {**row, "iso3": "BGD"}], schema_overrides={"edition": pl.Int32, "data_year": pl.Int32})
    assert schemas.validate(schemas.indicator_observations, good) == []
    bad_df = good.with_columns(pl.when(pl.col("iso3") == "BGD").then(pl.lit(bad)).otherwise(pl.col(column))
                               .cast(good.schema[column]).alias(column))
    problems = schemas.validate(schemas.indicator_observations, bad_df)
    assert problems and any(expect in p for p in problems), problems


def test_duplicate_observation_key_fails_the_check():
    row = {"edition": 2023, "source": "user", "indicator_id": "ilo_weekly_hours", "iso3": "DNK",
           "data_year": 2020, "value": 36.0, "vintage": "2024", "file": "f.csv", "row_ref": "line 2"}
    df = pl.DataFrame([row, {**row, "value": 40.0, "row_ref": "line 9"}],
                      schema_overrides={"edition": pl.Int32, "data_year": pl.Int32})
    assert schemas.validate(schemas.indicator_observations, df)


# --------------------------------------------------------------------------- sites (JSON Lines)

ISIC = pl.DataFrame({
    "code": ["C", "14", "141", "1410", "A", "01", "011", "0111"],
    "level": ["section", "division", "group", "class", "section", "division", "group", "class"],
    "section": ["C"] * 4 + ["A"] * 4,
    "division": [None, "14", "14", "14", None, "01", "01", "01"],
    "grp": [None, None, "141", "141", None, None, "011", "011"],
    "is_primary_producer": [False] * 4 + [True] * 4,
})
COUNTRIES = {"BGD", "CIV", "VNM"}
CONTROLS = {"ppe_enforced", "written_policy"}
GOOD = {"site_id": "OK-1", "site_name": "Plant", "country": "BGD", "isic": "1410",
        "saq": {"workers_total": 120, "migrant_pct": 12.5, "worker_representation": "committee"},
        "controls": ["ppe_enforced"],
        "audits": [{"nc_id": "NC-1", "severity": "major", "status": "open", "raised_on": "2024-03-02"}]}


def _site(**over) -> str:
    return json.dumps({**GOOD, **over})


def _saq(**over) -> str:
    return json.dumps({**GOOD, "site_id": "BAD-1", "saq": {**GOOD["saq"], **over}})


HOSTILE_SQL = "'; drop table sites; --"
LONG_ID = "A" * 10_000

# (id, bad line(s) as text or bytes, field the reject names, substrings of the reason)
SITE_CASES = [
    ("malformed_json", '{"site_id": "BAD-1", "country": "BGD",', None, ["JSON"]),
    ("huge_line", '{"site_id": "BAD-1", "site_name": "' + "x" * (1 << 20) + '"}', None, ["MiB"]),
    ("not_an_object", '["BAD-1", "BGD", "1410"]', None, ["object"]),
    ("invalid_utf8", b'{"site_id": "BAD-1", "site_name": "\xff\xfe"}', None, ["UTF-8"]),
    ("sql_injection_id", _site(site_id=HOSTILE_SQL), "site_id", ["site_id"]),
    ("path_traversal_id", _site(site_id="../../etc/passwd"), "site_id", ["site_id"]),
    ("10kB_id", _site(site_id=LONG_ID), "site_id", ["site_id"]),
    ("missing_site_id", json.dumps({k: v for k, v in GOOD.items() if k != "site_id"}), "site_id", []),
    ("unknown_country", _site(site_id="BAD-1", country="Atlantis"), "country", ["Atlantis"]),
    ("unknown_isic", _site(site_id="BAD-1", isic="9999"), "isic", ["9999"]),
    ("unknown_saq_key", _saq(favourite_colour="blue"), "favourite_colour", []),
    ("percentage_over_100", _saq(migrant_pct=150), "migrant_pct", ["150"]),
    ("percentage_negative", _saq(migrant_pct=-1), "migrant_pct", ["-1"]),
    ("saq_wrong_type", _saq(workers_total="many"), "workers_total", []),
    ("saq_bad_enum", _saq(worker_representation="guild"), "worker_representation", ["guild"]),
    ("unknown_control", _site(site_id="BAD-1", controls=["ppe_enforced", "free_lunch"]), "controls", ["free_lunch"]),
    ("bad_severity", _site(site_id="BAD-1", audits=[{**GOOD["audits"][0], "severity": "catastrophic"}]),
     "severity", ["catastrophic"]),
    ("bad_status", _site(site_id="BAD-1", audits=[{**GOOD["audits"][0], "status": "pending"}]),
     "status", ["pending"]),
    ("bad_date", _site(site_id="BAD-1", audits=[{**GOOD["audits"][0], "raised_on": "02/03/2024"}]),
     "raised_on", ["02/03/2024"]),
    ("unknown_top_level_key", json.dumps({**GOOD, "site_id": "BAD-1", "owner": "x"}), "owner", []),
    ("duplicate_json_key", '{"site_id": "BAD-1", "site_id": "BAD-2", "country": "BGD", "isic": "1410"}',
     "site_id", []),
    # issue 11
    ("dotdot_id", _site(site_id=".."), "site_id", ["site_id"]),
    ("dot_id", _site(site_id="."), "site_id", ["site_id"]),
    ("trailing_newline_id", _site(site_id="BAD-1\n"), "site_id", ["site_id"]),
    ("lone_surrogate", _site(site_id="BAD-1", site_name="x\ud800y"), "site_name", ["surrogate"]),
    ("lone_surrogate_in_saq_key", '{"site_id": "BAD-1", "country": "BGD", "isic": "1410", '
                                  '"saq": {"a\\ud800": 1}}', "saq", ["surrogate"]),
    ("number_1e400", _saq(workers_total=1).replace('"workers_total": 1', '"workers_total": 1e400'),
     "workers_total", ["finite"]),
    ("huge_controls_list", _site(site_id="BAD-1", controls=[0] * 100_000), "controls", ["100000", "at most"]),
]


def _write(tmp_path: Path, bad: str | bytes) -> tuple[Path, int]:
    """Valid site, the bad line, valid site: returns the file and the bad line's number."""
    parts = [_site(site_id="OK-1").encode(), bad if isinstance(bad, bytes) else bad.encode(),
             _site(site_id="OK-2", country="Viet Nam", isic="C1410").encode()]
    path = tmp_path / "sites.jsonl"
    path.write_bytes(b"\n".join(parts) + b"\n")
    return path, 2


@pytest.mark.parametrize("case_id,bad,field,expect", SITE_CASES, ids=[c[0] for c in SITE_CASES])
def test_bad_site_line_is_quarantined_and_valid_sites_are_kept(case_id, bad, field, expect, tmp_path):
    path, line = _write(tmp_path, bad)
    r = read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)
    assert sorted(r.sites["site_id"].to_list()) == ["OK-1", "OK-2"], r.rejects.to_dicts()
    assert dict(zip(r.sites["site_id"], r.sites["iso3"])) == {"OK-1": "BGD", "OK-2": "VNM"}
    rej = r.rejects.filter(pl.col("line") == line)
    assert rej.height >= 1, f"line {line} not rejected: {r.rejects.to_dicts()}"
    assert r.rejects.filter(pl.col("line") != line).height == 0, r.rejects.to_dicts()
    assert all(f in (str(path), path.name) for f in rej["file"]), rej.to_dicts()
    text = " | ".join(f"{f or ''}: {reason}" for f, reason in zip(rej["field"], rej["reason"]))
    if field is not None:
        assert any(field in (f or "") or field in reason for f, reason in zip(rej["field"], rej["reason"])), text
    for part in expect:
        assert part in text, f"{part!r} not in {text!r}"
    # nothing of the rejected site leaks into the result tables
    for table in (r.saq, r.controls, r.nonconformities):
        assert set(table["site_id"]) <= {"OK-1", "OK-2"}
    # hostile/huge values are truncated in the reject, never echoed whole
    assert all(len(reason) < 2000 for reason in rej["reason"]) and all(
        s is None or len(s) <= 200 for s in rej["site_id"])


def test_duplicate_site_id_rejects_the_repeat_and_keeps_the_rest(tmp_path):
    path = tmp_path / "sites.jsonl"
    path.write_text("\n".join([_site(site_id="OK-1"), _site(site_id="OK-2"),
                               _site(site_id="OK-1", site_name="again")]) + "\n", encoding="utf-8")
    r = read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)
    rej = r.rejects.to_dicts()
    assert rej and all(x["site_id"] == "OK-1" and x["file"] in (str(path), path.name) and x["line"] == 3
                       for x in rej), rej
    assert any(x["field"] == "site_id" and "duplicate" in x["reason"].lower() for x in rej), rej
    assert "OK-2" in r.sites["site_id"].to_list()


def test_rejects_are_one_row_per_line_with_a_count(tmp_path):
    """A line breaking a rule hundreds of times is one reject row naming the count (issue 11:
    an 8 MB file of `"controls":[0,0,...]` lines made 4.2M reject rows and 3.5 GB)."""
    many = _site(site_id="BAD-1", controls=[0] * 300)           # under the size cap: validated, folded
    huge = _site(site_id="BAD-2", controls=["x"] * 200_000)     # over it: rejected unread
    path = tmp_path / "sites.jsonl"
    path.write_text("\n".join([_site(site_id="OK-1"), many, huge, _site(site_id="OK-2")] + [huge] * 20) + "\n")
    r = read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)
    assert sorted(r.sites["site_id"]) == ["OK-1", "OK-2"]
    assert r.rejects["line"].to_list() == [2, 3, *range(5, 25)], r.rejects.head(5).to_dicts()
    first = r.rejects.row(0, named=True)
    assert first["field"] == "controls[0]" and "+299 more problem(s)" in first["reason"], first
    assert len(first["reason"]) < 2000
    assert "200000 elements; at most" in r.rejects.row(1, named=True)["reason"]


def test_exact_path_rows_are_bounded_by_a_budget(tmp_path, monkeypatch):
    """Many bad lines under the size cap are validated in groups (same rejects as one group)."""
    from radar_pipeline.sites.intake import exact

    lines = [_site(site_id=f"BAD-{i}", controls=[0] * 50) for i in range(40)] + [_site(site_id="OK-1")]
    path = tmp_path / "sites.jsonl"
    path.write_text("\n".join(lines) + "\n")
    whole = read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)
    monkeypatch.setattr(exact, "EXACT_ROWS_BUDGET", 200)  # read by the exact path at run time
    grouped = read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS)
    assert grouped.rejects.height == 40 and grouped.rejects.equals(whole.rejects)
    assert grouped.sites["site_id"].to_list() == ["OK-1"]


# --------------------------------------------------------------------------- buyer lists, ids

def test_one_id_rule_for_site_and_buyer_ids():
    from radar_pipeline.platform.identifiers import child_path, id_problem

    for bad in ("..", ".", "...", "a\n", "a b", "x" * 65, "../x", "", None, 7):
        assert id_problem("buyer_id", bad), bad
    for good in ("a", "A.b_c-1", ".a", "x" * 64):
        assert id_problem("buyer_id", good) is None, good
    with pytest.raises(ValueError):
        child_path("/tmp/out/buyers", "..", ".duckdb")
    assert child_path("/tmp/out/buyers", "acme", ".duckdb") == Path("/tmp/out/buyers/acme.duckdb")


def test_buyer_ids_that_could_leave_their_folder_are_rejected(tmp_path):
    from radar_pipeline.publish import buyers

    (tmp_path / "a.csv").write_text("buyer_id,site_id\n..,SITE-1\n.,SITE-1\nacme,..\nacme,SITE-1\n")
    (tmp_path / "b.jsonl").write_text('{"buyer_id": "zeta\\n", "site_id": "SITE-2"}\n'
                                      '{"buyer_id": "zeta", "site_id": "SITE-2\\n"}\n')
    load = buyers.read_folder(tmp_path)
    assert load.rows.select("buyer_id", "site_id").rows() == [("acme", "SITE-1")]
    assert [(r["file"], r["line"]) for r in load.rejects.iter_rows(named=True)] == [
        ("a.csv", 2), ("a.csv", 3), ("a.csv", 4), ("b.jsonl", 1), ("b.jsonl", 2)]
    assert all("does not match the id rule" in r for r in load.rejects["reason"])


def test_symlinks_in_the_buyers_inbox_are_not_followed(tmp_path):
    from radar_pipeline.publish import buyers

    secret = tmp_path / "secret.csv"
    secret.write_text("buyer_id,site_id\nroot:x:0:0 secret line,SITE-1\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "acme.csv").write_text("buyer_id,site_id\nacme,SITE-1\n")
    (inbox / "evil.csv").symlink_to(secret)
    (inbox / "loop.jsonl").symlink_to(inbox / "loop.jsonl")
    (inbox / "folder.csv").mkdir()
    load = buyers.read_folder(inbox)
    assert load.rows.select("buyer_id", "site_id").rows() == [("acme", "SITE-1")]
    rejects = {r["file"]: r["reason"] for r in load.rejects.iter_rows(named=True)}
    assert set(rejects) == {"evil.csv", "loop.jsonl", "folder.csv"}
    assert "symlink" in rejects["evil.csv"] and "symlink" in rejects["loop.jsonl"]
    assert not any("secret" in str(v) for row in load.rejects.iter_rows() for v in row)


def test_buyer_dotdot_cannot_repoint_or_delete_the_main_parquet_link(tmp_path):
    """Issue 11: a buyer line `..,SITE-1` repointed published/parquet to that buyer's subset,
    and removing the line then deleted the main link."""
    import os

    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.publish import build, buyers

    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    inbox = tmp_path / "buyers"
    inbox.mkdir()
    (inbox / "list.csv").write_text("buyer_id,site_id\n..,SITE-1\nacme,SITE-1\n")
    con = connect(wh)
    buyers.load(con, inbox)
    con.close()
    result = build.publish(wh, out / "radar.duckdb", log=lambda *_: None)
    link = out / "parquet"
    assert os.readlink(link).startswith(".snapshots/all/"), os.readlink(link)
    assert set(result.buyers) == {"acme"} and not (out / "buyers" / "...duckdb").exists()

    # a leftover `...duckdb` (stem `..`) is never turned into a path to delete
    (out / "buyers" / "...duckdb").write_bytes(b"")
    build.publish(wh, out / "radar.duckdb", log=lambda *_: None)
    assert link.is_symlink() and os.readlink(link).startswith(".snapshots/all/")

    # an id that reached the warehouse some other way is refused before any path is built
    con = connect(wh)
    con.execute("insert into buyer_sites values ('..', 'SITE-1', 'x.csv', 1)")
    con.close()
    before = os.readlink(link)
    with pytest.raises(ValueError, match="invalid id"):
        build.publish(wh, out / "radar.duckdb", log=lambda *_: None)
    assert os.readlink(link) == before


# --------------------------------------------------------------------------- user files (issue 11)

def _user_mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    shutil.copytree(SAMPLE / "user", mirror / "user")
    return mirror


def _load_user(mirror: Path, tmp_path: Path, universe, source: str = "user"):
    return registry.load_source(source, EDITION, universe, mirror=mirror, landing=tmp_path / "l",
                                user_dir=tmp_path / "nouser", log=lambda m: None)


def test_every_indicator_has_a_plausible_range():
    from radar_pipeline.sources.toolkit import load_indicator_specs

    for spec in load_indicator_specs():
        assert spec.valid_min and spec.valid_max, spec.indicator_id
        assert float(spec.valid_min) < float(spec.valid_max), spec.indicator_id


def test_same_user_row_in_two_files_names_both_files(tmp_path, universe):
    mirror = _user_mirror(tmp_path)
    first = next((mirror / "user").glob("*/*.csv"))
    before = _load_user(mirror, tmp_path, universe).observations
    (first.parent / "more_hours.csv").write_text("iso3,indicator_id,year,value\nDNK,ilo_weekly_hours,2019,40.0\n"
                                                 "DNK,ilo_weekly_hours,1999,40.0\n")
    load = _load_user(mirror, tmp_path, universe)
    note = load.notes.row(0, named=True)
    assert load.notes.height == 1 and (note["file"], note["row_ref"]) == ("more_hours.csv", "line 2")
    msg = note["reason"]
    assert first.name in msg and "more_hours.csv" in msg and "two files" in msg, msg
    assert load.observations.equals(before)  # the first file's value stays; 1999 is outside the window


def test_same_ituc_country_in_two_files_names_both_files(tmp_path, universe):
    mirror = tmp_path / "mirror"
    shutil.copytree(SAMPLE / "ituc", mirror / "ituc")
    first = _one_file("ituc")
    target = mirror / "ituc" / first.relative_to(SAMPLE / "ituc")
    country = target.read_text(encoding="utf-8").splitlines()[1].split(",")[0]
    (target.parent / "extra.csv").write_text(f"country,rating\n{country},3\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        _load_user(mirror, tmp_path, universe, source="ituc")
    msg = str(err.value)
    assert target.name in msg and "extra.csv" in msg and "two files" in msg, msg


def test_user_row_for_a_value_a_publisher_gives_is_a_clear_error(tmp_path):
    """Was a raw primary-key error from the warehouse."""
    import duckdb

    from radar_pipeline.platform.warehouse import ensure_schema
    from radar_pipeline.sources.adapters.user import clash_with_other_sources

    con = duckdb.connect()
    ensure_schema(con)
    con.execute("insert into indicator_observations values (2023, 'ti_cpi', 'ti_cpi_score', 'DNK', 2022, 90, "
                "'2023', 'CPI2023.xlsx', 'row 5')")
    obs = pl.DataFrame({"indicator_id": ["ti_cpi_score"], "iso3": ["DNK"], "data_year": [2022],
                        "file": ["mine.csv"], "row_ref": ["line 2"]})
    msg = clash_with_other_sources(con, 2023, "user", obs)
    assert msg and "mine.csv" in msg and "ti_cpi" in msg and "CPI2023.xlsx" in msg
    assert clash_with_other_sources(con, 2023, "ti_cpi", obs) is None


def test_temp_files_of_a_killed_publish_are_removed_by_the_next(tmp_path, dead_pid):
    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.publish import build

    out = tmp_path / "published"
    (out / "buyers").mkdir(parents=True)
    left = [out / f".radar.duckdb.20260101T000000Z-aaaaaa.{dead_pid}.tmp",
            out / f".radar.duckdb.20260101T000000Z-aaaaaa.{dead_pid}.tmp.wal",
            out / "buyers" / f".acme.duckdb.20260101T000000Z-aaaaaa.{dead_pid}.tmp"]
    for f in left:
        f.write_bytes(b"x")
    connect(tmp_path / "wh.duckdb").close()
    build.publish(tmp_path / "wh.duckdb", out / "radar.duckdb", log=lambda *_: None)
    assert not any(f.exists() for f in left)
    assert not list(out.glob(".*.tmp*")) and (out / "radar.duckdb").is_file()
