"""Publisher adapters: TI CPI, Yale EPI, Freedom House FIW, FSI, UNDP GII, ND-GAIN.

Real-file tests read the publisher files from the `shared_sources` fixture and
check values PROVENANCE.md records as "Checked"; failure-mode tests use small
synthetic files (made-up values) in the publishers' layouts, written to tmp_path.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.sources.adapters import freedom_house_fiw, fund_for_peace_fsi, nd_gain, ti_cpi, undp_gii, yale_epi
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, IndicatorSpec, LandedFile, SourceError, specs_for
from radar_pipeline_tests.workbooks import write_xlsx

ADAPTERS = [ti_cpi, yale_epi, freedom_house_fiw, fund_for_peace_fsi, undp_gii, nd_gain]


# ---------------------------------------------------------------- helpers

def landed(module, folder: Path, vintage: str) -> list[LandedFile]:
    paths = sorted({p for pat in module.FILE_PATTERNS for p in folder.glob(pat)})
    return [LandedFile(module.SOURCE, vintage, p) for p in paths]


def run_real(module, shared: Path, vintage: str, specs=None) -> pl.DataFrame:
    files = landed(module, shared / module.SOURCE / vintage, vintage)
    assert files, f"no {module.SOURCE} file for {vintage}"
    return module.parse(files, specs if specs is not None else specs_for(module.SOURCE, vintage))


def one(df: pl.DataFrame, **where) -> dict:
    rows = df.filter(*[pl.col(k) == v for k, v in where.items()])
    assert rows.height == 1, f"{where}: {rows.height} rows"
    return rows.row(0, named=True)


def spec(source: str, indicator_id: str, series: str) -> IndicatorSpec:
    return IndicatorSpec(indicator_id, "topic", source, "lower_is_riskier", "u", "*", series)




def one_file(module, path: Path, vintage: str = "2023") -> list[LandedFile]:
    return [LandedFile(module.SOURCE, vintage, path)]


HTML = b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head></html>"


# ---------------------------------------------------------------- contract

@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_module_contract(module):
    assert module.SOURCE == module.__name__.rsplit(".", 1)[-1]
    assert module.FILE_PATTERNS and all(isinstance(p, str) for p in module.FILE_PATTERNS)
    assert specs_for(module.SOURCE), f"no indicators.csv row for {module.SOURCE}"
    empty = module.parse([], [])
    assert empty.schema == pl.Schema(RAW_OBSERVATION_SCHEMA) and empty.height == 0


@pytest.mark.parametrize("module,suffix", [(ti_cpi, ".xlsx"), (yale_epi, ".csv"),
                                           (freedom_house_fiw, ".xlsx"),
                                           (fund_for_peace_fsi, ".xlsx"), (undp_gii, ".csv"),
                                           (nd_gain, ".csv")],
                         ids=lambda m: getattr(m, "SOURCE", m))
@pytest.mark.parametrize("content,needle", [(HTML, "HTML"), (b"", "empty"), (b"  \n", "empty")])
def test_error_page_or_empty_file_is_a_source_error(tmp_path, module, suffix, content, needle):
    vintage = "2022"
    name = "gain.csv" if module is nd_gain else f"download_results{suffix}"
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as exc:
        module.parse([LandedFile(module.SOURCE, vintage, path)], specs_for(module.SOURCE, vintage))
    assert needle in str(exc.value) and name in str(exc.value)
    assert exc.value.source == module.SOURCE


# ---------------------------------------------------------------- TI CPI

def test_cpi_real_workbook(shared_sources):
    df = run_real(ti_cpi, shared_sources, "2023")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert one(df, code="DNK", data_year=2023)["value"] == 90
    assert one(df, code="SOM", data_year=2023)["value"] == 11
    assert one(df, code="DNK", data_year=2023)["country"] == "Denmark"
    per_year = dict(df.group_by("data_year").len().iter_rows())
    assert per_year[2023] == 180 and per_year[2022] == 180  # 2022 comes from the timeseries sheet
    assert min(per_year) == 2012 and max(per_year) == 2023
    assert one(df, code="KSV", data_year=2023)["country"] == "Kosovo"  # TI's code kept as is
    ref = one(df, code="DNK", data_year=2022)["row_ref"]
    assert ref.startswith("sheet 'CPI Timeseries") and "column 'CPI score 2022'" in ref
    assert df.select(pl.col("value").is_between(0, 100).all()).item()
    assert df.filter(pl.col("data_year") == 2013).height > 150  # "CPI Score 2013": capital S


def _cpi_rows(score_label: str) -> list[list]:
    return [["Corruption Perceptions Index 2023: made-up test sheet"], ["EMBARGOED"], [],
            ["Country / Territory", "ISO3", "Region", score_label, "Rank"],
            ["Atlantis", "ATL", "WE/EU", 71, 1], ["Lemuria", "LEM", "AP", None, 2],
            ["Mu", "MUU", "AP", 12, 3]]


def test_cpi_falls_back_to_main_sheet_and_locates_header(tmp_path):
    path = write_xlsx(tmp_path / "cpi.xlsx", {"CPI 2023": _cpi_rows("CPI score 2023"),
                                              "Notes": [["x"]]})
    df = ti_cpi.parse(one_file(ti_cpi, path), specs_for("ti_cpi", "2023"))
    assert df.sort("code")["code"].to_list() == ["ATL", "MUU"]  # empty score dropped
    atl = one(df, code="ATL")
    assert atl["value"] == 71 and atl["data_year"] == 2023 and atl["country"] == "Atlantis"
    assert atl["row_ref"].startswith("sheet 'CPI 2023' row 5,")  # header on row 4


def test_cpi_without_score_column_names_sheets_and_columns(tmp_path):
    path = write_xlsx(tmp_path / "cpi.xlsx", {"CPI 2023": _cpi_rows("Score")})
    with pytest.raises(SourceError) as exc:
        ti_cpi.parse(one_file(ti_cpi, path), specs_for("ti_cpi", "2023"))
    msg = str(exc.value)
    assert "CPI score {year}" in msg and "'CPI 2023'" in msg and "'Score'" in msg


def test_cpi_non_numeric_score_names_row_and_column(tmp_path):
    rows = _cpi_rows("CPI score 2023")
    rows[6][3] = "n.a.x"
    path = write_xlsx(tmp_path / "cpi.xlsx", {"CPI Timeseries 2012 - 2023": rows})
    with pytest.raises(SourceError) as exc:
        ti_cpi.parse(one_file(ti_cpi, path), specs_for("ti_cpi", "2023"))
    assert "row 7" in str(exc.value) and "CPI score 2023" in str(exc.value)


def test_cpi_truncated_workbook(tmp_path, shared_sources):
    data = (shared_sources / "ti_cpi/2023/CPI2023_GlobalResultsTrends.xlsx").read_bytes()
    path = tmp_path / "cpi.xlsx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated"):
        ti_cpi.parse(one_file(ti_cpi, path), specs_for("ti_cpi", "2023"))


# ---------------------------------------------------------------- Yale EPI

@pytest.mark.parametrize("vintage,climate,pollutant", [("2020", "CCH.new", "APE.new"),
                                                       ("2022", "PCC.new", "ACD.new"),
                                                       ("2024", "PCC.new", "APO.new")])
def test_epi_real_files_with_their_own_columns(shared_sources, vintage, climate, pollutant):
    df = run_real(yale_epi, shared_sources, vintage)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    counts = dict(df.group_by("indicator_id").len().iter_rows())
    assert set(counts) == {s.indicator_id for s in specs_for("yale_epi", vintage)}
    assert counts["epi_h2o"] == 180 and 120 <= counts["epi_ecs"] <= 180
    assert df["data_year"].unique().to_list() == [int(vintage)]
    assert one(df, code="DNK", indicator_id="epi_climate_mitigation")["row_ref"].endswith(
        f"column '{climate}'")
    assert one(df, code="DNK", indicator_id="epi_pollutant_emissions")["row_ref"].endswith(
        f"column '{pollutant}'")
    assert df.select(pl.col("value").is_between(0, 100).all()).item()


def test_epi_checked_values(shared_sources):
    epi = [spec("yale_epi", "epi_total", "EPI.new")]
    y22 = run_real(yale_epi, shared_sources, "2022", epi)
    assert one(y22, code="DNK")["value"] == 77.9
    y24 = run_real(yale_epi, shared_sources, "2024", epi)
    assert [one(y24, code=c)["value"] for c in ("EST", "LUX", "DEU", "FIN")] == [75.3, 75.0, 74.6, 73.7]
    assert y24["value"].max() == 75.3


EPI_CSV = ('"code","iso","country","EPI.new","H2O.new","ACD.new","BDH.new","ECS.new","WMG.new"\n'
           '1,"ATL","Atlantis",50.1,60.2,NA,40,30,20\n'
           '2,"LEM","Lemuria",44,NA,55.5,41,31,21\n')


def test_epi_missing_registry_column_names_column_and_vintage(tmp_path):
    path = tmp_path / "epi2022results.csv"
    path.write_text(EPI_CSV)  # no PCC.new, which the registry wants for 2022
    with pytest.raises(SourceError) as exc:
        yale_epi.parse(one_file(yale_epi, path, "2022"), specs_for("yale_epi", "2022"))
    assert "PCC.new" in str(exc.value) and "2022" in str(exc.value) and exc.value.field == "PCC.new"


def test_epi_synthetic_na_dropped_and_line_numbers(tmp_path):
    path = tmp_path / "epi2022results.csv"
    path.write_text(EPI_CSV)
    specs = [spec("yale_epi", "epi_h2o", "H2O.new"), spec("yale_epi", "epi_acd", "ACD.new")]
    df = yale_epi.parse(one_file(yale_epi, path, "2022"), specs)
    assert sorted(df.select("code", "indicator_id", "value").rows()) == [
        ("ATL", "epi_h2o", 60.2), ("LEM", "epi_acd", 55.5)]
    assert one(df, code="LEM")["row_ref"] == "line 3, column 'ACD.new'"


def test_epi_non_numeric_value_is_an_error(tmp_path):
    path = tmp_path / "epi2022results.csv"
    path.write_text(EPI_CSV.replace("60.2", "sixty"))
    with pytest.raises(SourceError) as exc:
        yale_epi.parse(one_file(yale_epi, path, "2022"), [spec("yale_epi", "epi_h2o", "H2O.new")])
    assert exc.value.row == "line 2, column 'H2O.new'" and "'sixty'" in str(exc.value)


# ---------------------------------------------------------------- Freedom House

@pytest.mark.parametrize("vintage,rows,last", [("2022", 2095, 2022), ("2024", 2515, 2024)])
def test_fh_real_workbooks(shared_sources, vintage, rows, last):
    df = run_real(freedom_house_fiw, shared_sources, vintage)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert dict(df.group_by("indicator_id").len().iter_rows()) == {"fh_d2": rows, "fh_e3": rows, "fh_f4": rows}
    assert (df["data_year"].min(), df["data_year"].max()) == (2013, last)
    assert df["code"].null_count() == df.height
    assert df.filter(pl.col("data_year") == last).height // 3 in range(205, 215)
    assert df.select(pl.col("value").is_between(0, 4).all()).item()


def test_fh_checked_values_2024(shared_sources):
    df = run_real(freedom_house_fiw, shared_sources, "2024").filter(pl.col("data_year") == 2024)
    assert one(df, country="Denmark", indicator_id="fh_d2")["value"] == 4
    assert one(df, country="Denmark", indicator_id="fh_f4")["value"] == 3
    assert one(df, country="China", indicator_id="fh_d2")["value"] == 0
    assert one(df, country="China", indicator_id="fh_f4")["value"] == 0


def _fiw_rows(d2: str = "D2") -> list[list]:
    return [["Freedom in the World 2013-2024 Raw Data (made up)"],
            ["Country/Territory", "Region", "C/T", "Edition", "Status", d2, "E3", "F4", "Total"],
            ["Atlantis", "Europe", "c", 2024, "F", 4, 4, 2, 90],
            ["Atlantis", "Europe", "c", 2023, "F", 3, 3, None, 88],
            [" Lemuria ", "Asia", "t", 2024, "NF", 0, 0, 1, 10]]


def test_fh_synthetic_header_by_content(tmp_path):
    path = write_xlsx(tmp_path / "fiw.xlsx", {"Index": [["notes"]], "FIW13-24": _fiw_rows()})
    df = freedom_house_fiw.parse(one_file(freedom_house_fiw, path, "2024"),
                                 specs_for("freedom_house_fiw", "2024"))
    assert df.height == 8  # D2, E3 and F4 of three rows; Atlantis 2023 F4 empty -> dropped
    assert one(df, country="Lemuria", indicator_id="fh_e3")["value"] == 0
    lem = one(df, country="Lemuria", indicator_id="fh_f4")
    assert lem["value"] == 1 and lem["data_year"] == 2024
    assert lem["row_ref"] == "sheet 'FIW13-24' row 5, column 'F4'"
    assert one(df, country="Atlantis", indicator_id="fh_d2", data_year=2023)["value"] == 3


def test_fh_renamed_column_names_expected_column(tmp_path):
    path = write_xlsx(tmp_path / "fiw.xlsx", {"FIW13-24": _fiw_rows(d2="D2 religion")})
    with pytest.raises(SourceError) as exc:
        freedom_house_fiw.parse(one_file(freedom_house_fiw, path, "2024"),
                                specs_for("freedom_house_fiw", "2024"))
    msg = str(exc.value)
    assert exc.value.field == "D2" and "['D2'" in msg and "'D2 religion'" in msg


def test_fh_without_fiw_sheet(tmp_path):
    path = write_xlsx(tmp_path / "fiw.xlsx", {"Data": _fiw_rows()})
    with pytest.raises(SourceError, match="FIW"):
        freedom_house_fiw.parse(one_file(freedom_house_fiw, path, "2024"),
                                specs_for("freedom_house_fiw", "2024"))


# ---------------------------------------------------------------- Fragile States Index

def test_fsi_real_workbook(shared_sources):
    df = run_real(fund_for_peace_fsi, shared_sources, "2023")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df.height == 179 and df["country"].n_unique() == 179
    assert df["data_year"].unique().to_list() == [2023]
    assert one(df, country="Somalia")["value"] == 8.7
    assert one(df, country="Finland")["value"] == 0.3
    assert one(df, country="Somalia")["row_ref"] == "sheet 'Sheet1' row 2, column 'C3: Group Grievance'"


def _fsi_rows(c3: str = "C3: Group Grievance", year=2023) -> list[list]:
    return [["Country", "Year", "Rank", "Total", "S1: Demographic Pressures", c3],
            ["Atlantis", year, "1st", 100.5, 9.9, 7.25],
            ["Lemuria", year, "2nd", 20.0, 1.0, None]]


def test_fsi_year_stored_as_date(tmp_path):
    path = write_xlsx(tmp_path / "fsi.xlsx", {"Sheet1": _fsi_rows(year=dt.datetime(2019, 1, 1))})
    df = fund_for_peace_fsi.parse(one_file(fund_for_peace_fsi, path, "2019"),
                                  specs_for("fund_for_peace_fsi", "2019"))
    assert df.select("country", "data_year", "value").rows() == [("Atlantis", 2019, 7.25)]


def test_fsi_renamed_column_names_expected_column(tmp_path):
    path = write_xlsx(tmp_path / "fsi.xlsx", {"Sheet1": _fsi_rows(c3="C3 Group Grievance")})
    with pytest.raises(SourceError) as exc:
        fund_for_peace_fsi.parse(one_file(fund_for_peace_fsi, path),
                                 specs_for("fund_for_peace_fsi", "2023"))
    assert exc.value.field == "C3: Group Grievance" and "'C3 Group Grievance'" in str(exc.value)


def test_fsi_bad_year_is_an_error(tmp_path):
    path = write_xlsx(tmp_path / "fsi.xlsx", {"Sheet1": _fsi_rows(year="recent")})
    with pytest.raises(SourceError) as exc:
        fund_for_peace_fsi.parse(one_file(fund_for_peace_fsi, path),
                                 specs_for("fund_for_peace_fsi", "2023"))
    assert exc.value.field == "Year" and "row 2" in exc.value.row


# ---------------------------------------------------------------- UNDP GII

def test_gii_real_file(shared_sources):
    df = run_real(undp_gii, shared_sources, "2020")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert set(df["data_year"].unique()) == {1995, 2000, 2005, *range(2010, 2020)}
    assert 150 <= df.filter(pl.col("data_year") == 2019).height <= 195
    assert df["country"].str.starts_with(" ").sum() == 0
    assert df.filter(pl.col("country").str.contains("(?i)world|human development|states$")
                     & ~pl.col("country").str.contains("United States|Micronesia")).height == 0
    assert df.select(pl.col("value").is_between(0, 1).all()).item()
    assert df["code"].null_count() == df.height
    assert df["row_ref"].str.contains(r"^line \d+, column '\d{4}'$").all()
    assert df["row_ref"].str.extract(r"^line (\d+)").cast(int).min() >= 7  # header on line 6


GII_CSV = """Gender Inequality Index (GII),,,,,,
Dimension: Gender,,,,,,
"Definition: made up, for a test",,,,,,
HDI Rank,Country,2018,,2019,,
1, Atlantis,0.1,a,0.09,,
2," Lemuria, Rep. of",..,,0.5,,
.., Mu,0.7,,..,,
,Very high human development,0.17,,0.16,,
,Arab States,0.53,,0.52,,
,World,0.44,,0.43,,
"a. Footnote text, made up.",,,,,,
Source: nothing real.,,,,,,
"""


def test_gii_drops_aggregates_and_footnotes(tmp_path):
    path = tmp_path / "gii.csv"
    path.write_text(GII_CSV)
    df = undp_gii.parse(one_file(undp_gii, path, "2020"), specs_for("undp_gii", "2020"))
    assert sorted(df.select("country", "data_year", "value").rows()) == [
        ("Atlantis", 2018, 0.1), ("Atlantis", 2019, 0.09), ("Lemuria, Rep. of", 2019, 0.5),
        ("Mu", 2018, 0.7)]
    assert one(df, country="Mu")["row_ref"] == "line 7, column '2018'"
    assert set(df["indicator_id"]) == {"undp_gii"}


def test_gii_renamed_country_column(tmp_path):
    path = tmp_path / "gii.csv"
    path.write_text(GII_CSV.replace("HDI Rank,Country", "HDI Rank,Economy"))
    with pytest.raises(SourceError) as exc:
        undp_gii.parse(one_file(undp_gii, path, "2020"), specs_for("undp_gii", "2020"))
    assert exc.value.field == "Country" and "'Economy'" in str(exc.value)


def test_gii_other_hdr_table_is_refused(tmp_path):
    path = tmp_path / "gii.csv"
    path.write_text(GII_CSV.replace("Gender Inequality Index (GII)", "Human Development Index (HDI)"))
    with pytest.raises(SourceError, match="GII"):
        undp_gii.parse(one_file(undp_gii, path, "2020"), specs_for("undp_gii", "2020"))


# ---------------------------------------------------------------- ND-GAIN

def test_ndgain_real_file(shared_sources):
    df = run_real(nd_gain, shared_sources, "2021")
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df["file"].unique().to_list() == ["gain.csv"]  # readiness/vulnerability not read
    assert set(df["indicator_id"]) == {"ndgain_index"}
    assert (df["data_year"].min(), df["data_year"].max()) == (1995, 2019)
    assert 170 <= df["code"].n_unique() <= 192
    assert one(df, code="DNK", data_year=2019)["country"] == "Denmark"
    assert df.select(pl.col("value").is_between(0, 100).all()).item()


ND_CSV = '"ISO3","Name","2018","2019"\n"ATL","Atlantis",55.5,\n"LEM","Lemuria",NA,33.25\n'


def test_ndgain_reads_only_the_series_file(tmp_path):
    (tmp_path / "gain.csv").write_text(ND_CSV)
    (tmp_path / "readiness.csv").write_bytes(HTML)  # not named by any spec: never opened
    files = landed(nd_gain, tmp_path, "2021")
    df = nd_gain.parse(files, specs_for("nd_gain", "2021"))
    assert sorted(df.select("code", "data_year", "value").rows()) == [
        ("ATL", 2018, 55.5), ("LEM", 2019, 33.25)]
    assert one(df, code="LEM")["row_ref"] == "line 3, column '2019'"


def test_ndgain_missing_series_file(tmp_path):
    (tmp_path / "readiness.csv").write_text(ND_CSV)
    with pytest.raises(SourceError) as exc:
        nd_gain.parse(landed(nd_gain, tmp_path, "2021"), specs_for("nd_gain", "2021"))
    assert "gain.csv" in str(exc.value) and "readiness.csv" in str(exc.value)


def test_ndgain_renamed_code_column(tmp_path):
    (tmp_path / "gain.csv").write_text(ND_CSV.replace('"ISO3"', '"ISO"'))
    with pytest.raises(SourceError) as exc:
        nd_gain.parse(landed(nd_gain, tmp_path, "2021"), specs_for("nd_gain", "2021"))
    assert exc.value.field == "ISO3" and "'ISO'" in str(exc.value)
