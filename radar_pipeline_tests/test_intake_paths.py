"""The intake's paths agree: a file holding every kind of bad line of the catalogue
(test_bad_inputs.SITE_CASES), odd but valid lines and repeated site ids, read by the exact path
alone, by the fast path (orjson) with the exact path behind it, and without the content hash
(`radar score`), gives the same sites, answers, controls, findings and rejects (file, line,
site id, field, reason) — whatever the chunk size. Rejects only ever come from the exact path,
so their wording cannot drift between paths."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from radar_pipeline.sites.intake import fast as fast_module
from radar_pipeline.sites.intake import iter_sites_jsonl, read_sites_jsonl
from radar_pipeline.sites.intake import reader as reader_module
from radar_pipeline_tests.test_bad_inputs import CONTROLS, COUNTRIES, GOOD, ISIC, SITE_CASES

TABLES = ("sites", "saq", "controls", "nonconformities", "rejects")
AUDIT = GOOD["audits"][0]

# valid but unusual lines, and bad ones the catalogue does not spell out
ODD = [
    json.dumps({**GOOD, "site_id": "ODD-1", "site_name": "Caf\u00e9 \u00fcber"}, ensure_ascii=True),  # escapes
    json.dumps({**GOOD, "site_id": "ODD-2", "site_name": "Café üß 漢字"}, ensure_ascii=False),
    json.dumps({"isic": "C1410", "country": "Bangladesh", "site_id": "ODD-3", "saq": {"migrant_pct": 12,
                                                                                      "workers_total": 5.0}}),
    json.dumps({"site_id": "ODD-4", "country": "bd", "isic": "14", "saq": None, "controls": None, "audits": None,
                "site_name": None}),
    json.dumps({"site_id": "ODD-5", "country": "BGD", "isic": "1410", "saq": {}, "controls": [], "audits": []}),
    json.dumps({"site_id": "ODD-6", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": 1e-7,
                                                                            "workers_total": 1e16}}),
    '{"site_id":"ODD-7","country":"BGD","isic":"1410","saq":{"migrant_pct":1.5E1,"workers_total":0}}',
    '  {"site_id": "ODD-8", "country": "BGD", "isic": "1410"}  \r',
    "", "   ", "null", '"str"', "42", "{}",
    '{"site_id": "ODD-9", "country": "BGD", "isic": "1410",}',                      # trailing comma
    '{"site_id": "ODD-10", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": NaN}}',
    '{"site_id": "ODD-11", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": 1, "migrant_pct": 2}}',
    '{"site_id": "ODD-12", "country": "BGD", "isic": "1410", "saq": {"migrant_pct": null, "favourite": null}}',
    '{"site_id": "ODD-13", "country": "BGD", "isic": "1410", "saq": {"site_name": null}}',
    '{"site_id": "ODD-14", "country": "BGD", "isic": "1410", "closed_on": null}',
    json.dumps({**GOOD, "site_id": "ODD-15", "audits": [{**AUDIT, "closed_on": "2020-01-01"}]}),
    json.dumps({**GOOD, "site_id": "ODD-16", "audits": [AUDIT, {**AUDIT, "status": "closed"}]}),
    json.dumps({**GOOD, "site_id": "ODD-17", "controls": ["ppe_enforced", "ppe_enforced"]}),
    json.dumps({**GOOD, "site_id": "ODD-18", "saq": {"workers_total": 1.5, "labour_intensive": 1}}),
    json.dumps({**GOOD, "site_id": "ODD-19", "audits": [{**AUDIT, "raised_on": "2024-02-30", "extra": 1}]}),
    json.dumps({**GOOD, "site_id": "ODD-20", "audits": ["x", None, {"nc_id": 1}]}),
    json.dumps({**GOOD, "site_id": "ODD-21", "country": "Congo", "isic": 1410, "site_name": 7}),
    json.dumps({**GOOD, "site_id": "ODD-22", "saq": {"workers_total": 12345678901234567890, "migrant_pct": -0.0}}),
    json.dumps({**GOOD, "site_id": "ODD-23"}) + " trailing",
    json.dumps({**GOOD, "site_id": "ODD-24", "controls": [None, 1]}),
    json.dumps({**GOOD, "site_id": "ODD-25", "site_name": "a:null, \"b\": [1,]"}),
    json.dumps({**GOOD, "site_id": "ODD-26", "audits": [{**AUDIT, "nc_id": f"NC-{i}", "closed_on": None}
                                                        for i in range(101)]}),  # 505 keys: over the cap
    json.dumps({**GOOD, "site_id": "ODD-27", "isic": " c1410 ", "saq": {"worker_representation": None}}),
    json.dumps({**GOOD, "site_id": "ODD-28", "saq": {"workers_total": True, "worker_representation": 3}}),
    json.dumps({**GOOD, "site_id": "ODD-29", "audits": {"nc_id": "x"}, "controls": "ppe_enforced"}),
]


def _file(tmp_path: Path) -> Path:
    good = [json.dumps({**GOOD, "site_id": f"OK-{i}", "controls": ["ppe_enforced", "written_policy"][: i % 3]})
            for i in range(40)]
    bad = [b if isinstance(b, bytes) else b.encode() for _, b, _, _ in SITE_CASES]
    bad = [b.replace(b"BAD-1", f"BAD-{i}".encode()) for i, b in enumerate(bad)]
    lines = [g.encode() for g in good[:20]] + bad + [o.encode() for o in ODD] + [g.encode() for g in good[20:]]
    lines += [good[3].encode(), ODD[5].encode(), bad[5]]  # repeated ids: valid first, odd first, bad first
    path = tmp_path / "sites.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines[:10]) + b"\r\n" + b"\n".join(lines[10:]) + b"\n")
    return path


def _exact_only(monkeypatch) -> None:
    """Every line to the exact path: the fast path proves nothing valid."""
    real = fast_module.fast_parse
    monkeypatch.setattr(reader_module, "fast_parse",
                        lambda reader, lines: (real(reader, [])[0], list(lines)))


def _read(path: Path, **kw):
    return read_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, **kw)


def _unhashed(path: Path, **kw):
    parts = list(iter_sites_jsonl(path, countries=COUNTRIES, isic=ISIC, controls=CONTROLS, content_hash=False, **kw))
    return {name: pl.concat([getattr(p, name) for p in parts]) for name in TABLES}


def _assert_same(left: dict, right, *, hashes: bool = True) -> None:
    for name in TABLES:
        a, b = left[name], getattr(right, name) if not isinstance(right, dict) else right[name]
        if name == "sites" and not hashes:
            a, b = a.drop("content_hash"), b.drop("content_hash")
        try:
            assert_frame_equal(a, b, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.parametrize("chunk", [None, 40])
def test_every_path_gives_the_exact_paths_result(tmp_path, monkeypatch, chunk):
    path = _file(tmp_path)
    kw = {"chunk_lines": chunk} if chunk else {}
    default = _read(path, **kw)
    unhashed = _unhashed(path, **kw)
    _exact_only(monkeypatch)
    exact = _read(path, **kw)
    exact = {name: getattr(exact, name) for name in TABLES}
    assert exact["rejects"].height >= len(SITE_CASES) + 20 and exact["sites"].height > 40
    _assert_same(exact, default)
    _assert_same(exact, unhashed, hashes=False)
    assert unhashed["sites"]["content_hash"].null_count() == unhashed["sites"].height


def test_country_table_read_without_pandas_equals_country_converters():
    """fields._converter_columns reads country_converter's packaged table with the csv module (no
    pandas at `radar score`'s start): the same rows, in the same order, as CountryConverter() holds."""
    from radar_pipeline.sites.intake import fields

    data = fields.converter().data
    assert fields._converter_columns() == {col: list(data[col]) for col in fields._CONVERTER_COLUMNS}
