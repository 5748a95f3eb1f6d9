"""The scoring engine (sql/sites/*.sql) and its hand-written polars peer (bench/peer_polars.py, the
reference implementation bench/bench_site_scoring.py measures it against) give identical site
scores, every column to the last bit, on 10 000 generated sites of the sample edition — some of
them given at section, division or group level (the mean over several classes), some with an
analyst's override."""
from __future__ import annotations

import sys

import orjson
import polars as pl
from polars.testing import assert_frame_equal

from radar_pipeline.platform.settings import REPO_DIR
from radar_pipeline.sites import scoring, store
from radar_pipeline.sites.generate import generate_sites, write_sites
from radar_pipeline.sites.intake import iter_sites_jsonl
from radar_pipeline.sites.score_file import _load_chunk, _scoring_connection

sys.path.insert(0, str(REPO_DIR / "bench"))
import peer_polars

N_SITES = 10_000


def test_engine_equals_polars_peer(sample_edition_2024, tmp_path, monkeypatch):
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    monkeypatch.setenv("RADAR_OVERRIDES", str(overrides))
    con = _scoring_connection(2024, sample_edition_2024)
    countries = [r[0] for r in con.sql("select iso3 from countries").fetchall()]
    isic = con.sql("select code, section, division, grp from isic where level = 'class'").pl()
    parents = {r["code"]: r for r in isic.iter_rows(named=True)}
    path = tmp_path / "sites.jsonl"
    write_sites(generate_sites(N_SITES, 11, countries, isic["code"].to_list()), path)
    # every 7th site at division, 11th at group, 13th at section level
    lines = []
    for i, line in enumerate(path.read_bytes().splitlines()):
        site = orjson.loads(line)
        for every, level in ((13, "section"), (11, "grp"), (7, "division")):
            if i % every == 0 and parents[site["isic"]][level]:
                site["isic"] = parents[site["isic"]][level]
                break
        lines.append(orjson.dumps(site))
    path.write_bytes(b"\n".join(lines) + b"\n")
    (overrides / "overrides.csv").write_text(
        "site_id,category,reason,author,created_on,expires_on\n"
        "SYN-11-0000003,High,site visit,analyst,2024-01-01,\n"
        "SYN-11-0000004,Low,remediated,analyst,2024-01-01,\n", encoding="utf-8")
    countries_set, isic_ref, controls = store.reference(con)
    for part in iter_sites_jsonl(path, countries=countries_set, isic=isic_ref, controls=controls):
        assert part.rejects.is_empty()
        _load_chunk(con, part, append=True)
    levels = dict(con.sql("select isic_level, count(*) from sites group by all").fetchall())
    assert set(levels) == {"class", "group", "division", "section"}, levels

    engine = scoring.score_sites(con, 2024, None, "t")
    peer = peer_polars.score(con, 2024, "t")
    assert engine.height == N_SITES
    assert engine.filter(pl.col("override_reason").is_not_null()).height == 2
    assert_frame_equal(engine, peer, check_exact=True)
    # the engine's streamed form (what `radar score` and the 3M bench use): the same rows, in the same order
    scoring.score_sites_to(con, 2024, tmp_path / "scores.parquet", None, "t")
    assert_frame_equal(pl.read_parquet(tmp_path / "scores.parquet"), engine, check_exact=True)
    con.close()
