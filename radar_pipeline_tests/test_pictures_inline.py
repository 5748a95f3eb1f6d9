"""Pictures readable in the Dagster UI without a dialog (issue 12 item 7): the pictures assets put
a SHORT markdown image (under the UI's 1,000-character inline limit) linking to the PNG served
from the pictures folder; the embedded copy stays for the dialog."""
from __future__ import annotations

import shutil
import urllib.error
import urllib.request

import dagster as dg
import pytest
from screenshots import free_port  # scripts/ (pytest pythonpath)

from radar_pipeline.pictures import assets as pictures
from radar_pipeline.pictures import serve
from radar_pipeline.platform.warehouse import DuckDBWarehouse, connect
from radar_pipeline.sites import generate, store
from radar_pipeline_tests.http_fixture import get_when_served

pytestmark = pytest.mark.slow  # scoring and picture runs, a served pictures folder: `python -m pytest -m slow`


@pytest.fixture
def scored(sample_edition_2024, tmp_path, monkeypatch):
    wh = tmp_path / "radar.duckdb"
    shutil.copyfile(sample_edition_2024, wh)
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    monkeypatch.setenv("RADAR_OVERRIDES", str(tmp_path / "no-overrides"))
    monkeypatch.delenv("RADAR_PICTURES_URL", raising=False)
    with connect(wh) as con:
        countries = [r[0] for r in con.sql("select distinct iso3 from inherent_risk_overall").fetchall()]
        classes = [r[0] for r in con.sql("select code from isic where level = 'class'").fetchall()]
        generate.write_sites(generate.generate_sites(40, 9, sorted(countries), classes), tmp_path / "s.jsonl")
        keys = store.ingest(con, tmp_path / "s.jsonl").to_score
        store.score_and_store(con, 2024, keys)
    return wh, tmp_path / "pictures"


def _png_width(path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")  # IHDR width


def materialize(wh) -> dict:
    result = dg.materialize([pictures.site_category_distribution],
                            resources={"warehouse": DuckDBWarehouse(database=str(wh))})
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata


def test_the_picture_shows_inline_from_the_served_pictures_folder(scored, monkeypatch):
    wh, folder = scored
    # served as the code-location server serves it (pictures/serve.py), at a free port
    base = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RADAR_PICTURES_URL", base)
    assert serve.serve_from_code_server(folder, argv=["dagster", "api", "grpc"]) is not None
    metadata = materialize(wh)
    markdown = metadata["picture"].value
    assert len(markdown) < pictures.INLINE_MARKDOWN_LIMIT  # what the UI renders without a dialog
    assert markdown.startswith("![site categories 2024](" + base)
    url = markdown[markdown.index("(") + 1:-1]
    png = folder / "sites" / "site_categories_2024_inline.png"
    assert get_when_served(url) == png.read_bytes()  # the link the browser follows is the drawn picture
    assert png.stat().st_size > 0 and _png_width(png) <= pictures.INLINE_WIDTH_PX
    with pytest.raises(urllib.error.HTTPError) as listing:
        get_when_served(base + "/sites/")
    assert listing.value.code == 404  # files only, no folder listings
    with pytest.raises(urllib.error.HTTPError):
        get_when_served(base + "/../radar.duckdb")  # nothing outside the pictures folder
    # the embedded copy for the dialog is still there (no server needed)
    assert metadata["preview"].value.startswith("![site categories](data:image/png;base64,")

    # inputs change -> picture redrawn -> a new URL, so the browser does not show the cached one
    with connect(wh) as con:
        con.execute("delete from site_scores where category = 'High'")
    again = materialize(wh)["picture"].value
    assert again != markdown and get_when_served(again[again.index("(") + 1:-1]) == png.read_bytes()


def test_without_a_pictures_url_only_the_embedded_preview(scored, monkeypatch):
    wh, _ = scored
    monkeypatch.setenv("RADAR_PICTURES_URL", "")  # switched off (the default is a fixed local address)
    metadata = materialize(wh)
    assert "picture" not in metadata and "preview" in metadata
