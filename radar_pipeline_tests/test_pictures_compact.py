"""Pictures a user can read in the Dagster UI (issue 23 item 4): the inline copy of each picture is
a layout of its own for the asset page's metadata column (at most INLINE_WIDTH_PX wide, which fits
the column at the UI's default 1600-px window) with text no smaller than 6.5 pt at 100 dpi; and its
link points at a fixed address that the code-location server serves, so it survives restarts."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from matplotlib.text import Text

from radar_pipeline.pictures import assets, render, serve
from radar_pipeline.pictures.benchmarks import rank_scatter_figure
from radar_pipeline_tests.http_fixture import get_when_served

MIN_PT = 6.5  # 9 px at 100 dpi


def _site_inputs(n_controls: int = 40):
    site = {"site_id": "SYN-LONG-SITE-IDENTIFIER-0001", "iso3": "NGA", "isic_code": "0111", "edition": 2024,
            "inherent": 7.0, "site_characteristics": 5.0, "raw_points": 20.0, "total_available": 90.0,
            "management_controls": 1.2, "mc_rounded": 1.0, "final_score": 7.5, "category": "High",
            "category_calculated": "Medium", "base": 7.5, "adjustment": "none", "open_critical": 0,
            "open_major": 1, "inherent_only": False, "confidence": 0.62, "confidence_label": "medium",
            "inherent_confidence": 0.74, "saq_completeness": 0.5, "override_author": "analyst@example.org",
            "override_reason": "critical finding at the 2026 audit, confirmed by the buyer's own visit"}
    topics = pl.DataFrame({"topic": ["freedom_of_association", "children", "wages"],
                           "country_score": [5.0, 4.0, 3.0], "sector_weight": [2.0, 3.0, 1.0],
                           "hrg_uplift": [0.0, 2.0, 0.0], "score": [7.0, 9.0, 4.0],
                           "fill": ["direct,peer_region_mean", "region_mean", "direct"]})
    factors = pl.DataFrame({
        "kind": ["saq_factor"] * 3 + ["control"] * n_controls,
        "item": ["temp_seasonal_guest_programmes", "piece_rate", "migrant_workers_pct"]
                + [f"control_with_a_long_identifier_{i:02d}" for i in range(n_controls)],
        "detail": ["true -> high (max 4.0)"] * 3 + ["achieved, 2.0 available"] * n_controls,
        "points": [4.0, 2.0, 2.0] + [1.0] * n_controls})
    return site, topics, factors


def _country_inputs(n: int = 40):
    topics = ["wages", "children", "forced_labour", "freedom_of_association", "working_hours"]
    wide = pl.DataFrame({"iso3": [f"C{i:02d}" for i in range(n)],
                         "name": [f"Democratic Republic of a Long Country Name {i}" for i in range(n)],
                         **{t: [1.0 + (i % 5) for i in range(n)] for t in topics}})
    marks = pl.DataFrame({"iso3": ["C00", "C01"], "topic": ["wages", "children"], "mark": ["p", "w"]})
    return wide, marks, topics


def compact_figures():
    values = pl.DataFrame({"iso2": ["FR", "NG", "BR"], "value": [2.5, 8.0, 5.0]})
    scores = pl.DataFrame({"country": [f"Country with a rather long name {i} (C{i:02d})" for i in range(40)],
                           "section": [f"{chr(65 + i % 21)} A long ISIC section title, and more" for i in range(40)],
                           "category": ["High", "Low", "Medium", None] * 10})
    wide, marks, topics = _country_inputs()
    ranked = pl.DataFrame({"iso3": ["AAA", "BBB", "CCC"], "score_rank": [1, 2, 3], "benchmark_rank": [3, 1, 2],
                           "rank_gap": [-2, 1, 1]})
    return {
        "risk_map": render.risk_map_figure(values, "Inherent risk per country, edition 2024 (mean over "
                                                   "ISIC classes)", compact=True),
        "site_categories": render.category_distribution_figure(
            render.category_wide(scores, "country"), render.category_wide(scores, "section"), 2024, compact=True),
        "site_explanation": render.site_explanation_figure(*_site_inputs(), compact=True),
        "country_picture": render.country_picture_figure(wide, marks, topics,
                                                         render.country_picture_title(wide, 2024, 40), compact=True),
        "benchmarks": rank_scatter_figure([("wgi_va", "freedom_of_association", "higher_is_safer", 0.61, ranked),
                                           ("hdr_le", "health_safety", "higher_is_safer", None, ranked)],
                                          2024, compact=True),
    }


def _png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")


@pytest.mark.parametrize("name", list(compact_figures()))
def test_inline_picture_fits_the_metadata_column_with_readable_text(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path))
    monkeypatch.setenv("RADAR_PICTURES_URL", "http://127.0.0.1:3001")
    fig = compact_figures()[name]
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert sizes and min(sizes) >= MIN_PT, (name, sorted(sizes)[:5])
    meta = assets.inline_picture(fig, tmp_path / f"{name}.png", name)
    inline = tmp_path / f"{name}_inline.png"
    width = _png_width(inline)
    assert width <= assets.INLINE_WIDTH_PX, (name, width)
    # drawn for the column, not shrunk into it: (nearly) the full 100 dpi, so text keeps its size
    assert width >= 0.85 * assets.INLINE_WIDTH_PX, (name, width)
    assert meta["picture"].value.startswith(f"![{name}](http://127.0.0.1:3001/{name}_inline.png?v=")


def test_the_full_pictures_keep_their_wide_layout(tmp_path):
    fig = render.site_explanation_figure(*_site_inputs())
    assert fig.get_size_inches()[0] > 3 * render.COMPACT_WIDTH_IN


def test_pictures_url_has_a_fixed_default_and_can_be_switched_off(monkeypatch, tmp_path):
    monkeypatch.delenv("RADAR_PICTURES_URL", raising=False)
    assert serve.pictures_url() == serve.DEFAULT_PICTURES_URL == "http://127.0.0.1:3001"
    monkeypatch.setenv("RADAR_PICTURES_URL", "")
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path))
    assert assets.inline_picture(compact_figures()["risk_map"], tmp_path / "m.png", "m") == {}


def test_env_file_gives_dagster_dev_the_same_default():
    from radar_pipeline.platform import settings

    lines = (settings.REPO_DIR / ".env").read_text().splitlines()
    assert f"RADAR_PICTURES_URL={serve.DEFAULT_PICTURES_URL}" in lines


@pytest.mark.parametrize("argv, expected", [
    (["/x/dagster/__main__.py", "api", "grpc", "--lazy-load-user-code", "-m", "radar_pipeline.definitions"], True),
    (["/x/bin/dagster", "code-server", "start", "-m", "radar_pipeline.definitions"], True),
    (["/x/dagster/__main__.py", "api", "execute_run", "{}"], False),  # a run worker
    (["/x/bin/dagster-daemon", "run"], False),
    (["/x/bin/radar", "refresh", "--edition", "2024"], False),
    (["/x/pytest", "-q"], False),
])
def test_only_the_code_server_serves(argv, expected):
    assert serve.is_code_server(argv) is expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_code_server_serves_the_folder_once_the_port_is_free(monkeypatch, tmp_path):
    """A reloaded code location starts while its predecessor still holds the port: the new one
    keeps trying and takes over as soon as it is free."""
    port = _free_port()
    monkeypatch.setenv("RADAR_PICTURES_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(serve, "RETRY_SECONDS", 0.1)
    (tmp_path / "risk_map").mkdir()
    (tmp_path / "risk_map" / "m_inline.png").write_bytes(b"png bytes")
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        thread = serve.serve_from_code_server(tmp_path, argv=["dagster", "api", "grpc"])
        assert thread is not None and thread.is_alive()
        time.sleep(0.3)  # still busy: the thread waits, it does not die
        assert thread.is_alive()
    finally:
        holder.close()
    assert get_when_served(f"http://127.0.0.1:{port}/risk_map/m_inline.png") == b"png bytes"
    with pytest.raises(urllib.error.HTTPError):
        get_when_served(f"http://127.0.0.1:{port}/risk_map/")  # files only, no listings
    # a second call in the same process does not start a second server
    assert serve.serve_from_code_server(tmp_path, argv=["dagster", "api", "grpc"]) is thread


def test_no_server_for_a_remote_address_or_other_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("RADAR_PICTURES_URL", "https://pictures.example.org/radar")
    assert serve.serve_from_code_server(tmp_path, argv=["dagster", "api", "grpc"]) is None
    monkeypatch.setenv("RADAR_PICTURES_URL", f"http://127.0.0.1:{_free_port()}")
    assert serve.serve_from_code_server(tmp_path, argv=["radar", "refresh"]) is None
    monkeypatch.setenv("RADAR_PICTURES_SERVE", "0")
    assert serve.serve_from_code_server(tmp_path, argv=["dagster", "api", "grpc"]) is None
