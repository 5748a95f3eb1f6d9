"""`radar sources check`: offline against a mirror (through the built-in local server), and the
live path against the local scripted test server (radar_pipeline_tests/http_fixture.py) standing in
for publishers that answer well, fail, serve error pages or changed layouts."""
from __future__ import annotations

import re

import pytest

from radar_pipeline.cli import main
from radar_pipeline.platform import settings
from radar_pipeline.sources.check import run_check
from radar_pipeline.sources.toolkit.fetch import CatalogueEntry, load_catalogue
from radar_pipeline_tests.http_fixture import ScriptedServer

SAMPLE = settings.SAMPLE_MIRROR_DIR


def by_key(results):
    return {(r.source, r.vintage, r.origin): r for r in results}


def test_offline_on_sample_mirror_says_live_urls_were_not_reached(tmp_path):
    lines: list[str] = []
    results = run_check(live=False, mirror=SAMPLE, user_dir=None, log=lines.append)
    assert "live publisher URLs were NOT reached" in lines[0]
    assert lines[-1].endswith("offline: no live publisher URL was reached")
    assert not [r.line() for r in results if r.status == "FAIL"]
    res = by_key(results)
    # every catalogue entry appears: OK when the mirror has its file (downloaded from the local
    # server with the real client), SKIP naming the live URL otherwise
    for e in load_catalogue():
        local = SAMPLE / e.source / e.vintage / e.file
        r = res[(e.source, e.vintage, "mirror via local server" if local.is_file() else "live URL not reached")]
        assert r.status == ("OK" if local.is_file() else "SKIP")
        if r.status == "SKIP":
            assert e.url in r.detail
    # the mirror's own folders that no catalogue entry names are parsed in place
    ilo = res[("ilostat", "2024", "mirror folder")]
    assert ilo.status == "OK" and re.search(r"\d+ rows, \d+ countries, years 2019-2023; ilo_weekly_hours", ilo.detail)
    assert res[("worldbank_wdi", "2024-07", "mirror folder")].status == "OK"
    assert res[("ituc", "2024", "mirror folder")].status == "OK"


@pytest.mark.slow
def test_offline_on_shared_mirror(shared_sources):
    results = run_check(live=False, mirror=shared_sources, user_dir=None, log=lambda m: None)
    assert not [r.line() for r in results if r.status == "FAIL"]
    res = by_key(results)
    wgi = res[("worldbank_wgi", "2024-09", "mirror via local server")]
    assert wgi.status == "OK" and "years 1996-2023" in wgi.detail
    assert int(re.search(r"(\d+) countries", wgi.detail).group(1)) >= 200
    ituc = res[("ituc", "2025", "mirror folder")]
    assert ituc.status == "OK" and re.search(r"^150 rows, 1(49|50) countries", ituc.detail)


def _entry(source, vintage, file, url, member=""):
    return CatalogueEntry(source, vintage, file, url, member, "", "test")


def test_live_path_against_local_test_server(tmp_path):
    m49 = (SAMPLE / "un_m49/2022/UNSD_Methodology.csv").read_bytes()
    epi = (SAMPLE / "yale_epi/2022/epi2022results05302022.csv").read_bytes()
    gii = (SAMPLE / "undp_gii/2020/Gender_Inequality_Index_GII_2019.csv").read_bytes()
    renamed = epi.replace(b"BDH.new", b"BDH.score", 1)
    html = b"<!DOCTYPE html><html><body>Service Unavailable</body></html>"
    with ScriptedServer() as srv:
        cat = [
            _entry("un_m49", "2022", "UNSD_Methodology.csv", srv.route("/m49.csv", (200, {}, m49))),
            _entry("yale_epi", "2022", "epi2022results05302022.csv",
                   srv.route("/epi.csv", (503, {}, b"busy"), (200, {}, epi))),            # retried, then OK
            _entry("yale_epi", "2024", "epi2024results06022024.csv", srv.route("/epi24.csv", (200, {}, renamed))),
            _entry("fund_for_peace_fsi", "2023", "FSI-2023-DOWNLOAD.xlsx", srv.route("/fsi.xlsx", (200, {}, html))),
            _entry("undp_gii", "2020", "Gender_Inequality_Index_GII_2019.csv",
                   srv.route("/gii.csv", (200, {}, gii.replace(b" Kenya", b" Republic of Atlantis", 1)))),
            _entry("ti_cpi", "2024", "CPI2024.xlsx", srv.route("/cpi.xlsx", (404, {}, b"not found"))),
        ]
        lines: list[str] = []
        results = run_check(live=True, mirror=None, catalogue=cat, sources=[e.source for e in cat],
                            timeout=5, retries=2, log=lines.append)
        epi_hits = len(srv.hits["/epi.csv"])
    assert lines[0].startswith("LIVE check")
    res = {(r.source, r.vintage): r for r in results if r.origin == "live"}
    assert res["un_m49", "2022"].status == "OK"
    assert res["yale_epi", "2022"].status == "OK" and epi_hits == 2
    assert "countries" in res["yale_epi", "2022"].detail
    assert res["yale_epi", "2024"].status == "FAIL" and "BDH.new" in res["yale_epi", "2024"].detail
    assert res["fund_for_peace_fsi", "2023"].status == "FAIL" and "HTML" in res["fund_for_peace_fsi", "2023"].detail
    assert res["undp_gii", "2020"].status == "FAIL" and "Republic of Atlantis" in res["undp_gii", "2020"].detail
    assert res["ti_cpi", "2024"].status == "FAIL" and "HTTP 404" in res["ti_cpi", "2024"].detail
    assert lines[-1].startswith("2 OK, 4 FAIL")


def test_unreachable_publisher_is_marked_not_reached():
    dead = "http://127.0.0.1:9/none.csv"   # discard port: connection refused
    results = run_check(live=True, mirror=None, catalogue=[_entry("nd_gain", "2021", "gain.csv", dead)],
                        sources=["nd_gain"], timeout=2, retries=0, log=lambda m: None)
    (r,) = results
    assert r.status == "FAIL" and "unreachable" in r.detail and r.detail.endswith("[live URL not reached]")


def test_cli_exit_code_and_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "nouser"))
    assert main(["sources", "check", "--mirror", str(SAMPLE), "--source", "ituc", "--source", "worldbank_wgi"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "NOT reached" in out[0]
    assert any(ln.startswith("OK") and "worldbank_wgi" in ln for ln in out)
    # a broken mirror file makes the command fail with the reason on its line
    bad = tmp_path / "mirror"
    (bad / "ituc/2024").mkdir(parents=True)
    (bad / "ituc/2024/ituc.csv").write_text("country,rating\nDenmark,7\n")
    assert main(["sources", "check", "--mirror", str(bad), "--source", "ituc"]) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("FAIL"))
    assert "ituc" in line and "line 2" in line and "'7'" in line


def test_live_mode_also_checks_user_files(tmp_path):
    user = tmp_path / "user"
    (user / "ituc/2025").mkdir(parents=True)
    (user / "ituc/2025/ratings.csv").write_text("country,rating\nDenmark,1\nTürkiye,5\nMyanmar,5+\n",
                                                  encoding="utf-8")
    results = run_check(live=True, mirror=None, user_dir=user, catalogue=[], sources=["ituc"],
                        log=lambda m: None)
    (r,) = results
    assert (r.status, r.source, r.vintage, r.origin) == ("OK", "ituc", "2025", "user files")
    assert r.detail.startswith("3 rows, 3 entities") or r.detail.startswith("3 rows, 3 countries")
