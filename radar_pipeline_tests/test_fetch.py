"""Live-download behaviour against a local scripted server (no internet)."""
from __future__ import annotations

import json
import time

import pytest

from radar_pipeline.sources.adapters import ti_cpi
from radar_pipeline.sources.toolkit import LandedFile, SourceError, specs_for
from radar_pipeline.sources.toolkit.fetch import CatalogueEntry, HttpClient, fetch_entry, land_bytes

from .http_fixture import ScriptedServer


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


def fast_client(source="ti_cpi", **kw):
    return HttpClient(source, backoff=0.05, connect_timeout=2, read_timeout=kw.pop("read_timeout", 2), **kw)


def test_5xx_then_success_is_retried(server):
    url = server.route("/f.csv", (500, {}, b"oops"), (503, {}, b"busy"), (200, {}, b"a,b\n1,2\n"))
    assert fast_client().get(url) == b"a,b\n1,2\n"
    assert len(server.hits["/f.csv"]) == 3


def test_429_honours_retry_after(server):
    url = server.route("/f.csv", (429, {"Retry-After": "1"}, b"slow down"), (200, {}, b"ok"))
    started = time.monotonic()
    assert fast_client().get(url) == b"ok"
    gap = server.hits["/f.csv"][1] - server.hits["/f.csv"][0]
    assert gap >= 0.95, f"second request came {gap:.2f}s after the 429, Retry-After asked for 1s"
    assert time.monotonic() - started < 10


def test_persistent_5xx_names_source_and_status(server):
    url = server.route("/f.csv", (502, {}, b"bad gateway"))
    with pytest.raises(SourceError) as err:
        fast_client(retries=2).get(url)
    assert "[ti_cpi]" in str(err.value) and "HTTP 502" in str(err.value)
    assert len(server.hits["/f.csv"]) == 3  # first try + 2 retries


def test_read_timeout_is_reported(server):
    url = server.route("/slow.csv", "sleep:3")
    with pytest.raises(SourceError, match=r"\[ti_cpi\].*timed out"):
        fast_client(retries=0, read_timeout=0.5).get(url)


def test_unreachable_publisher_points_to_sample_and_mirror():
    with pytest.raises(SourceError) as err:
        fast_client(retries=0).get("http://127.0.0.1:9/none.csv")  # discard port: connection refused
    assert "unreachable" in str(err.value) and "--sample" in str(err.value)
    assert "RADAR_SOURCES_MIRROR" in str(err.value)


def test_truncated_body_is_retried_then_succeeds(server):
    url = server.route("/t.csv", ("truncate", b"a,b\n1,"), (200, {}, b"a,b\n1,2\n"))
    assert fast_client().get(url) == b"a,b\n1,2\n"


def test_landing_records_provenance_and_atomic_replace(tmp_path, server):
    url = server.route("/CPI.xlsx", (200, {}, b"first"), (500, {}, b"down"))
    entry = CatalogueEntry("ti_cpi", "2023", "CPI.xlsx", url)
    landed = fetch_entry(entry, tmp_path, fast_client(retries=0))
    meta = json.loads((tmp_path / "ti_cpi/2023/CPI.xlsx.meta.json").read_text())
    assert meta["url"] == url and meta["sha256"] == landed.sha256 and meta["bytes"] == 5
    with pytest.raises(SourceError):
        fetch_entry(entry, tmp_path, fast_client(retries=0))
    # the failed second download left the good first copy in place
    assert (tmp_path / "ti_cpi/2023/CPI.xlsx").read_bytes() == b"first"


def test_html_error_page_instead_of_workbook_is_refused_before_landing(tmp_path, server):
    url = server.route("/CPI.xlsx", (200, {"Content-Type": "text/html"},
                                     b"<!DOCTYPE html><html><body>Access denied</body></html>"))
    with pytest.raises(SourceError, match=r"\[ti_cpi\] file CPI.xlsx: .*HTML page"):
        fetch_entry(CatalogueEntry("ti_cpi", "2023", "CPI.xlsx", url), tmp_path, fast_client())
    assert not (tmp_path / "ti_cpi/2023/CPI.xlsx").exists()


def test_html_page_saved_as_workbook_fails_in_parser(tmp_path):
    # a mirror folder can still hold one (saved by hand from a browser)
    page = tmp_path / "CPI.xlsx"
    page.write_bytes(b"<!DOCTYPE html><html><body>Access denied</body></html>")
    with pytest.raises(SourceError, match=r"\[ti_cpi\] file CPI.xlsx: expected xlsx but got an HTML"):
        ti_cpi.parse([LandedFile("ti_cpi", "2023", page)], specs_for("ti_cpi", "2023"))


def test_zip_member_extracted(tmp_path, server):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("resources/gain/gain.csv", "ISO3,Name,2019\nDNK,Denmark,70.1\n")
    url = server.route("/nd.zip", (200, {}, buf.getvalue()))
    landed = fetch_entry(CatalogueEntry("nd_gain", "2021", "gain.csv", url, member="resources/gain/gain.csv"),
                         tmp_path, fast_client("nd_gain"))
    assert landed.path.read_text().startswith("ISO3,Name")


def test_land_bytes_sha256(tmp_path):
    lf = land_bytes(tmp_path, "x", "v1", "f.csv", b"abc", "http://example.invalid/f.csv")
    assert lf.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert isinstance(lf, LandedFile)
