"""Publisher adapters: UNICEF child labour, FAO AQUASTAT, Our World in Data grapher CSVs, GHS Index.

Synthetic files (made-up values, the publishers' layouts: preamble, footnote flags, aggregates
after the countries, comma + space separators, BOM, CRLF, quoted header cells with line breaks)
are written to tmp_path by the tests; the real files are read from the `shared_sources` fixture
and checked against values read off them (PROVENANCE.md, "Added 2026-12-06").
"""
from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from radar_pipeline.platform import settings
from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import fao_aquastat, ghs_index, owid, unicef_child_labour
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.reference.countries import resolve
from radar_pipeline.sources.toolkit import (
    RAW_OBSERVATION_SCHEMA,
    IndicatorSpec,
    LandedFile,
    ObservationAdapter,
    SourceError,
    specs_for,
)
from radar_pipeline_tests.workbooks import write_xlsx

ADAPTERS = [unicef_child_labour, fao_aquastat, owid, ghs_index]
UNICEF_FILE = "unicef_child_labour/2022-05/XLS_Child-labour-database_May-2022.xlsx"
FAO_FILE = "fao_aquastat/2024-02/AQUASTAT Dissemination System.csv"
GHS_FILE = "ghs_index/2022-04/2021-GHS-Index-April-2022.csv"
OWID_WATER = "freshwater-withdrawals-as-a-share-of-internal-resources.csv"
OWID_WATER_TITLE = ("Level of water stress: freshwater withdrawal as a proportion of available freshwater "
                    "resources (%) - No breakdown")
OWID_HOURS = "annual-working-hours-per-worker.csv"
HTML = b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head></html>"


# ---------------------------------------------------------------- helpers

def one(df: pl.DataFrame, **where) -> dict:
    rows = df.filter(*[pl.col(k) == v for k, v in where.items()])
    assert rows.height == 1, f"{where}: {rows.height} rows"
    return rows.row(0, named=True)


def spec(module, indicator_id: str, series: str) -> IndicatorSpec:
    return IndicatorSpec(indicator_id, "topic", module.SOURCE, "higher_is_riskier", "u", "*", series)


def files_of(module, folder: Path, vintage: str) -> list[LandedFile]:
    paths = sorted({p for pat in module.FILE_PATTERNS for p in folder.glob(pat)})
    return [LandedFile(module.SOURCE, vintage, p) for p in paths]




@pytest.fixture(scope="module")
def universe(shared_sources) -> set[str]:
    """The METHODOLOGY §1 universe: M49 areas with a region + Taiwan and Kosovo."""
    return set(un_m49.parse_universe(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])


# ---------------------------------------------------------------- contract

@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.SOURCE)
def test_module_contract(module):
    assert module.SOURCE == module.__name__.rsplit(".", 1)[-1]
    assert isinstance(registry.adapter(module.SOURCE), ObservationAdapter)
    assert specs_for(module.SOURCE), f"no indicators.csv row for {module.SOURCE}"
    empty = module.parse([], [])
    assert empty.schema == pl.Schema(RAW_OBSERVATION_SCHEMA) and empty.height == 0


def test_catalogue_rows():
    specs = {s.indicator_id: s for s in specs_for("unicef_child_labour") + specs_for("fao_aquastat")
             + specs_for("owid") + specs_for("ghs_index")}
    assert set(specs) == {"unicef_child_labour", "fao_water_stress", "owid_water_stress",
                          "owid_working_hours", "ghs_socioeconomic_resilience"}
    assert (specs["unicef_child_labour"].max_age_years, specs["unicef_child_labour"].min_countries) == ("12", "80")
    assert specs["fao_water_stress"].clip_max == specs["owid_water_stress"].clip_max == "100"
    assert specs["ghs_socioeconomic_resilience"].direction == "lower_is_riskier"
    assert specs["owid_working_hours"].topic == "working_hours"
    with open(settings.RULES_DIR / "sources.csv", newline="", encoding="utf-8") as fh:
        rows = {(r["source"], r["vintage"]): r for r in csv.DictReader(fh)}
    for key in [("unicef_child_labour", "2022-05"), ("fao_aquastat", "2024-02"), ("owid", "2026-04"),
                ("owid", "2026-05"), ("ghs_index", "2022-04")]:
        assert rows[key]["released"] == key[1] and rows[key]["url"].startswith("https://")
    assert rows[("owid", "2026-05")]["file"] == OWID_HOURS


@pytest.mark.parametrize("module,name", [(unicef_child_labour, "cl.xlsx"), (fao_aquastat, "aquastat.csv"),
                                         (owid, OWID_HOURS), (ghs_index, "ghs.csv")],
                         ids=lambda m: getattr(m, "SOURCE", m))
@pytest.mark.parametrize("content,needle", [(HTML, "HTML"), (b"", "empty")])
def test_error_page_or_empty_file_is_a_source_error(tmp_path, module, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as exc:
        module.parse([LandedFile(module.SOURCE, "2024", path)], specs_for(module.SOURCE))
    assert needle in str(exc.value) and name in str(exc.value) and exc.value.source == module.SOURCE


# ---------------------------------------------------------------- UNICEF child labour

_CHECKS = ["", "", "", "", "", "", ""]   # columns J-P: UNICEF's check formulas (empty text)


def _unicef_rows(*, total: str = "Total ", blank_before_summary: bool = True) -> list[list]:
    rows = [
        [None, "GLOBAL DATABASES"], [None, "[data.unicef.org]"], [], ["Child labour"], [],
        ["Last update: May 2099"], [],
        ["Countries and areas", "Child labour (%)+ \n(2013-2021)*", None, None, None, None, None, None, None,
         "Child labour (%)+ \n(2013-2021)*"],                                                              # row 8
        [None, total, None, "Sex", None, None, None, "Data Source", None, "Total ", None, "Sex", None, None,
         None, "Data Source"],                                                                              # row 9
        [None, None, None, "Male", None, "Female", None, None, None, None, None, "Male", None, "Female"],  # row 10
        [],                                                                                                  # row 11
        ["Atlantis", 12.5, "y", 13, "y", 12, "y", "MICS 2018-19, UNICEF and ILO calculations", None, *_CHECKS],
        ["Lemuria", "-", None, "-", None, "-", None, None, None, *_CHECKS],                                 # row 13
        ["Mu", 3.3, "x", 3.6, "x", 3, "x", "CLS 2010, UNICEF and ILO calculations", None, *_CHECKS],       # row 14
        ["Côte d'Ivoire", 22.1, None, 21.5, None, 22.6, None,
         "Survey of Activities of Young People (SAYP) 2015, UNICEF and ILO", None, *_CHECKS],              # row 15
        ["Hyperborea", 7, None, "-", None, "-", None, "National LFS 2019-2020", None, *_CHECKS],           # row 16
    ]
    if blank_before_summary:
        rows.append([])
    rows += [
        ["SUMMARY"],
        ["East Asia and Pacific", "-", None, "-", None, "-"],
        ["   West and Central Africa", 25.95, None, 25.97, None, 25.91, None, None, None, *_CHECKS[:-1],
         "DHS, MICS and other national surveys"],
        ["Least developed countries", 21.6, None, 22.5, None, 20.54],
        ["World", 9.9, None, 10, None, 9],
        [],
        ["Notes:", "– Data not available"],
        [None, "x Data refer to years or periods other than those specified in the column heading."],
        ["Source: ", "UNICEF global databases, 2099, based on DHS, MICS and other national surveys."],
    ]
    return rows


def _unicef_workbook(tmp_path: Path, rows: list[list] | None = None, sheet: str = "Child labour") -> Path:
    older = [["Countries and areas", "Child labour (%)"], [None, "Total"], ["Atlantis", 99, None, None, None,
                                                                           None, None, "MICS 2014"]]
    # the older vintage's sheet comes first: the adapter picks the sheet by name
    return write_xlsx(tmp_path / "XLS_Child-labour-database_May-2099.xlsx",
                      {"Child labour (3)": older, sheet: rows if rows is not None else _unicef_rows()})


def _unicef(path: Path, series: str = "Total") -> pl.DataFrame:
    return unicef_child_labour.parse([LandedFile("unicef_child_labour", "2099-05", path)],
                                     [spec(unicef_child_labour, "cl", series)])


def test_unicef_synthetic_countries_only_with_survey_years(tmp_path):
    df = _unicef(_unicef_workbook(tmp_path))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert sorted(df.select("country", "data_year", "value").rows()) == [
        ("Atlantis", 2019, 12.5), ("Côte d'Ivoire", 2015, 22.1), ("Hyperborea", 2020, 7.0), ("Mu", 2010, 3.3)]
    # '-' = no data; nothing from the SUMMARY block, its notes or the older sheet
    assert one(df, country="Atlantis")["row_ref"] == "sheet 'Child labour' row 12, column 'Total', footnote y"
    assert one(df, country="Mu")["row_ref"].endswith("row 14, column 'Total', footnote x")
    assert one(df, country="Hyperborea")["row_ref"] == "sheet 'Child labour' row 16, column 'Total'"
    assert df["code"].null_count() == df.height and set(df["vintage"]) == {"2099-05"}


def test_unicef_summary_block_ends_the_countries_without_a_blank_row(tmp_path):
    df = _unicef(_unicef_workbook(tmp_path, _unicef_rows(blank_before_summary=False)))
    assert set(df["country"]) == {"Atlantis", "Mu", "Côte d'Ivoire", "Hyperborea"}


def test_unicef_series_names_the_sub_column(tmp_path):
    df = _unicef(_unicef_workbook(tmp_path), "Female")
    assert sorted(df.select("country", "value").rows()) == [("Atlantis", 12.0), ("Côte d'Ivoire", 22.6),
                                                            ("Mu", 3.0)]


def test_unicef_without_the_sheet_names_the_sheets_found(tmp_path):
    path = write_xlsx(tmp_path / "cl.xlsx", {"Child labour (3)": _unicef_rows(), "Notes": [["x"]]})
    with pytest.raises(SourceError) as exc:
        _unicef(path)
    assert "no sheet 'Child labour'" in str(exc.value) and "'Child labour (3)'" in str(exc.value)


def test_unicef_renamed_total_column_names_the_cells_found(tmp_path):
    with pytest.raises(SourceError) as exc:
        _unicef(_unicef_workbook(tmp_path, _unicef_rows(total="All children")))
    assert exc.value.field == "Total" and "'All children'" in str(exc.value)


def test_unicef_value_without_a_survey_year_is_an_error(tmp_path):
    rows = _unicef_rows()
    rows[14][7] = "UNICEF and ILO calculations"   # Côte d'Ivoire, row 15
    with pytest.raises(SourceError) as exc:
        _unicef(_unicef_workbook(tmp_path, rows))
    assert exc.value.field == "Data Source" and exc.value.row.startswith("sheet 'Child labour' row 15")
    assert "Côte d'Ivoire" in str(exc.value)


def test_unicef_non_numeric_value_names_row_and_field(tmp_path):
    rows = _unicef_rows()
    rows[13][1] = "3,3 %"   # Mu, row 14
    with pytest.raises(SourceError) as exc:
        _unicef(_unicef_workbook(tmp_path, rows))
    assert exc.value.field == "Total" and "row 14" in exc.value.row and "'3,3 %'" in str(exc.value)


def test_unicef_real_workbook(shared_sources):
    path = shared_sources / UNICEF_FILE
    df = unicef_child_labour.parse([LandedFile("unicef_child_labour", "2022-05", path)],
                                   specs_for("unicef_child_labour", "2022-05"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 96 and df["country"].n_unique() == 96      # 202 areas listed, 96 with a total
    assert (df["data_year"].min(), df["data_year"].max()) == (2010, 2021)
    assert not set(df["country"]) & {"SUMMARY", "World", "Sub-Saharan Africa", "Latin America and Caribbean",
                                     "Least developed countries", "India", "Child labour (3)"}
    afg = one(df, country="Afghanistan")
    assert (afg["value"], afg["data_year"]) == (13.0, 2020)        # IELFS 2020, footnote y
    assert afg["row_ref"] == "sheet 'Child labour' row 12, column 'Total', footnote y"
    assert (one(df, country="Albania")["value"], one(df, country="Albania")["data_year"]) == (3.3, 2010)
    assert (one(df, country="Algeria")["value"], one(df, country="Algeria")["data_year"]) == (2.5, 2019)  # 2018-19
    assert (one(df, country="Brazil")["value"], one(df, country="Brazil")["data_year"]) == (5.4, 2015)
    assert (one(df, country="Zimbabwe")["value"], one(df, country="Zimbabwe")["data_year"]) == (27.9, 2019)
    assert one(df, country="Fiji")["value"] == 16.7                # total given, sex split '-'
    # the year read from 'Data Source' agrees with the heading's period (2013-2021): the rows UNICEF
    # flags 'x' (other years) are the ones before 2013
    flagged = df.with_columns(x=pl.col("row_ref").str.ends_with("footnote x"))
    assert flagged.filter("x")["data_year"].max() < 2013
    assert flagged.filter(~pl.col("x"))["data_year"].min() >= 2013
    wb = openpyxl.load_workbook(path, read_only=True)
    ws = wb["Child labour"]
    assert (ws["A12"].value, ws["B12"].value, ws["C12"].value) == ("Afghanistan", 13, "y")
    wb.close()


def test_unicef_real_names_resolve(shared_sources, universe):
    df = unicef_child_labour.parse([LandedFile("unicef_child_labour", "2022-05", shared_sources / UNICEF_FILE)],
                                   specs_for("unicef_child_labour", "2022-05"))
    kept, notes = resolve(df, universe, "unicef_child_labour")
    assert notes.height == 0 and kept["iso3"].n_unique() == 96
    iso = dict(kept.select("country", "iso3").iter_rows())
    assert (iso["Côte d'Ivoire"], iso["Turkey"], iso["State of Palestine"], iso["Turks and Caicos Islands"],
            iso["Democratic People's Republic of Korea"], iso["Bolivia (Plurinational State of)"]) == (
        "CIV", "TUR", "PSE", "TCA", "PRK", "BOL")


# ---------------------------------------------------------------- FAO AQUASTAT

FAO_CSV = ('Country, Variable, Unit, Symbol, "2019", "2020"\n'
           "Atlantis, Agricultural water withdrawal, 10^9 m3/year, I, 20, 21\n"
           "Atlantis, SDG 6.4.2. Water Stress, %, E, 54.76, 55.1\n"
           '"Mu, Kingdom of", SDG 6.4.2. Water Stress, %, , , 974.17\n'
           "Hyperborea, SDG 6.4.2.  water stress, %, I, 3850.5, 3850.5\n"
           "Hyperborea, Total water withdrawal, 10^9 m3/year, E, 1, 1\n"
           'Lemuria, "SDG 6.4.2. Water Stress", "%", "", "", "12.5"\n')
WATER_STRESS = "SDG 6.4.2. Water Stress"


def _fao(tmp_path: Path, text: str = FAO_CSV, series: str = WATER_STRESS) -> pl.DataFrame:
    path = tmp_path / "AQUASTAT Dissemination System.csv"
    path.write_text(text, encoding="utf-8")
    return fao_aquastat.parse([LandedFile("fao_aquastat", "2099-02", path)],
                              [spec(fao_aquastat, "ws", series)])


def test_fao_synthetic_variable_rows_and_year_columns(tmp_path):
    df = _fao(tmp_path)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert sorted(df.select("country", "data_year", "value").rows()) == [
        ("Atlantis", 2019, 54.76), ("Atlantis", 2020, 55.1), ("Hyperborea", 2019, 3850.5),
        ("Hyperborea", 2020, 3850.5), ("Lemuria", 2020, 12.5), ("Mu, Kingdom of", 2020, 974.17)]
    assert one(df, country="Atlantis", data_year=2020)["row_ref"] == "line 3, column '2020', symbol E"
    assert one(df, country="Mu, Kingdom of")["row_ref"] == "line 4, column '2020'"   # no FAO flag


def test_fao_missing_variable_lists_the_variables_found(tmp_path):
    with pytest.raises(SourceError) as exc:
        _fao(tmp_path, series="SDG 6.4.1. Water Use Efficiency")
    assert exc.value.field == "Variable" and "'Total water withdrawal'" in str(exc.value)


def test_fao_missing_column_names_expected_and_found(tmp_path):
    with pytest.raises(SourceError) as exc:
        _fao(tmp_path, FAO_CSV.replace("Symbol", "Flag", 1))
    assert exc.value.field == "Symbol" and "'Flag'" in str(exc.value)


def test_fao_bad_value_names_line_and_year_column(tmp_path):
    with pytest.raises(SourceError) as exc:
        _fao(tmp_path, FAO_CSV.replace("55.1", "n.a."))
    assert exc.value.row == "line 3, column '2020', symbol E" and exc.value.field == "2020"


def test_fao_ragged_line_and_duplicate_country(tmp_path):
    with pytest.raises(SourceError) as exc:
        _fao(tmp_path, FAO_CSV.replace("Hyperborea, Total", "Hyperborea, Total, extra"))
    assert exc.value.row == "line 6"
    with pytest.raises(SourceError) as exc:
        _fao(tmp_path, FAO_CSV + "Atlantis, SDG 6.4.2. Water Stress, %, E, 1, 2\n")
    assert exc.value.row == "line 8" and "first on line 3" in str(exc.value)


def test_fao_real_export(shared_sources, universe):
    df = fao_aquastat.parse([LandedFile("fao_aquastat", "2024-02", shared_sources / FAO_FILE)],
                            specs_for("fao_aquastat", "2024-02"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 178 and set(df["data_year"]) == {2020} and set(df["indicator_id"]) == {"fao_water_stress"}
    got = [one(df, country=c)["value"] for c in ("India", "Egypt", "United States of America", "Saudi Arabia")]
    assert got == [66.49, 141.17, 28.16, 974.17]                   # PROVENANCE.md, checked
    assert one(df, country="Kuwait")["value"] == df["value"].max() == 3850.5   # why clip_max is 100
    assert one(df, country="India")["row_ref"] == "line 1879, column '2020', symbol E"
    kept, notes = resolve(df, universe, "fao_aquastat")
    assert notes.height == 0 and kept["iso3"].n_unique() == 178
    iso = dict(kept.select("country", "iso3").iter_rows())
    assert (iso["United States of America"], iso["Egypt"]) == ("USA", "EGY")


# ---------------------------------------------------------------- Our World in Data

OWID_WATER_CSV = ("\ufeffEntity,Code,Year," + OWID_WATER_TITLE + "\n"
                  "Atlantis,ATL,2019,54.76\n"
                  "Atlantis,ATL,2020,55\n"
                  '"Bonaire, Sint Eustatius and Saba",BES,2020,1.5\n'
                  "Europe (UN),,2020,10\n"
                  "World,OWID_WRL,2020,18.2\n"
                  "Northern Cyprus,OWID_CYN,2020,3\n"
                  "Kosovo,OWID_KOS,2020,12.5\n")
OWID_HOURS_CSV = ("Entity,Code,Year,Working hours per worker\n"
                  "Atlantis,ATL,2022,2100.5\n"
                  "Atlantis,ATL,2023,2099\n"
                  "Mu,MUU,2023,1650.25\n")


def _owid_folder(folder: Path, files: dict[str, str]) -> list[LandedFile]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return files_of(owid, folder, folder.name)


def test_owid_synthetic_aggregates_dropped_and_only_files_present_read(tmp_path):
    files = _owid_folder(tmp_path / "2099-04", {OWID_WATER: OWID_WATER_CSV, "other-chart.csv": OWID_HOURS_CSV})
    df = owid.parse(files, specs_for("owid"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    # the folder holds no annual-working-hours file: no rows for owid_working_hours, no error
    assert set(df["indicator_id"]) == {"owid_water_stress"}
    assert sorted(df.select("country", "code", "data_year", "value").rows(), key=str) == sorted([
        ("Atlantis", "ATL", 2019, 54.76), ("Atlantis", "ATL", 2020, 55.0),
        ("Bonaire, Sint Eustatius and Saba", "BES", 2020, 1.5), ("Kosovo", None, 2020, 12.5)], key=str)
    assert one(df, code="ATL", data_year=2019)["row_ref"] == f"line 2, column '{OWID_WATER_TITLE}'"


def test_owid_both_files_give_both_indicators(tmp_path):
    files = _owid_folder(tmp_path / "2099-05", {OWID_WATER: OWID_WATER_CSV, OWID_HOURS: OWID_HOURS_CSV})
    df = owid.parse(files, specs_for("owid"))
    assert dict(df.group_by("indicator_id").len().iter_rows()) == {"owid_water_stress": 4, "owid_working_hours": 3}
    assert one(df, code="MUU")["value"] == 1650.25


def test_owid_file_without_the_column_names_the_columns_found(tmp_path):
    files = _owid_folder(tmp_path / "2099-05", {OWID_HOURS: OWID_HOURS_CSV.replace(
        "Working hours per worker", "Average annual working hours")})
    with pytest.raises(SourceError) as exc:
        owid.parse(files, specs_for("owid"))
    msg = str(exc.value)
    assert exc.value.field == "Working hours per worker" and OWID_HOURS in msg
    assert "'Average annual working hours'" in msg and "'Entity'" in msg


def test_owid_bad_year_value_and_series_spelling(tmp_path):
    files = _owid_folder(tmp_path / "a", {OWID_HOURS: OWID_HOURS_CSV.replace("2023,2099", "2023e,2099")})
    with pytest.raises(SourceError) as exc:
        owid.parse(files, specs_for("owid"))
    assert exc.value.row == "line 3" and exc.value.field == "Year"
    files = _owid_folder(tmp_path / "b", {OWID_HOURS: OWID_HOURS_CSV.replace("1650.25", "about 1650")})
    with pytest.raises(SourceError) as exc:
        owid.parse(files, specs_for("owid"))
    assert exc.value.row == "line 4" and exc.value.field == "Working hours per worker"
    with pytest.raises(SourceError, match="<file name>\\|<column title>"):
        owid.parse(files, [spec(owid, "x", "Working hours per worker")])


def test_owid_folder_without_a_named_file(tmp_path):
    files = _owid_folder(tmp_path / "c", {"other-chart.csv": OWID_HOURS_CSV})
    assert owid.parse(files, specs_for("owid")).height == 0
    with pytest.raises(SourceError, match="no file matching"):
        owid.parse([], specs_for("owid"))


def test_owid_real_grapher_files(shared_sources, universe):
    water = owid.parse(files_of(owid, shared_sources / "owid/2026-04", "2026-04"), specs_for("owid", "2026-04"))
    assert set(water["indicator_id"]) == {"owid_water_stress"}
    assert water["code"].n_unique() == 179 and water["code"].null_count() == 0    # 15 aggregates dropped
    assert (water["data_year"].min(), water["data_year"].max()) == (2000, 2022)
    w2020 = water.filter(pl.col("data_year") == 2020)
    # the same values as the FAO export for the countries PROVENANCE.md checked
    assert [one(w2020, code=c)["value"] for c in ("IND", "EGY", "USA", "SAU")] == [66.49, 141.17, 28.16, 974.17]
    hours = owid.parse(files_of(owid, shared_sources / "owid/2026-05", "2026-05"), specs_for("owid", "2026-05"))
    assert set(hours["indicator_id"]) == {"owid_working_hours"}
    assert hours["code"].n_unique() == 130 and hours.filter(pl.col("data_year") == 2023).height == 129
    h2023 = hours.filter(pl.col("data_year") == 2023)
    assert [one(h2023, code=c)["value"] for c in ("USA", "KHM", "EGY")] == [1788.88, 2388.86, 2368.51]
    assert one(hours, code="DEU", data_year=2020)["value"] == 1313.57
    for df, n in ((water, 179), (hours, 130)):
        kept, notes = resolve(df, universe, "owid")
        assert notes.height == 0 and kept["iso3"].n_unique() == n


# ---------------------------------------------------------------- GHS Index

GHS_SERIES = "6.2) Socio-economic resilience"


def _ghs_bytes(header_62: str = '"6.2) Socio-economic\r\nresilience"') -> bytes:
    lines = ['Country,Year,OVERALL SCORE,"1) PREVENTION OF THE EMERGENCE OR RELEASE OF PATHOGENS",'
             f'"1.2.4a) Number of veterinarians per 100,000 people",{header_62},6.2.1) Literacy ',
             "Atlantis,2019,50.1,40,3,61.5,70",
             "Atlantis,2021,51,41,3,62.25,71",
             '"Mu, Republic of",2021,20,10,0,,15',
             "Lemuria,2021,33.3,25,1,45,50"]
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n"


def _ghs(tmp_path: Path, data: bytes | None = None, series: str = GHS_SERIES) -> pl.DataFrame:
    path = tmp_path / "2099-GHS-Index.csv"
    path.write_bytes(data if data is not None else _ghs_bytes())
    return ghs_index.parse([LandedFile("ghs_index", "2099-04", path)], [spec(ghs_index, "ghs", series)])


def test_ghs_synthetic_bom_crlf_and_line_break_in_header(tmp_path):
    df = _ghs(tmp_path)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert sorted(df.select("country", "data_year", "value").rows()) == [
        ("Atlantis", 2019, 61.5), ("Atlantis", 2021, 62.25), ("Lemuria", 2021, 45.0)]   # Mu: empty cell
    # the header spans lines 1-2, so Atlantis 2019 is on line 3
    assert one(df, country="Atlantis", data_year=2019)["row_ref"] == f"line 3, column '{GHS_SERIES}'"
    assert one(df, country="Lemuria")["row_ref"].startswith("line 6,")
    # the series is matched whitespace-normalised and case-insensitively
    assert _ghs(tmp_path, series="6.2)  SOCIO-ECONOMIC resilience").height == 3


def test_ghs_renamed_column_names_expected_and_found(tmp_path):
    with pytest.raises(SourceError) as exc:
        _ghs(tmp_path, _ghs_bytes('"6.2) Socioeconomic resilience"'))
    assert exc.value.field == GHS_SERIES and "'6.2) Socioeconomic resilience'" in str(exc.value)


def test_ghs_bad_value_and_duplicate_row(tmp_path):
    with pytest.raises(SourceError) as exc:
        _ghs(tmp_path, _ghs_bytes().replace(b"62.25", b"62.25*"))
    assert exc.value.row == f"line 4, column '{GHS_SERIES}'" and exc.value.field == GHS_SERIES
    with pytest.raises(SourceError) as exc:
        _ghs(tmp_path, _ghs_bytes() + b"Atlantis,2021,1,1,1,1,1\r\n")
    assert exc.value.row == "line 7" and "first on line 4" in str(exc.value)


def test_ghs_real_export(shared_sources, universe):
    df = ghs_index.parse([LandedFile("ghs_index", "2022-04", shared_sources / GHS_FILE)],
                         specs_for("ghs_index", "2022-04"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert dict(df.group_by("data_year").len().iter_rows()) == {2019: 195, 2021: 195}
    assert df["country"].n_unique() == 195 and set(df["indicator_id"]) == {"ghs_socioeconomic_resilience"}
    assert df.select(pl.col("value").is_between(0, 100).all()).item()
    usa = df.filter(pl.col("country") == "United States of America")
    assert dict(usa.select("data_year", "value").iter_rows()) == {2019: 73.0, 2021: 73.1}
    assert one(df, country="Denmark", data_year=2021)["value"] == 90.3
    assert one(df, country="India", data_year=2021)["value"] == 71.9
    assert one(df, country="Somalia", data_year=2021)["value"] == 35.0
    assert one(df, country="Denmark", data_year=2021)["row_ref"] == f"line 49, column '{GHS_SERIES}'"
    kept, notes = resolve(df, universe, "ghs_index")
    assert notes.height == 0 and kept["iso3"].n_unique() == 195
    assert one(kept, country="United States of America", data_year=2021)["iso3"] == "USA"


# ---------------------------------------------------------------- no override rows needed

def test_real_names_need_no_override_rows():
    with open(settings.RULES_DIR / "country_overrides.csv", newline="", encoding="utf-8") as fh:
        sources = {r["source"] for r in csv.DictReader(fh)}
    assert not sources & {m.SOURCE for m in ADAPTERS}


# ---------------------------------------------------------------- through the registry

@pytest.mark.parametrize("source,indicators,vintages", [
    ("unicef_child_labour", {"unicef_child_labour"}, ["2022-05"]),
    ("fao_aquastat", {"fao_water_stress"}, ["2024-02"]),
    ("owid", {"owid_water_stress", "owid_working_hours"}, ["2026-04", "2026-05"]),
    ("ghs_index", {"ghs_socioeconomic_resilience"}, ["2022-04"]),
])
def test_edition_2024_reads_the_mirror(shared_sources, universe, tmp_path, source, indicators, vintages):
    load = registry.load_source(source, 2024, universe, mirror=shared_sources, user_dir=tmp_path,
                                landing=tmp_path, log=lambda m: None)
    obs = load.observations
    assert obs.height > 0 and set(obs["indicator_id"]) == indicators and set(obs["source"]) == {source}
    assert load.notes.height == 0 and load.vintages == vintages
    assert obs["data_year"].max() <= 2024 and obs["iso3"].is_in(list(universe)).all()
    counts = dict(obs.group_by("indicator_id").agg(pl.col("iso3").n_unique()).iter_rows())
    if source == "fao_aquastat":
        assert counts == {"fao_water_stress": 178} and set(obs["data_year"]) == {2020}
    elif source == "ghs_index":
        assert counts == {"ghs_socioeconomic_resilience": 195} and set(obs["data_year"]) == {2019, 2021}
    elif source == "owid":
        # both vintages were released after 2024: each indicator comes from the oldest vintage carrying it
        # (one of the 130 countries of the hours file has no value in 2019-2024)
        assert counts == {"owid_water_stress": 179, "owid_working_hours": 129}
        assert load.edition_sources["released_after_edition"].all()
    else:
        assert 0 < counts["unicef_child_labour"] <= 96 and obs["data_year"].min() >= 2024 - 12
