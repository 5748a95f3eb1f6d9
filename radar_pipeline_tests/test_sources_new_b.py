"""New sources (b): Walk Free Global Slavery Index, WEF Global Gender Gap (curated CSV), Freedom
House E3, TI CPI 2024, the UNDP HDR 2023/24 composite indices, the World Bank income
classification (reference list), and the packaged sample mirror's files of every new source.

Synthetic fixtures (made-up values) are written to tmp_path in the publishers' layouts; the
real files come from the `shared_sources` fixture and are never copied into the repository.
"""
from __future__ import annotations

import csv
import importlib.util
import tomllib
import warnings
from fnmatch import fnmatch
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import freedom_house_fiw, ituc, ti_cpi, undp_gii, walk_free_gsi, wef_ggg
from radar_pipeline.sources.reference import un_m49, worldbank_class
from radar_pipeline.sources.reference.countries import resolve
from radar_pipeline.sources.toolkit import (
    RAW_OBSERVATION_SCHEMA,
    LandedFile,
    ListsSummary,
    SourceError,
    specs_for,
)
from radar_pipeline.sources.toolkit.fetch import load_catalogue
from radar_pipeline_tests.workbooks import write_xlsx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(settings.SAMPLE_MIRROR_DIR)
HTML = b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head></html>"


# ---------------------------------------------------------------- helpers



def one(df: pl.DataFrame, **where) -> dict:
    rows = df.filter(*[pl.col(k) == v for k, v in where.items()])
    assert rows.height == 1, f"{where}: {rows.height} rows"
    return rows.row(0, named=True)


def real(module, shared: Path, vintage: str, name: str) -> pl.DataFrame:
    path = shared / module.SOURCE / vintage / name
    return module.parse([LandedFile(module.SOURCE, vintage, path)], specs_for(module.SOURCE, vintage))


@pytest.fixture(scope="module")
def real_universe(shared_sources) -> set[str]:
    return set(un_m49.parse_universe(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])


@pytest.fixture(scope="module")
def sample_universe() -> set[str]:
    return set(un_m49.parse_universe(SAMPLE / "un_m49/2022/UNSD_Methodology.csv")["iso3"])


# ---------------------------------------------------------------- contract and catalogue

@pytest.mark.parametrize("module", [walk_free_gsi, wef_ggg], ids=lambda m: m.SOURCE)
def test_new_adapters_satisfy_the_contract(module):
    assert module.SOURCE == module.__name__.rsplit(".", 1)[-1]
    assert registry.adapter(module.SOURCE) is module
    assert specs_for(module.SOURCE), f"no indicators.csv row for {module.SOURCE}"
    empty = module.parse([], [])
    assert empty.schema == pl.Schema(RAW_OBSERVATION_SCHEMA) and empty.height == 0


def test_catalogue_rows():
    by_id = {s.indicator_id: s for s in specs_for("walk_free_gsi") + specs_for("wef_ggg")
             + specs_for("freedom_house_fiw")}
    gsi, wef, e3 = by_id["gsi_disenfranchised_groups"], by_id["wef_economic_participation"], by_id["fh_e3"]
    assert (gsi.topic, gsi.direction, gsi.series) == ("discrimination", "higher_is_riskier", "Disenfranchised groups")
    assert (wef.topic, wef.direction, wef.series, wef.valid_min, wef.valid_max) == (
        "gender", "lower_is_riskier", "economic_participation_and_opportunity", "0", "1")
    assert (e3.topic, e3.direction, e3.series, e3.valid_min, e3.valid_max) == (
        "freedom_of_association", "lower_is_riskier", "E3", "0", "4")
    assert all((s.max_age_years, s.min_countries) == ("5", "100") for s in (gsi, wef, e3))
    entries = {(e.source, e.vintage): e for e in load_catalogue()}
    assert entries[("ti_cpi", "2024")].file == "CPI2024-Results-and-trends.xlsx"
    assert entries[("ti_cpi", "2024")].released == "2025-02"
    assert entries[("walk_free_gsi", "2023-05")].released == "2023-05"
    cls = entries[("worldbank_class", "FY2023")]
    assert cls.file == "CLASS.xlsx" and cls.released == "2022-07" and cls.url.startswith("https://")
    assert not [e for e in entries if e[0] == "wef_ggg"]  # user-supplied: never downloaded
    assert "wef_ggg" in registry.user_sources() and "walk_free_gsi" not in registry.user_sources()


# ---------------------------------------------------------------- Walk Free GSI

GSI_HEAD = ["Country", "Population", "Region", "Estimated prevalence of modern slavery per 1,000 population",
            "Estimated number of people in modern slavery", "Governance issues", "Lack of basic needs", "Inequality",
            "Disenfranchised groups", "Effects of conflict", "Total Vulnerability score (%)",
            "Government response total (%)"]


def _gsi_rows(column: str = "Disenfranchised groups") -> list[list]:
    head = [column if h == "Disenfranchised groups" else h for h in GSI_HEAD]
    return [[None, None, None, "PREVALENCE", None, "VULNERABILITY", None, None, None, None, None,
             "GOVERNMENT RESPONSE"],
            head,
            ["Atlantis", 1000000, "Europe and Central Asia", 2.5, 3000, 30.1, 20.2, 25.3, 17.25, 5.5, 22.0, 60.0],
            [" Lemuria ", 2000000, "Africa", 10.5, 21000, 70.0, 60.0, 55.0, 81.5, 40.0, 66.0, 30.0],
            ["Mu", 30000, "Americas", None, None, None, None, None, None, None, None, 45.0]]  # no estimate


def _gsi(tmp_path: Path, rows: list[list], sheet: str = "GSI 2023 summary data") -> list[LandedFile]:
    path = write_xlsx(tmp_path / "slavery_2023.xlsx", {"CONTENTS": [["contents"]], sheet: rows,
                                                       "Vulnerability codebook": [["x"]]})
    return [LandedFile("walk_free_gsi", "2023-05", path)]


def test_gsi_synthetic_header_by_content_and_year_from_sheet(tmp_path):
    df = walk_free_gsi.parse(_gsi(tmp_path, _gsi_rows()), specs_for("walk_free_gsi", "2023-05"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert sorted(df.select("country", "value").rows()) == [("Atlantis", 17.25), ("Lemuria", 81.5)]
    atl = one(df, country="Atlantis")
    assert atl["data_year"] == 2023 and atl["indicator_id"] == "gsi_disenfranchised_groups"
    assert atl["row_ref"] == "sheet 'GSI 2023 summary data' row 3, column 'Disenfranchised groups'"
    assert atl["code"] is None and atl["vintage"] == "2023-05" and atl["file"] == "slavery_2023.xlsx"
    # the year is the one the sheet names
    (tmp_path / "y").mkdir()
    df18 = walk_free_gsi.parse(_gsi(tmp_path / "y", _gsi_rows(), sheet="GSI 2018 summary data"),
                               specs_for("walk_free_gsi", "2023-05"))
    assert set(df18["data_year"]) == {2018}


def test_gsi_renamed_column_names_expected_and_found(tmp_path):
    with pytest.raises(SourceError) as exc:
        walk_free_gsi.parse(_gsi(tmp_path, _gsi_rows("Disenfranchised")), specs_for("walk_free_gsi", "2023-05"))
    assert exc.value.field == "Disenfranchised groups" and "'Disenfranchised'" in str(exc.value)
    assert exc.value.source == "walk_free_gsi" and "slavery_2023.xlsx" in str(exc.value)


def test_gsi_without_summary_sheet_names_the_sheets(tmp_path):
    with pytest.raises(SourceError) as exc:
        walk_free_gsi.parse(_gsi(tmp_path, _gsi_rows(), sheet="Summary"), specs_for("walk_free_gsi", "2023-05"))
    assert "GSI <year> summary data" in str(exc.value) and "'Summary'" in str(exc.value)


def test_gsi_bad_value_and_duplicate_country(tmp_path):
    rows = _gsi_rows()
    rows[3][8] = "very high"
    with pytest.raises(SourceError) as exc:
        walk_free_gsi.parse(_gsi(tmp_path, rows), specs_for("walk_free_gsi", "2023-05"))
    assert "'very high'" in str(exc.value) and "row 4" in exc.value.row
    assert exc.value.field == "Disenfranchised groups"
    rows = _gsi_rows()
    rows.append(["Atlantis", 1, "Europe", 1, 1, 1, 1, 1, 50.0, 1, 1, 1])
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceError, match="'Atlantis' appears twice"):
        walk_free_gsi.parse(_gsi(tmp_path / "d", rows), specs_for("walk_free_gsi", "2023-05"))


@pytest.mark.parametrize("content,needle", [(HTML, "HTML"), (b"", "empty")])
def test_gsi_error_page_or_empty_file(tmp_path, content, needle):
    path = tmp_path / "slavery_2023.xlsx"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=needle):
        walk_free_gsi.parse([LandedFile("walk_free_gsi", "2023-05", path)], specs_for("walk_free_gsi", "2023-05"))


def test_gsi_real_workbook(shared_sources, real_universe):
    """The publisher's workbook (with its broken external link) read by calamine: 160 of the 180
    countries have a vulnerability estimate; values read back from the cell with openpyxl."""
    df = real(walk_free_gsi, shared_sources, "2023-05", "slavery_2023.xlsx")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 160 and df["country"].n_unique() == 160
    assert set(df["data_year"]) == {2023} and set(df["indicator_id"]) == {"gsi_disenfranchised_groups"}
    assert one(df, country="Denmark")["value"] == pytest.approx(17.5367401, abs=1e-6)
    assert one(df, country="North Korea")["value"] == pytest.approx(52.0920203, abs=1e-6)
    assert one(df, country="Yemen")["value"] == pytest.approx(df["value"].max()) == pytest.approx(88.2171053)
    assert df["value"].min() == pytest.approx(10.989351, abs=1e-5)
    assert not {"Iceland", "Malta", "Brunei Darussalam"} & set(df["country"])  # no vulnerability estimate
    dnk = one(df, country="Denmark")
    assert dnk["row_ref"] == "sheet 'GSI 2023 summary data' row 45, column 'Disenfranchised groups'"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the workbook's defined names point at missing sheets
        wb = openpyxl.load_workbook(shared_sources / "walk_free_gsi/2023-05/slavery_2023.xlsx", read_only=True,
                                    keep_links=False, data_only=True)
    ws = wb["GSI 2023 summary data"]
    assert ws.cell(2, 9).value == "Disenfranchised groups" and ws.cell(45, 1).value == "Denmark"
    assert ws.cell(45, 9).value == pytest.approx(dnk["value"], abs=1e-8)
    wb.close()
    kept, notes = resolve(df, real_universe, "walk_free_gsi")  # every name maps, no override needed
    assert notes.height == 0 and kept["iso3"].n_unique() == 160
    iso = dict(kept.select("country", "iso3").iter_rows())
    assert (iso["Türkiye"], iso["Côte d'Ivoire"], iso["Taiwan"], iso["Kosovo"], iso["Lao PDR"],
            iso["Republic of the Congo"], iso["Democratic Republic of the Congo"]) == (
        "TUR", "CIV", "TWN", "XKX", "LAO", "COG", "COD")


# ---------------------------------------------------------------- WEF Global Gender Gap

WEF_CSV = ("country,region,index,rank,economic_participation_and_opportunity,educational_attainment\n"
           "Atlantis,Europe,0.8,1.0,0.75,0.99\n"
           '"Lemuria, Republic of",Southern Asia,0.6,2.0,0.5123,0.9\n'
           "Mu,Sub-Saharan Africa,0.5,3.0,,0.8\n"
           "ABC,Europe,0.7,4.0,0.61,0.95\n")


def _wef(tmp_path: Path, text: str, vintage: str = "2023-06", name: str = "gggi.csv") -> list[LandedFile]:
    folder = tmp_path / vintage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return [LandedFile("wef_ggg", vintage, folder / name)]


def test_wef_synthetic_curated_file(tmp_path):
    df = wef_ggg.parse(_wef(tmp_path, WEF_CSV), specs_for("wef_ggg", "2023-06"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert sorted(df.select("country", "code", "value").rows(), key=str) == [
        ("ABC", "ABC", 0.61), ("Atlantis", None, 0.75), ("Lemuria, Republic of", None, 0.5123)]  # Mu: empty
    lem = one(df, country="Lemuria, Republic of")
    assert lem["data_year"] == 2023 and lem["indicator_id"] == "wef_economic_participation"
    assert lem["row_ref"] == "line 3, column 'economic_participation_and_opportunity'"
    assert lem["source"] == "wef_ggg" and lem["vintage"] == "2023-06"


def test_wef_year_column_wins_over_the_folder(tmp_path):
    text = "Country,Year,Economic_Participation_and_Opportunity\nAtlantis,2022,0.7\nAtlantis,,0.71\n"
    df = wef_ggg.parse(_wef(tmp_path, text), specs_for("wef_ggg", "2023-06"))
    assert sorted(df.select("data_year", "value").rows()) == [(2022, 0.7), (2023, 0.71)]


@pytest.mark.parametrize("text,field,needle", [
    ("country,index\nAtlantis,0.7\n", "economic_participation_and_opportunity", "missing column"),
    (WEF_CSV.replace("0.5123", "51.23"), "economic_participation_and_opportunity", "outside its range 0 to 1"),
    (WEF_CSV.replace("0.5123", "high"), "economic_participation_and_opportunity", "not a number: 'high'"),
    (WEF_CSV + "Atlantis,Europe,0.8,1.0,0.74,0.99\n", "country", "'Atlantis' is scored twice"),
    (WEF_CSV + ",Europe,0.8,1.0,0.74,0.99\n", "country", "country is empty"),
])
def test_wef_broken_files(tmp_path, text, field, needle):
    with pytest.raises(SourceError) as exc:
        wef_ggg.parse(_wef(tmp_path, text), specs_for("wef_ggg", "2023-06"))
    assert needle in str(exc.value) and exc.value.field == field and "gggi.csv" in str(exc.value)


def test_wef_same_country_in_two_files_and_folder_without_year(tmp_path):
    files = _wef(tmp_path, WEF_CSV) + _wef(tmp_path, "country,economic_participation_and_opportunity\n"
                                                     "Atlantis,0.7\n", name="more.csv")
    with pytest.raises(SourceError, match="given in two files"):
        wef_ggg.parse(files, specs_for("wef_ggg", "2023-06"))
    with pytest.raises(SourceError, match="does not start with a year"):
        wef_ggg.parse(_wef(tmp_path, WEF_CSV, vintage="latest"), specs_for("wef_ggg", "2023-06"))
    with pytest.raises(SourceError, match="HTML"):
        (tmp_path / "p.csv").write_bytes(HTML)
        wef_ggg.parse([LandedFile("wef_ggg", "2023-06", tmp_path / "p.csv")], specs_for("wef_ggg", "2023-06"))


def test_wef_read_from_user_files_never_downloaded(tmp_path, sample_universe):
    user = tmp_path / "user"
    _wef(user / "wef_ggg", "country,economic_participation_and_opportunity\nDenmark,0.77\nViet Nam,0.7\n")
    load = registry.load_source("wef_ggg", 2024, sample_universe, mirror=tmp_path / "no-mirror", user_dir=user,
                                landing=tmp_path / "landing", log=lambda m: None)
    assert sorted(load.observations.select("iso3", "data_year", "value").rows()) == [
        ("DNK", 2023, 0.77), ("VNM", 2023, 0.7)]
    assert not (tmp_path / "landing").exists()


def test_wef_real_curated_file(shared_sources, real_universe):
    df = real(wef_ggg, shared_sources, "2023-06", "gggi_2023_tidyindex.csv")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 146 and set(df["data_year"]) == {2023}
    assert df.select(pl.col("value").is_between(0, 1).all()).item()
    got = dict(df.select("country", "value").iter_rows())
    assert (got["Iceland"], got["Iran (Islamic Republic of)"], got["Afghanistan"], got["Denmark"]) == (
        0.796, 0.344, 0.1888, 0.727)
    with open(shared_sources / "wef_ggg/2023-06/gggi_2023_tidyindex.csv", newline="", encoding="utf-8") as fh:
        file_rows = {r["country"]: float(r["economic_participation_and_opportunity"]) for r in csv.DictReader(fh)}
    assert got == file_rows
    kept, notes = resolve(df, real_universe, "wef_ggg")  # every WEF spelling maps without an override
    assert notes.height == 0 and kept["iso3"].n_unique() == 146
    iso = dict(kept.select("country", "iso3").iter_rows())
    assert (iso["Iran (Islamic Republic of)"], iso["Congo, Democratic Republic of the"], iso["Korea, Republic of"],
            iso["Moldova, Republic of"], iso["Türkiye"], iso["Lao PDR"]) == ("IRN", "COD", "KOR", "MDA", "TUR", "LAO")


# ---------------------------------------------------------------- Freedom House E3

@pytest.mark.parametrize("vintage,name,rows,last", [("2022", "All_data_FIW_2013-2022.xlsx", 2095, 2022),
                                                    ("2024", "All_data_FIW_2013-2024.xlsx", 2515, 2024)])
def test_fh_e3_real_workbooks(shared_sources, real_universe, vintage, name, rows, last):
    e3 = [s for s in specs_for("freedom_house_fiw", vintage) if s.indicator_id == "fh_e3"]
    assert [s.series for s in e3] == ["E3"]
    df = freedom_house_fiw.parse([LandedFile("freedom_house_fiw", vintage, shared_sources / "freedom_house_fiw"
                                             / vintage / name)], e3)
    assert df.height == rows and set(df["indicator_id"]) == {"fh_e3"}
    assert df.select(pl.col("value").is_between(0, 4).all()).item()
    latest = df.filter(pl.col("data_year") == last)
    assert latest.height == 210
    assert one(latest, country="North Korea")["value"] == 0 and one(latest, country="Cuba")["value"] == 0
    assert one(latest, country="Denmark")["value"] == 4 and one(latest, country="China")["value"] == 1
    assert one(latest, country="Denmark")["row_ref"].endswith(" row 51, column 'E3'")
    # E3 gives countries ITUC does not rate an observed value (METHODOLOGY §2)
    kept, _ = resolve(latest, real_universe, "freedom_house_fiw")
    rated = ituc.parse([LandedFile("ituc", "2025", shared_sources / "ituc/2025/ituc_global_rights_index_2025.csv")],
                       specs_for("ituc", "2025"))
    ituc_iso, _ = resolve(rated, real_universe | {"TWN"}, "ituc")
    assert {"PRK", "CUB"} <= set(kept["iso3"]) and not {"PRK", "CUB"} & set(ituc_iso["iso3"])


# ---------------------------------------------------------------- TI CPI 2024

def test_cpi_2024_real_workbook(shared_sources):
    """Strict OOXML: openpyxl sees no sheet, the adapter (fastexcel) reads the time-series sheet."""
    path = shared_sources / "ti_cpi/2024/CPI2024-Results-and-trends.xlsx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about the defined names of the sheets it cannot see
        assert openpyxl.load_workbook(path, read_only=True).sheetnames == []
    df = real(ti_cpi, shared_sources, "2024", path.name)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    y24 = df.filter(pl.col("data_year") == 2024)
    assert y24.height == 180
    assert [one(y24, code=c)["value"] for c in ("DNK", "SGP", "USA", "SSD")] == [90, 84, 65, 8]
    assert one(y24, code="DNK")["row_ref"] == "sheet 'CPI Timeseries 2012 - 2024' row 47, column 'CPI score 2024'"
    brunei = df.filter(pl.col("code") == "BRN")
    assert 2024 not in brunei["data_year"].to_list() and one(brunei, data_year=2020)["value"] == 60
    per_year = dict(df.group_by("data_year").len().iter_rows())
    assert (min(per_year), max(per_year)) == (2012, 2024) and per_year[2013] == 176  # "CPI Score 2013"
    assert one(df, code="KSV", data_year=2024)["value"] == 44  # TI's Kosovo code, mapped by the override


# ---------------------------------------------------------------- UNDP HDR 2023/24 composite indices

def test_hdr_2023_24_composite_real_file(shared_sources):
    df = real(undp_gii, shared_sources, "2024-03", "HDR23-24_Composite_indices_complete_time_series.csv")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA) and set(df["indicator_id"]) == {"undp_gii"}
    y22 = df.filter(pl.col("data_year") == 2022)
    assert y22.height == 166 and y22["code"].n_unique() == 166
    assert (df["data_year"].min(), df["data_year"].max()) == (1990, 2022)
    assert df.filter(pl.col("code").str.starts_with("ZZ")).height == 0
    assert df["code"].str.contains(r"^[A-Z]{3}$").all()
    assert [one(y22, code=c)["value"] for c in ("DNK", "CHE", "IND", "USA", "YEM")] == [
        0.009, 0.018, 0.437, 0.18, 0.82]
    assert y22["value"].max() == 0.82
    assert one(y22, code="DNK")["row_ref"] == "line 48, column 'gii_2022'"


# ---------------------------------------------------------------- World Bank income classification

CLASS_HEAD = ["Economy", "Code", "Region", "Income group", "Lending category", "Other (EMU or HIPC)"]


def _class_rows() -> list[list]:
    return [list(CLASS_HEAD),
            ["Aruba", "ABW", "Latin America & Caribbean", "High income", None, None],
            ["Afghanistan", "AFG", "South Asia", "Low income", "IDA", "HIPC"],
            ["Angola", "AGO", "Sub-Saharan Africa", "Lower-middle income", "IBRD", None],
            ["Channel Islands", "CHI", "Europe & Central Asia", "High income", None, None],
            ["Euro area", "EMU", "Europe & Central Asia", "High income", None, None],  # a group code with a region
            ["Venezuela, RB", "VEN", "Latin America & Caribbean", None, "IBRD", None],
            ["Kosovo", "XKX", "Europe & Central Asia", " Upper middle income ", "IDA", None],
            [],
            ["High income", "HIC"],
            ["World", "WLD"]]


def _class(tmp_path: Path, rows=None, groups: bool = True, sheet: str = "List of economies") -> Path:
    sheets = {sheet: rows if rows is not None else _class_rows()}
    if groups:
        sheets["Groups"] = [["GroupCode", "GroupName", "CountryCode", "CountryName"],
                            ["EMU", "Euro area", "DEU", "Germany"], ["HIC", "High income", "ABW", "Aruba"],
                            ["WLD", "World", "AFG", "Afghanistan"]]
    sheets["Notes"] = [["Notes"], ["made up"]]
    return write_xlsx(tmp_path / "CLASS.xlsx", sheets)


def test_class_synthetic_rules(tmp_path):
    path = _class(tmp_path)
    df = worldbank_class.parse_income_groups(path)
    assert df.schema == pl.Schema({"iso3": pl.String, "income_group": pl.String})
    # EMU (a Groups code), HIC/WLD (no region), CHI (not ISO 3166) and VEN (unclassified) left out
    assert df.rows() == [("ABW", "high"), ("AFG", "low"), ("AGO", "lower_middle"), ("XKX", "upper_middle")]
    line = worldbank_class.summary([LandedFile("worldbank_class", "FY2023", path)])
    assert line == ("4 economies classified (low 1, lower_middle 1, upper_middle 1, high 1); unclassified: VEN; "
                    "non-ISO codes dropped: CHI")
    # without a Groups sheet the region rule still drops the aggregate block (EMU, which has a region, is then
    # dropped as a code that is not ISO 3166)
    (tmp_path / "g").mkdir()
    assert worldbank_class.parse_income_groups(_class(tmp_path / "g", groups=False))["iso3"].to_list() == [
        "ABW", "AFG", "AGO", "XKX"]


@pytest.mark.parametrize("change,field,needle", [
    (lambda rows: rows[2].__setitem__(3, "Middle income"), "Income group", "'Middle income' of AFG"),
    (lambda rows: rows[0].__setitem__(3, "Income"), "Income group", "'Income'"),
    (lambda rows: rows.insert(3, ["Aruba again", "ABW", "Latin America & Caribbean", "High income"]), "Code",
     "'ABW' appears twice"),
    (lambda rows: rows[2].__setitem__(1, None), "Code", "'Afghanistan' has no code"),
])
def test_class_broken_variants(tmp_path, change, field, needle):
    rows = _class_rows()
    change(rows)
    with pytest.raises(SourceError) as exc:
        worldbank_class.parse_income_groups(_class(tmp_path, rows))
    assert needle in str(exc.value) and exc.value.field == field and exc.value.source == "worldbank_class"


def test_class_wrong_sheet_or_error_page(tmp_path):
    with pytest.raises(SourceError, match=r"no sheet 'List of economies'.*'Economies'"):
        worldbank_class.parse_income_groups(_class(tmp_path, sheet="Economies"))
    (tmp_path / "CLASS.xlsx").write_bytes(HTML)
    with pytest.raises(SourceError, match="HTML"):
        worldbank_class.parse_income_groups(tmp_path / "CLASS.xlsx")


def test_class_is_a_reference_list():
    assert isinstance(registry.adapter("worldbank_class"), ListsSummary)
    assert "worldbank_class" in registry.list_sources()
    assert registry.release_year("worldbank_class", "FY2023") == 2022


def test_class_real_file(shared_sources, real_universe):
    path = shared_sources / "worldbank_class/FY2023/CLASS.xlsx"
    df = worldbank_class.parse_income_groups(path)
    counts = dict(df.group_by("income_group").len().iter_rows())
    assert counts == {"high": 80, "upper_middle": 54, "lower_middle": 54, "low": 28} and df.height == 216
    group = dict(df.iter_rows())
    assert (group["USA"], group["IND"], group["CHN"], group["ETH"], group["XKX"], group["TWN"], group["SOM"]) == (
        "high", "lower_middle", "upper_middle", "low", "upper_middle", "high", "low")
    assert not {"VEN", "CHI", "WLD", "HIC", "EMU", "SSF", "AFE", "AFW"} & set(group)
    assert worldbank_class.summary([LandedFile("worldbank_class", "FY2023", path)]) == (
        "216 economies classified (low 28, lower_middle 54, upper_middle 54, high 80); unclassified: VEN; "
        "non-ISO codes dropped: CHI")
    # every classified economy is in the country universe (TWN and XKX included); the universe members
    # without an income group are Venezuela and territories the World Bank does not list (Guernsey and
    # Jersey are inside its Channel Islands row)
    assert {"TWN", "XKX"} <= set(group) <= real_universe
    unclassified = real_universe - set(group)
    assert len(unclassified) == 33 and {"VEN", "GGY", "JEY", "REU", "VAT"} <= unclassified


# ---------------------------------------------------------------- the packaged sample mirror

# source -> the indicator ids its sample files must give edition 2024 (None: every registry row)
NEW_SOURCES = {
    "walk_free_gsi": {"gsi_disenfranchised_groups"},
    "wef_ggg": {"wef_economic_participation"},
    "freedom_house_fiw": {"fh_e3"},
    "ti_cpi": {"ti_cpi_score"},
    "unicef_child_labour": None,
    "fao_aquastat": None,
    "owid": None,
    "ghs_index": None,
}


@pytest.mark.parametrize("source", list(NEW_SOURCES))
def test_sample_mirror_gives_every_new_source_observations(source, sample_universe, tmp_path):
    if importlib.util.find_spec(f"radar_pipeline.sources.adapters.{source}") is None:
        pytest.skip(f"adapter radar_pipeline/sources/adapters/{source}.py does not exist yet")
    specs = specs_for(source)
    if not specs:
        pytest.skip(f"no rules/indicators.csv row for {source} yet")
    load = registry.load_source(source, 2024, sample_universe, mirror=SAMPLE, user_dir=tmp_path / "user",
                                landing=tmp_path / "landing", log=lambda m: None)
    obs = load.observations
    wanted = NEW_SOURCES[source] or {s.indicator_id for s in specs}
    counts = dict(obs.group_by("indicator_id").agg(pl.col("iso3").n_unique()).iter_rows())
    assert wanted <= set(counts), f"{source}: no edition-2024 rows for {sorted(wanted - set(counts))}"
    assert all(counts[i] >= 15 for i in wanted), counts
    assert load.notes.height == 0, load.notes.rows()[:5]  # every sample name maps into the universe
    assert not (tmp_path / "landing").exists()


def test_sample_cpi_2024_is_read_from_edition_2025(sample_universe, tmp_path):
    kw = {"mirror": SAMPLE, "user_dir": tmp_path, "landing": tmp_path / "landing", "log": lambda m: None}
    e24 = registry.load_source("ti_cpi", 2024, sample_universe, **kw)
    assert e24.vintages == ["2023"] and e24.not_yet_released == ["2024"]  # released February 2025
    e25 = registry.load_source("ti_cpi", 2025, sample_universe, **kw).observations
    y24 = e25.filter(pl.col("data_year") == 2024)
    assert y24.height == 26 and set(y24["vintage"]) == {"2024"}
    assert one(y24, iso3="DNK")["value"] == 90 and one(y24, iso3="SOM")["value"] == 9
    # 2012-2023 repeat the 2023 workbook's scores
    old = ti_cpi.parse([LandedFile("ti_cpi", "2023", SAMPLE / "ti_cpi/2023/CPI2023_GlobalResultsTrends.xlsx")],
                       specs_for("ti_cpi", "2023"))
    new = ti_cpi.parse([LandedFile("ti_cpi", "2024", SAMPLE / "ti_cpi/2024/CPI2024-Results-and-trends.xlsx")],
                       specs_for("ti_cpi", "2024")).filter(pl.col("data_year") <= 2023)
    assert sorted(old.select("code", "data_year", "value").rows()) == sorted(
        new.select("code", "data_year", "value").rows())


def test_sample_income_classification(sample_universe):
    import make_sample_mirror as gen

    path = SAMPLE / "worldbank_class/FY2023/CLASS.xlsx"
    df = worldbank_class.parse_income_groups(path)
    group = dict(df.iter_rows())
    labels = {"High income": "high", "Upper middle income": "upper_middle", "Lower middle income": "lower_middle",
              "Low income": "low"}
    assert all(group[iso] == labels[c[6]] for iso, c in gen.COUNTRIES.items())
    assert sample_universe - {"TWN"} <= set(group)  # every sample economy has an income group (TWN: not listed)
    assert group["XKX"] == "upper_middle" and not {"VEN", "CHI", "WLD", "HIC", "EAS", "SSF"} & set(group)
    assert worldbank_class.summary([LandedFile("worldbank_class", "FY2023", path)]).endswith(
        "unclassified: VEN; non-ISO codes dropped: CHI")


NEW_SAMPLE_FILES = [
    "worldbank_class/FY2023/CLASS.xlsx", "walk_free_gsi/2023-05/slavery_2023.xlsx",
    "wef_ggg/2023-06/gggi_2023_tidyindex.csv", "ti_cpi/2024/CPI2024-Results-and-trends.xlsx",
    "unicef_child_labour/2022-05/XLS_Child-labour-database_May-2022.xlsx",
    "fao_aquastat/2024-02/AQUASTAT Dissemination System.csv",
    "owid/2026-04/freshwater-withdrawals-as-a-share-of-internal-resources.csv",
    "owid/2026-05/annual-working-hours-per-worker.csv", "ghs_index/2022-04/2021-GHS-Index-April-2022.csv",
]


def test_sample_files_are_described_and_shipped_in_the_wheel():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "radar_pipeline"]
    manifest = (REPO / "MANIFEST.in").read_text()
    assert "graft radar_pipeline/sample_mirror" in manifest
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for rel in NEW_SAMPLE_FILES:
        path = SAMPLE / rel
        assert path.is_file(), rel
        assert any(fnmatch(f"sample_mirror/{rel}", p.replace("**/", "*")) for p in patterns), rel
        source, vintage = rel.split("/")[:2]
        note = SAMPLE / source / "SAMPLE.txt" if source != "ti_cpi" else SAMPLE / source / vintage / "SAMPLE.txt"
        assert note.read_text(encoding="utf-8").startswith("SYNTHETIC SAMPLE DATA"), note
        assert f"`{source}" in readme, source
    # the publishers' byte-level conventions the adapters rely on
    ghs = (SAMPLE / NEW_SAMPLE_FILES[-1]).read_bytes()
    assert ghs.startswith(b"\xef\xbb\xbfCountry,Year,") and ghs.endswith(b"\r\n")
    assert b'"5.4.1a) Deployment of health personnel\nduring emergencies"' in ghs  # a quoted line break
    assert b'"6.2) Socio-economic resilience"' not in ghs and b",6.2) Socio-economic resilience," in ghs
    assert (SAMPLE / NEW_SAMPLE_FILES[5]).read_text(encoding="utf-8").startswith(
        'Country, Variable, Unit, Symbol, "2020"\n')
