"""What the Dagster UI shows for every asset: description, group (= pipeline stage), kinds, owners;
and the pictures render offline to PNG/HTML with the image embedded in the metadata."""
from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from radar_pipeline.definitions import defs

STAGES = {"reference", "sources", "country_risk", "sectors", "sites", "pictures", "publish"}


def test_every_asset_is_described_grouped_kinded_and_owned():
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    assert len(keys) >= 20
    problems = []
    for key in keys:
        node = graph.get(key)
        name = key.to_user_string()
        if not (node.description or "").strip():
            problems.append(f"{name}: no description")
        if node.group_name not in STAGES:
            problems.append(f"{name}: group {node.group_name!r} is not a stage {sorted(STAGES)}")
        if not node.kinds:
            problems.append(f"{name}: no kinds")
        if not node.owners:
            problems.append(f"{name}: no owners")
    assert not problems, "\n".join(problems)


def test_table_assets_name_their_table():
    """Assets that write a warehouse table say which (dagster/table_name), so the UI links them."""
    graph = defs.resolve_asset_graph()
    for group in ("reference", "sources", "country_risk", "sectors"):
        for key in graph.get_all_asset_keys():
            node = graph.get(key)
            if node.group_name == group:
                assert "dagster/table_name" in node.metadata, key.to_user_string()


def test_world_shapes_ship_offline():
    from radar_pipeline.pictures.render import world_shapes

    shapes = world_shapes()
    assert len(shapes) > 200
    for iso2 in ("FR", "US", "CN", "BR", "IN", "NG", "AU"):
        assert max(len(p.vertices) for p in shapes[iso2]) > 10, iso2


def test_pictures_render_png_and_html(tmp_path: Path):
    from radar_pipeline.pictures import render

    values = pl.DataFrame({"iso2": ["FR", "NG", "BR"], "value": [2.5, 8.0, 5.0]})
    table = pl.DataFrame({"iso3": ["NGA", "BRA", "FRA"], "inherent_mean": [8.0, 5.0, 2.5]})
    png, page, fig = render.write_risk_map(values, table, tmp_path, 2024, "test map")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "risk_map_2024.png" in page.read_text()
    assert render.png_data_uri(fig).startswith("data:image/png;base64,iVBOR")

    scores = pl.DataFrame({"country": ["A", "A", "B"], "section": ["C x", "C x", "A y"],
                           "category": ["High", "Low", None]})
    wide = render.category_wide(scores, "country")
    assert wide.row(0, named=True) == {"country": "A", "Low": 1, "Medium": 0, "High": 1, "unscored": 0, "total": 2}
    png2, _, _ = render.write_category_distribution(wide, render.category_wide(scores, "section"), tmp_path, 2024)
    assert png2.stat().st_size > 10_000

    site = {"site_id": "S/1", "iso3": "NGA", "isic_code": "0111", "edition": 2024, "inherent": 7.0,
            "site_characteristics": 5.0, "raw_points": 20.0, "total_available": 90.0, "management_controls": 1.2,
            "mc_rounded": 1.0, "final_score": 7.5, "category": "High", "base": 7.5, "adjustment": "none",
            "open_critical": 0, "open_major": 1, "inherent_only": False}
    topics = pl.DataFrame({"topic": ["wages", "children"], "country_score": [5.0, 4.0],
                           "sector_weight": [2.0, 3.0], "hrg_uplift": [0.0, 2.0], "score": [7.0, 9.0]})
    factors = pl.DataFrame({"kind": ["saq_factor", "control", "control"],
                            "item": ["piece_rate", "age_verification", "x"],
                            "detail": ["true -> moderate (max 2.0)", "achieved, 1.0 available", "not applicable"],
                            "points": [2.0, 1.0, 0.0]})
    pngs, index, first = render.write_site_explanations([(site, topics, factors)], tmp_path / "ex", 2024)
    assert [p.name for p in pngs] == ["site_01_S_1.png"] and first is not None
    assert "S/1" in index.read_text()


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    """Edition 2024 from the sample mirror with 30 synthetic sites scored (no Dagster instance needed)."""
    from screenshots import prepare_demo  # scripts/screenshots.py (pytest pythonpath)

    from radar_pipeline.platform.warehouse import connect
    from radar_pipeline.sites import store

    demo = prepare_demo(tmp_path_factory.mktemp("pictures"), n_sites=30)
    con = connect(demo.warehouse)
    try:
        store.score_and_store(con, 2024, None)
    finally:
        con.close()
    return demo


@pytest.mark.slow
def test_picture_assets_materialize_with_embedded_images(demo_warehouse, monkeypatch):
    from radar_pipeline.pictures import assets as pictures
    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    out = demo_warehouse.root / "pictures"
    monkeypatch.setenv("RADAR_PICTURES", str(out))
    resources = {"warehouse": DuckDBWarehouse(database=str(demo_warehouse.warehouse))}
    r1 = dg.materialize([pictures.risk_map], partition_key="2024", resources=resources)
    r2 = dg.materialize([pictures.site_category_distribution, pictures.site_explanations], resources=resources,
                        run_config={"ops": {"site_explanations": {"config": {"top_n": 3}}}})
    assert r1.success and r2.success
    events = {e.asset_key.to_user_string(): e.materialization.metadata
              for r in (r1, r2) for e in r.get_asset_materialization_events()}
    assert set(events) == {"risk_map", "site_category_distribution", "site_explanations"}
    for name, md in events.items():
        assert md["preview"].value.startswith("![") and "data:image/png;base64," in md["preview"].value, name
        assert Path(md["html"].value).is_file(), name
    assert Path(events["risk_map"]["png"].value) == (out / "risk_map" / "risk_map_2024.png").resolve()
    assert events["site_category_distribution"]["dagster/row_count"].value == 30
    drawn = sorted(p.name for p in (out / "sites" / "explain").glob("site_0*.png"))
    # one chart per site, and the compact copy of the first that the metadata links to inline
    assert len([n for n in drawn if not n.endswith("_inline.png")]) == 3
    assert [n for n in drawn if n.endswith("_inline.png")] == [drawn[0].removesuffix(".png") + "_inline.png"]
