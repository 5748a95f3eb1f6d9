"""US TIP report tiers: curated CSV adapter (METHODOLOGY §2 forced-labour proxy), synthetic files only."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import tip
from radar_pipeline.sources.toolkit import LandedFile, SourceError, load_indicator_specs, specs_for


def write(tmp_path: Path, text: str, vintage: str = "2024") -> list[LandedFile]:
    path = tmp_path / "tip" / vintage / "tip_tiers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return [LandedFile("tip", vintage, path)]


def parse(files):
    return tip.parse(files, specs_for("tip"))


def test_tiers_score_1_to_4_higher_riskier(tmp_path):
    df = parse(write(tmp_path, "Country,Tier\nDenmark,1\nBrazil,Tier 2\nThailand,2WL\nNGA,2 WL\n"
                               "Malaysia,Tier 2 Watch List\nEritrea,3\n"))
    values = dict(zip(df["country"], df["value"]))
    assert values == {"Denmark": 1.0, "Brazil": 2.0, "Thailand": 3.0, "NGA": 3.0, "Malaysia": 3.0,
                      "Eritrea": 4.0}
    assert set(df["data_year"]) == {2024} and set(df["indicator_id"]) == {"tip_tier"}
    assert df.filter(pl.col("country") == "NGA")["code"].item() == "NGA"


def test_year_column_overrides_the_folder(tmp_path):
    df = parse(write(tmp_path, "country,tier,year\nDenmark,1,2023\nChad,2,\n"))
    assert dict(zip(df["country"], df["data_year"])) == {"Denmark": 2023, "Chad": 2024}


@pytest.mark.parametrize("text, message", [
    ("country,tier\nDenmark,4\n", "tier must be one of 1, 2, 2WL, 3"),
    ("country,tier\nDenmark,Special Case\n", "tier must be one of 1, 2, 2WL, 3"),
    ("country,tier\n,1\n", "country is empty"),
    ("country,rating\nDenmark,1\n", "missing column(s) ['tier']"),
    ("country,tier\nDenmark,1\nDenmark,2\n", "placed twice"),
    ("country,tier,year\nDenmark,1,20x4\n", "year is not an integer"),
])
def test_bad_files_name_file_line_and_reason(tmp_path, text, message):
    with pytest.raises(SourceError) as exc:
        parse(write(tmp_path, text))
    assert message in str(exc.value) and "tip_tiers.csv" in str(exc.value)


def test_forced_labour_inputs_exclude_poverty():
    fl = {s.series for s in load_indicator_specs() if s.topic == "forced_labour"}
    assert "SI.POV.UMIC" not in fl
    assert {"RL.EST", "SL.ISV.IFRM.ZS", "tier"} <= fl


def test_read_from_user_files_and_the_sample_mirror(tmp_path):
    write(tmp_path, "country,tier\nTaiwan,1\nKosovo,2\n", vintage="2024")
    universe = {"TWN", "XKX", "DNK"}
    load = registry.load_source("tip", 2024, universe, mirror=None, landing=tmp_path / "landing",
                                user_dir=tmp_path)
    assert dict(zip(load.observations["iso3"], load.observations["value"])) == {"TWN": 1.0, "XKX": 2.0}
    sample = registry.load_source("tip", 2024, {"DNK", "SOM", "BGD"}, mirror=settings.SAMPLE_MIRROR_DIR,
                                  landing=tmp_path / "landing", user_dir=tmp_path / "none")
    assert set(sample.observations["iso3"]) == {"DNK", "BGD"}     # SOM is a Special Case: no tier
