"""UNDP HDR composite-indices complete time series (iso3, gii_<year>) read in the undp_gii
vintage folders beside the older GII-only export. SYNTHETIC files (made-up values) in the
publisher's layout: Windows-1252, empty = missing, ZZ aggregate rows at the end."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import undp_gii, undp_hdr
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, LandedFile, SourceError, specs_for

HEADER = ("iso3,country,hdicode,region,hdi_rank_2022,hdi_2020,hdi_2021,hdi_2022,"
          "gii_rank_2022,gii_2020,gii_2021,gii_2022,mmr_2021")
ROWS = [
    "AAA,Côte d'Ivoire,Low,SSA,166,0.52,0.53,0.534,155,0.61,,0.612,480",
    'BBB,"Bravo, Rep. of",High,LAC,80,0.75,0.76,0.761,,,,,20',   # no GII at all
    "CCC,Charlie,Very High,,5,0.94,0.945,0.95,3,0.02,0.019,0.018,2",
    "ZZA.VHHD,Very high human development,,,,0.89,0.895,0.9,,0.15,0.15,0.149,",
    "ZZK.WORLD,World,,,,0.73,0.732,0.739,,0.47,0.46,0.462,",
]
EXPECTED = {("AAA", 2020, 0.61), ("AAA", 2022, 0.612), ("CCC", 2020, 0.02), ("CCC", 2021, 0.019),
            ("CCC", 2022, 0.018)}


def write(tmp_path: Path, text: str, encoding: str = "cp1252",
          name: str = "HDR23-24_Composite_indices_complete_time_series.csv") -> list[LandedFile]:
    (tmp_path / name).write_bytes(text.encode(encoding))
    return [LandedFile("undp_gii", "2024-03", tmp_path / name)]


def table(rows=ROWS) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def triples(df: pl.DataFrame) -> set:
    return set(df.select("code", "data_year", "value").iter_rows())


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8"])
def test_composite_time_series_gii_columns(tmp_path, encoding):
    df = undp_gii.parse(write(tmp_path, table(), encoding), specs_for("undp_gii", "2024-03"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert triples(df) == EXPECTED                      # ranks, other indices and ZZ aggregates ignored
    assert set(df["indicator_id"]) == {"undp_gii"} and set(df["source"]) == {"undp_gii"}
    row = df.filter((pl.col("code") == "AAA") & (pl.col("data_year") == 2022)).row(0, named=True)
    assert row["country"] == "Côte d'Ivoire"             # Windows-1252 decoded
    assert row["row_ref"] == "line 2, column 'gii_2022'"


def test_old_export_and_composite_in_one_folder(tmp_path):
    old = (Path(settings.SAMPLE_MIRROR_DIR) / "undp_gii/2020/Gender_Inequality_Index_GII_2019.csv").read_bytes()
    (tmp_path / "Gender_Inequality_Index_GII_2019.csv").write_bytes(old)
    write(tmp_path, table())
    files = [LandedFile("undp_gii", "2024-03", p) for p in sorted(tmp_path.glob("*.csv"))]
    df = undp_gii.parse(files, specs_for("undp_gii", "2024-03"))
    assert set(df["file"]) == {"Gender_Inequality_Index_GII_2019.csv",
                               "HDR23-24_Composite_indices_complete_time_series.csv"}
    assert EXPECTED <= triples(df.filter(pl.col("code").is_not_null()))


def test_missing_series_columns_name_the_indices_found(tmp_path):
    text = "iso3,country,hdi_2021,hdi_2022\nAAA,A,0.5,0.6\n"
    with pytest.raises(SourceError, match=r"no 'gii_<year>' columns.*\['hdi'\]") as exc:
        undp_gii.parse(write(tmp_path, text), specs_for("undp_gii", "2024-03"))
    assert exc.value.file == "HDR23-24_Composite_indices_complete_time_series.csv"


def test_non_numeric_value_names_line_and_column(tmp_path):
    rows = [ROWS[0], ROWS[2].replace("0.019", "n.a.")]
    with pytest.raises(SourceError, match=r"'n\.a\.' is not a number") as exc:
        undp_gii.parse(write(tmp_path, table(rows)), specs_for("undp_gii", "2024-03"))
    assert (exc.value.row, exc.value.field) == ("line 3, column 'gii_2021'", "gii_2021")


def test_empty_iso3_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="iso3 is empty") as exc:
        undp_gii.parse(write(tmp_path, table([",Nowhere,,,,,,,,0.3,0.3,0.3,"])), specs_for("undp_gii", "2024-03"))
    assert exc.value.row == "line 2"


@pytest.mark.parametrize("data,needle", [(b"<!DOCTYPE html><html>503</html>", "HTML"), (b"", "empty")])
def test_error_pages(tmp_path, data, needle):
    (tmp_path / "x.csv").write_bytes(data)
    with pytest.raises(SourceError, match=needle):
        undp_gii.parse([LandedFile("undp_gii", "2024-03", tmp_path / "x.csv")], specs_for("undp_gii", "2024-03"))


def test_is_composite_sniffs_the_header(tmp_path):
    (tmp_path / "a.csv").write_text('"iso3","country","gii_2022"\n')
    (tmp_path / "b.csv").write_text("Gender Inequality Index (GII)\nHDI Rank,Country,2019\n")
    assert undp_hdr.is_composite(LandedFile("undp_gii", "x", tmp_path / "a.csv"))
    assert not undp_hdr.is_composite(LandedFile("undp_gii", "x", tmp_path / "b.csv"))


def test_sample_mirror_newest_vintage_wins(tmp_path):
    sample = settings.SAMPLE_MIRROR_DIR
    universe = set(un_m49.parse_countries(next((sample / "un_m49").glob("*/*.csv")))["iso3"])
    load = registry.load_source("undp_gii", 2024, universe, mirror=sample, landing=tmp_path, user_dir=tmp_path,
                                log=lambda m: None)
    obs = load.observations
    assert obs.filter(pl.col("data_year") >= 2020)["vintage"].unique().to_list() == ["2024-03"]
    assert obs["data_year"].max() == 2022
    assert load.notes.height == 0   # ZZ aggregates never reach the country resolver


def test_a_csv_text_is_parsed_once_per_process_and_an_edited_one_again(tmp_path, monkeypatch):
    """The HDR CSV is parsed for the indicator and again for the benchmark values in one refresh:
    read_csv_text keeps the last few texts' frames. The text is compared, not only its hash: an
    edit of the same length gives a new frame; a broken CSV is never kept."""
    from radar_pipeline.sources.toolkit import tables

    monkeypatch.setattr(tables, "_CSV_TEXTS", {})
    calls = []
    real = tables._read_csv_text
    monkeypatch.setattr(tables, "_read_csv_text", lambda *a, **k: calls.append(1) or real(*a, **k))
    file = write(tmp_path, table())[0]
    first = tables.read_csv_text(file, table())
    assert tables.read_csv_text(file, table()) is first and len(calls) == 1
    edited = table().replace("0.612", "0.613")  # same length, other content
    assert len(edited) == len(table())
    again = tables.read_csv_text(file, edited)
    assert len(calls) == 2 and again["gii_2022"].to_list() != first["gii_2022"].to_list()
    assert tables.read_csv_text(file, table(), separator=";") is not first  # another option: parsed
    broken = HEADER + '\nAAA,"unterminated\n'
    for _ in range(2):
        with pytest.raises(SourceError):
            tables.read_csv_text(file, broken)
    assert len(calls) == 5
    monkeypatch.setattr(tables, "_CSV_TEXT_MAX", 10)  # a bulk export is not kept
    tables.read_csv_text(file, table() + "\n")
    tables.read_csv_text(file, table() + "\n")
    assert len(calls) == 7
