"""ITUC Global Rights Index from the mirror: the curated 2025 file on the shared mirror
(names as ITUC writes them) parses, and every name maps to ISO3 through the country
converter — no override rows needed for ITUC."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import polars as pl

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import ituc
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.reference.countries import resolve
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, LandedFile, specs_for

FILE = Path("ituc/2025/ituc_global_rights_index_2025.csv")


def test_real_2025_ratings(shared_sources):
    path = shared_sources / FILE
    df = ituc.parse([LandedFile("ituc", "2025", path)], specs_for("ituc", "2025"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 150 and set(df["data_year"]) == {2025}
    # distribution recorded in PROVENANCE.md: 1:7, 2:23, 3:28, 4:41, 5:39, 5+:12 (5+ counts as 6)
    assert Counter(df["value"].to_list()) == {1.0: 7, 2.0: 23, 3.0: 28, 4.0: 41, 5.0: 39, 6.0: 12}
    with open(path, newline="", encoding="utf-8") as fh:
        by_name = {r["country"]: r["rating"] for r in csv.DictReader(fh)}
    got = dict(df.select("country", "value").iter_rows())
    assert got["Denmark"] == float(by_name["Denmark"])
    assert {n for n, r in by_name.items() if r == "5+"} == {n for n, v in got.items() if v == 6.0}


def test_real_2025_names_map_without_overrides(shared_sources):
    with open(settings.RULES_DIR / "country_overrides.csv", newline="", encoding="utf-8") as fh:
        assert not [r for r in csv.DictReader(fh) if r["source"] == "ituc"]
    df = ituc.parse([LandedFile("ituc", "2025", shared_sources / FILE)], specs_for("ituc", "2025"))
    universe = set(un_m49.parse_countries(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])
    kept, notes = resolve(df, universe | {"TWN"}, "ituc")
    assert notes.height == 0 and kept["iso3"].n_unique() == 150
    iso = dict(kept.select("country", "iso3").iter_rows())
    assert (iso["Türkiye"], iso["Palestine"], iso["Côte d'Ivoire"], iso["Taiwan"], iso["Hong Kong"],
            iso["South Korea"], iso["Eswatini"]) == ("TUR", "PSE", "CIV", "TWN", "HKG", "KOR", "SWZ")


def test_edition_2025_reads_the_mirror_file(shared_sources, tmp_path):
    universe = set(un_m49.parse_countries(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])
    load = registry.load_source("ituc", 2025, universe, mirror=shared_sources, user_dir=tmp_path,
                                landing=tmp_path, log=lambda m: None)
    assert load.vintages == ["2025"]
    obs = load.observations
    # every rated country in the M49 universe (Taiwan is outside it until the universe adds TWN)
    assert obs["iso3"].n_unique() == 150 - load.notes.height
    assert set(load.notes["country"]) <= {"Taiwan"}
    assert set(obs["data_year"]) == {2025} and set(obs["vintage"]) == {"2025"}
