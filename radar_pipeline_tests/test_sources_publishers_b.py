"""Adapters: World Bank WDI (bulk CSV, ONE long CSV, API v2 JSON), WGI, ITUC curated CSV,
user long file; reference parsers: UN M49, ISIC Rev.4.

Real-file tests read /work/shared via the `shared_sources` fixture; failure modes use
small synthetic files (made-up values) written to tmp_path.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from radar_pipeline.sources.adapters import ituc, user, worldbank_wdi, worldbank_wgi
from radar_pipeline.sources.reference import un_m49, unsd_isic
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, IndicatorSpec, LandedFile, SourceError, specs_for

WB_AGGREGATES = {"WLD", "EUU", "EMU", "HIC", "LMC", "UMC", "LMY", "SSF", "EAS", "ARB", "AFE", "OED"}


def landed(source: str, vintage: str, folder: Path) -> list[LandedFile]:
    return [LandedFile(source, vintage, p) for p in sorted(folder.iterdir()) if p.is_file()]


def assert_rows_point_at_file(df: pl.DataFrame, folder: Path, n: int = 25) -> None:
    """row_ref 'line N' must be the line of the file holding that record's code and value."""
    sample = df.sample(n=min(n, df.height), seed=1)
    for file, ref, code, value in sample.select("file", "row_ref", "code", "value").iter_rows():
        lines = (folder / file).read_text(encoding="utf-8-sig").split("\n")
        line = lines[int(ref.removeprefix("line ")) - 1]
        assert f'"{code}"' in line or f",{code}," in line, (ref, code, line[:80])
        nums = [float(x) for x in line.replace('"', "").split(",") if _is_num(x.replace('"', ""))]
        assert any(math.isclose(v, value, rel_tol=1e-9) for v in nums), (ref, value)


def _is_num(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- WDI real files

@pytest.fixture(scope="module")
def wdi_aggregates(shared_sources: Path) -> set[str]:
    return worldbank_wdi.aggregate_codes(landed("worldbank_wdi", "2022-04",
                                                shared_sources / "worldbank_wdi" / "2022-04"))


def test_metadata_country_flags_aggregates(wdi_aggregates):
    assert WB_AGGREGATES <= wdi_aggregates
    assert not {"USA", "CIV", "XKX", "NAM", "CHI"} & wdi_aggregates
    assert 40 <= len(wdi_aggregates) <= 60


@pytest.mark.parametrize("vintage, indicator_id, min_codes", [
    ("2019-10", "wb_informal_employment", 50),
    ("2021-07", "wb_vulnerable_employment", 170),
    ("2022-01", "wb_female_male_lfp", 170),
])
def test_wdi_bulk_real(shared_sources, wdi_aggregates, vintage, indicator_id, min_codes):
    folder = shared_sources / "worldbank_wdi" / vintage
    df = worldbank_wdi.parse(landed("worldbank_wdi", vintage, folder),
                             specs_for("worldbank_wdi", vintage), aggregates=wdi_aggregates)
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df["indicator_id"].unique().to_list() == [indicator_id]
    assert not set(df["code"]) & wdi_aggregates
    assert df["code"].n_unique() >= min_codes
    assert df["value"].is_between(0, 200).all() and df["value"].is_not_null().all()
    assert df["data_year"].min() >= 1960 and df["data_year"].max() <= int(vintage[:4])
    assert df.select("indicator_id", "code", "data_year").is_duplicated().sum() == 0
    assert_rows_point_at_file(df, folder)


def test_wdi_bulk_keeps_aggregates_without_metadata(shared_sources):
    folder = shared_sources / "worldbank_wdi" / "2021-07"
    df = worldbank_wdi.parse(landed("worldbank_wdi", "2021-07", folder),
                             specs_for("worldbank_wdi", "2021-07"))
    assert {"WLD", "EUU"} <= set(df["code"])


def test_one_campaign_long_csv_real(shared_sources, wdi_aggregates):
    folder = shared_sources / "worldbank_wdi" / "2025-06"
    df = worldbank_wdi.parse(landed("worldbank_wdi", "2025-06", folder),
                             specs_for("worldbank_wdi", "2025-06"), aggregates=wdi_aggregates)
    # poverty feeds wages only (METHODOLOGY §2: not the forced-labour proxy)
    assert set(df["indicator_id"]) == {"wb_poverty_umic"}
    assert df.height > 2000
    assert df["value"].is_between(0, 100).all()
    assert not set(df["code"]) & wdi_aggregates      # the extract does contain WLD, HIC, ...
    assert df["country"].is_not_null().all()
    assert_rows_point_at_file(df, folder)


def test_wdi_ignores_specs_for_other_series(shared_sources):
    folder = shared_sources / "worldbank_wdi" / "2021-07"
    only_other = [s for s in specs_for("worldbank_wdi") if s.series == "SL.EMP.WORK.ZS"]
    assert worldbank_wdi.parse(landed("worldbank_wdi", "2021-07", folder), only_other).height == 0


# --------------------------------------------------------------------------- WDI synthetic layouts

SPEC_X = IndicatorSpec("wb_test", "wages", "worldbank_wdi", "higher_is_riskier", "%", "*", "XX.TEST.ZS")
SPEC_X2 = IndicatorSpec("wb_test_fl", "forced_labour", "worldbank_wdi", "higher_is_riskier", "%", "*",
                        "XX.TEST.ZS")

# (name, WB code, iso2, region or None for an aggregate, {year: value})
SYNTH = [
    ("Aland Test", "AAA", "AA", "Europe & Central Asia", {2019: 10.5, 2020: 11.0}),
    ("Bravo, Rep.", "BBB", "BB", "Sub-Saharan Africa", {2020: 55.25}),
    ("Charlie", "CCC", "CC", "South Asia", {}),
    ("World", "WLD", "1W", None, {2019: 30.0, 2020: 31.0}),
    ("High income", "HIC", "XD", None, {2020: 2.0}),
]
SYNTH_EXPECTED = {("AAA", 2019, 10.5), ("AAA", 2020, 11.0), ("BBB", 2020, 55.25)}


def write_bulk(path: Path) -> None:
    years = list(range(2018, 2021))
    lines = ['\ufeff"Data Source","World Development Indicators",', "",
             '"Last Updated Date","2024-01-01",', "",
             ",".join(f'"{c}"' for c in ["Country Name", "Country Code", "Indicator Name",
                                          "Indicator Code", *map(str, years)]) + ","]
    for name, code, _, _, vals in SYNTH:
        cells = [name, code, "Test indicator (%)", "XX.TEST.ZS",
                 *[str(vals[y]) if y in vals else "" for y in years]]
        lines.append(",".join(f'"{c}"' for c in cells) + ",")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_metadata(path: Path) -> None:
    lines = ['\ufeff"Country Code","Region","IncomeGroup","SpecialNotes","TableName",']
    for name, code, _, region, _ in SYNTH:
        note = "Two-line\nnote." if code == "AAA" else ""
        lines.append(f'"{code}","{region or ""}","{"" if region is None else "High income"}","{note}","{name}",')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def api_records() -> list[dict]:
    return [{"indicator": {"id": "XX.TEST.ZS", "value": "Test indicator (%)"},
             "country": {"id": iso2, "value": name}, "countryiso3code": code if code != "HIC" else "",
             "date": str(y), "value": vals.get(y), "unit": "", "obs_status": "", "decimal": 1}
            for name, code, iso2, _, vals in SYNTH for y in (2020, 2019, 2018)]


def country_records() -> list[dict]:
    return [{"id": code, "iso2Code": iso2, "name": name,
             "region": {"id": "NA", "iso2code": "NA", "value": "Aggregates"} if region is None
             else {"id": "XYZ", "iso2code": "XY", "value": region}}
            for name, code, iso2, region, _ in SYNTH]


class FakeApi:
    """Serves API v2 pages of synthetic records, honouring per_page and page."""

    def __init__(self, error_for: str | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.error_for = error_for

    def __call__(self, url: str, params: dict) -> bytes:
        self.calls.append((url, dict(params)))
        if self.error_for and url.endswith(self.error_for):
            return json.dumps([{"message": [{"id": "120", "key": "Invalid value",
                                             "value": "The provided parameter value is not valid"}]}]).encode()
        records = country_records() if url.endswith("/country") else api_records()
        per_page, page = int(params["per_page"]), int(params["page"])
        pages = max(1, math.ceil(len(records) / per_page))
        body = [{"page": page, "pages": pages, "per_page": per_page, "total": len(records),
                 "sourceid": "2", "lastupdated": "2024-01-01"},
                records[(page - 1) * per_page: page * per_page]]
        return json.dumps(body).encode()


def rows_of(df: pl.DataFrame) -> set[tuple]:
    return set(df.filter(indicator_id="wb_test").select("code", "data_year", "value").iter_rows())


def test_bulk_with_metadata_in_folder_drops_aggregates(tmp_path):
    write_bulk(tmp_path / "API_XX.TEST.ZS_DS2_en_csv_v2_1.csv")
    write_metadata(tmp_path / "Metadata_Country_API_XX.TEST.ZS_DS2_en_csv_v2_1.csv")
    (tmp_path / "Metadata_Indicator_API_XX.TEST.ZS_DS2_en_csv_v2_1.csv").write_text(
        '"INDICATOR_CODE","INDICATOR_NAME",\n"XX.TEST.ZS","Test",\n', encoding="utf-8")
    files = landed("worldbank_wdi", "2024-01", tmp_path)
    assert worldbank_wdi.aggregate_codes(files) == {"WLD", "HIC"}
    df = worldbank_wdi.parse(files, [SPEC_X, SPEC_X2])
    assert rows_of(df) == SYNTH_EXPECTED
    assert set(df["indicator_id"]) == {"wb_test", "wb_test_fl"} and df.height == 6
    # preamble is 4 lines + header on line 5: AAA is on line 6, BBB on line 7
    assert set(df.filter(code="AAA")["row_ref"]) == {"line 6"}
    assert set(df.filter(code="BBB")["row_ref"]) == {"line 7"}


def test_bulk_indicator_code_comes_from_column_not_file_name(tmp_path):
    write_bulk(tmp_path / "API_SL.OTHER.CODE_renamed.csv")
    df = worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", tmp_path), [SPEC_X],
                             aggregates={"WLD", "HIC"})
    assert rows_of(df) == SYNTH_EXPECTED


def test_api_json_round_trip_matches_bulk_and_long(tmp_path):
    api_dir, bulk_dir, long_dir = tmp_path / "api", tmp_path / "bulk", tmp_path / "long"
    get = FakeApi()
    written = worldbank_wdi.download_api(get, "XX.TEST.ZS", api_dir, per_page=6)
    assert [p.name for p in written] == ["XX.TEST.ZS.p1.json", "XX.TEST.ZS.p2.json", "XX.TEST.ZS.p3.json"]
    assert get.calls[0] == ("https://api.worldbank.org/v2/country/all/indicator/XX.TEST.ZS",
                            {"format": "json", "per_page": 6, "page": 1})
    assert [c[1]["page"] for c in get.calls] == [1, 2, 3]
    worldbank_wdi.download_countries(get, api_dir, per_page=2)
    assert sorted(p.name for p in api_dir.glob("countries.p*.json")) == [
        "countries.p1.json", "countries.p2.json", "countries.p3.json"]

    api = worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", api_dir), [SPEC_X])
    assert rows_of(api) == SYNTH_EXPECTED       # aggregates (WLD; HIC with empty iso3) dropped
    assert api.filter(code="BBB")["country"].item() == "Bravo, Rep."
    assert api.filter(code="BBB")["file"].item() == "XX.TEST.ZS.p1.json"
    assert api.filter(code="BBB")["row_ref"].item() == "record 4"

    bulk_dir.mkdir()
    write_bulk(bulk_dir / "API_XX.TEST.ZS_DS2.csv")
    write_metadata(bulk_dir / "Metadata_Country_x.csv")
    long_dir.mkdir()
    pl.DataFrame([(y, code, name, "XX.TEST.ZS", v, "Test")
                  for name, code, _, _, vals in SYNTH for y, v in vals.items()],
                 schema=["year", "entity_code", "entity_name", "indicator_code", "value", "indicator_name"],
                 orient="row").write_csv(long_dir / "XX.TEST.ZS.csv")
    bulk = worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", bulk_dir), [SPEC_X])
    long = worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", long_dir), [SPEC_X],
                               aggregates=worldbank_wdi.aggregate_codes(landed("worldbank_wdi", "x", api_dir)))
    cols = ["indicator_id", "country", "code", "data_year", "value"]
    assert api.select(cols).sort(cols).equals(bulk.select(cols).sort(cols))
    assert api.select(cols).sort(cols).equals(long.select(cols).sort(cols))


def test_api_missing_page_is_an_error(tmp_path):
    worldbank_wdi.download_api(FakeApi(), "XX.TEST.ZS", tmp_path, per_page=6)
    (tmp_path / "XX.TEST.ZS.p2.json").unlink()
    with pytest.raises(SourceError, match=r"page 1 says 3 page.*missing \[2\]") as exc:
        worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", tmp_path), [SPEC_X])
    assert exc.value.file == "XX.TEST.ZS.p1.json"


def test_api_error_message_body_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="120 Invalid value: The provided parameter value is not valid"):
        worldbank_wdi.download_api(FakeApi(error_for="XX.TEST.ZS"), "XX.TEST.ZS", tmp_path)
    assert not list(tmp_path.glob("*.json"))
    (tmp_path / "XX.BAD.p1.json").write_text(
        '[{"message":[{"id":"120","key":"Invalid value","value":"The provided parameter value is not valid"}]}]')
    with pytest.raises(SourceError, match="Invalid value") as exc:
        worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", tmp_path), [SPEC_X])
    assert exc.value.file == "XX.BAD.p1.json"


def test_api_total_mismatch_is_an_error(tmp_path):
    worldbank_wdi.download_api(FakeApi(), "XX.TEST.ZS", tmp_path, per_page=100)
    body = json.loads((tmp_path / "XX.TEST.ZS.p1.json").read_text())
    body[1] = body[1][:-2]                          # truncated page
    (tmp_path / "XX.TEST.ZS.p1.json").write_text(json.dumps(body))
    with pytest.raises(SourceError, match="hold 13 records but the API reported total 15"):
        worldbank_wdi.parse(landed("worldbank_wdi", "2024-01", tmp_path), [SPEC_X])


def test_api_redownload_removes_stale_pages(tmp_path):
    worldbank_wdi.download_api(FakeApi(), "XX.TEST.ZS", tmp_path, per_page=6)
    worldbank_wdi.download_api(FakeApi(), "XX.TEST.ZS", tmp_path, per_page=100)
    assert [p.name for p in tmp_path.glob("*.json")] == ["XX.TEST.ZS.p1.json"]
    assert rows_of(worldbank_wdi.parse(landed("worldbank_wdi", "x", tmp_path), [SPEC_X],
                                       aggregates={"WLD", "XD"})) == SYNTH_EXPECTED


def test_bulk_non_numeric_value_names_line_and_year(tmp_path):
    path = tmp_path / "API_XX.TEST.ZS_DS2.csv"
    write_bulk(path)
    path.write_text(path.read_text(encoding="utf-8").replace('"55.25"', '"n/a?"'), encoding="utf-8")
    with pytest.raises(SourceError, match="not a number: 'n/a\\?'") as exc:
        worldbank_wdi.parse(landed("worldbank_wdi", "x", tmp_path), [SPEC_X])
    assert (exc.value.row, exc.value.field, exc.value.file) == ("line 7", "2020", path.name)


def test_html_error_page_instead_of_csv(tmp_path):
    (tmp_path / "API_XX.TEST.ZS_DS2.csv").write_text("<!DOCTYPE html><html>Service unavailable</html>")
    with pytest.raises(SourceError, match="HTML"):
        worldbank_wdi.parse(landed("worldbank_wdi", "x", tmp_path), [SPEC_X])


def test_unrecognised_csv_layout(tmp_path):
    (tmp_path / "something.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="unrecognised CSV layout"):
        worldbank_wdi.parse(landed("worldbank_wdi", "x", tmp_path), [SPEC_X])


# --------------------------------------------------------------------------- WGI

def test_wgi_rule_of_law_real(shared_sources):
    folder = shared_sources / "worldbank_wgi" / "2019"
    df = worldbank_wgi.parse(landed("worldbank_wgi", "2019", folder), specs_for("worldbank_wgi", "2019"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df["indicator_id"].unique().to_list() == ["wgi_rule_of_law"]
    assert df["value"].is_between(-3, 3).all()
    assert df["code"].n_unique() >= 190
    assert df["data_year"].min() == 1996 and df["data_year"].max() == 2018
    assert df.select("code", "data_year").is_duplicated().sum() == 0
    assert_rows_point_at_file(df, folder)


def test_wgi_quoted_newline_keeps_line_numbers(tmp_path):
    (tmp_path / "WGIData_x.csv").write_text(
        '"Country Name","Country Code","Indicator Name","Indicator Code","2017","2018",\n'
        '"Aland Test","AAA","Rule of Law:\nEstimate","RL.EST","0.5","0.75",\n'
        '"Aland Test","AAA","Rule of Law: Standard Error","RL.STD.ERR","0.2","0.2",\n'
        '"Bravo, Rep.","BBB","Rule of Law: Estimate","RL.EST","-1.25","",\n', encoding="utf-8")
    df = worldbank_wgi.parse(landed("worldbank_wgi", "2019", tmp_path), specs_for("worldbank_wgi", "2019"))
    got = set(df.select("code", "data_year", "value", "row_ref").iter_rows())
    assert got == {("AAA", 2017, 0.5, "line 2"), ("AAA", 2018, 0.75, "line 2"),
                   ("BBB", 2017, -1.25, "line 5")}


# --------------------------------------------------------------------------- ITUC

def ituc_files(tmp_path: Path, text: str, vintage: str = "2024") -> list[LandedFile]:
    folder = tmp_path / vintage
    folder.mkdir(exist_ok=True)
    (folder / "ituc.csv").write_text(text, encoding="utf-8")
    return landed("ituc", vintage, folder)


def test_ituc_curated_csv(tmp_path):
    files = ituc_files(tmp_path, "country,rating\nDenmark,1\nAAA,5+\nBravo Rep.,5 +\n\nCharlie,3\n\n")
    df = ituc.parse(files, specs_for("ituc", "2024"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    got = {r[0]: r[1:] for r in df.select("country", "code", "value", "data_year", "row_ref").iter_rows()}
    assert got == {"Denmark": (None, 1.0, 2024, "line 2"), "AAA": ("AAA", 6.0, 2024, "line 3"),
                   "Bravo Rep.": (None, 6.0, 2024, "line 4"), "Charlie": (None, 3.0, 2024, "line 6")}
    assert set(df["indicator_id"]) == {"ituc_rating"}


def test_ituc_year_column(tmp_path):
    files = ituc_files(tmp_path, "Country,Rating,Year\nDenmark,1,2023\nDenmark,2,\n")
    df = ituc.parse(files, specs_for("ituc", "2024"))
    assert sorted(df.select("data_year", "value").iter_rows()) == [(2023, 1.0), (2024, 2.0)]


@pytest.mark.parametrize("text, line, field, match", [
    ("country,rating\nDenmark,1\nChina,6\n", "line 3", "rating", "'6'"),
    ("country,rating\nDenmark,1\nChina,5++\n", "line 3", "rating", "'5\\+\\+'"),
    ("country,rating\nDenmark,\n", "line 2", "rating", "None"),
    ("country,rating\n,4\n", "line 2", "country", "empty"),
    ("country,rating,year\nDenmark,1,last\n", "line 2", "year", "'last'"),
    ("country,rating\nDenmark,1\nChina,5\nDenmark,2\n", "line 4", "country", "twice"),
])
def test_ituc_bad_rows(tmp_path, text, line, field, match):
    with pytest.raises(SourceError, match=match) as exc:
        ituc.parse(ituc_files(tmp_path, text), specs_for("ituc", "2024"))
    assert (exc.value.row, exc.value.field) == (line, field)


def test_ituc_missing_column(tmp_path):
    with pytest.raises(SourceError, match=r"missing column\(s\) \['rating'\]"):
        ituc.parse(ituc_files(tmp_path, "country,score\nDenmark,1\n"), specs_for("ituc", "2024"))


# --------------------------------------------------------------------------- user file

def user_files(tmp_path: Path, text: str) -> list[LandedFile]:
    (tmp_path / "licensed.csv").write_text(text, encoding="utf-8")
    return landed("user", "2024", tmp_path)


def test_user_file_good(tmp_path):
    files = user_files(tmp_path, "iso3,indicator_id,year,value\nAAA,ilo_weekly_hours,2022,47.5\n"
                                 "BBB,wgi_rule_of_law,2021,-0.25\nCCC,ilo_weekly_hours,2022,\n")
    df = user.parse(files, [])
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert set(df.select("code", "indicator_id", "data_year", "value", "row_ref", "source").iter_rows()) == {
        ("AAA", "ilo_weekly_hours", 2022, 47.5, "line 2", "user"),
        ("BBB", "wgi_rule_of_law", 2021, -0.25, "line 3", "user")}


@pytest.mark.parametrize("row, field, match", [
    ("AAA,no_such_indicator,2022,1", "indicator_id", "unknown indicator_id"),
    ("AAA,ilo_weekly_hours,2022,forty", "value", "not a number: 'forty'"),
    ("AAA,ilo_weekly_hours,2022.5,40", "year", "not an integer"),
    ("AAAA,ilo_weekly_hours,2022,40", "iso3", "3-letter"),
    ("BBB,ilo_weekly_hours,2022,41", "iso3", "twice"),
])
def test_user_file_bad_row_is_quarantined_and_the_rest_used(tmp_path, row, field, match):
    files = user_files(tmp_path, f"iso3,indicator_id,year,value\nBBB,ilo_weekly_hours,2022,40\n{row}\n"
                                 "CCC,ilo_weekly_hours,2022,42\n")
    df = user.parse(files, [])
    assert df.select("code", "row_ref").rows() == [("BBB", "line 2"), ("CCC", "line 4")]
    bad = user.quarantined(files).rows(named=True)
    assert [(b["file"], b["row_ref"]) for b in bad] == [("licensed.csv", "line 3")]
    assert bad[0]["reason"].startswith(f"field '{field}': ") and match in bad[0]["reason"]


def test_user_file_wrong_header(tmp_path):
    with pytest.raises(SourceError, match="missing column"):
        user.parse(user_files(tmp_path, "country,indicator,year,value\nAAA,x,2022,1\n"), [])


# --------------------------------------------------------------------------- UN M49

def test_m49_real(shared_sources):
    path = shared_sources / "un_m49" / "2022" / "UNSD_Methodology.csv"
    raw = un_m49.read_m49_file(path)
    assert raw.height == 249                                     # the export's data rows
    df = un_m49.parse_countries(path)
    assert df.columns == ["iso3", "iso2", "m49", "name", "region", "subregion",
                          "intermediate_region", "ldc", "lldc", "sids"]
    assert df.height == 247                                      # minus Antarctica, Sark (no ISO3)
    assert "ATA" not in df["iso3"].to_list()
    civ = df.filter(iso3="CIV").row(0, named=True)
    assert (civ["region"], civ["subregion"], civ["intermediate_region"], civ["m49"]) == (
        "Africa", "Sub-Saharan Africa", "Western Africa", "384")
    assert df.filter(iso3="NAM")["iso2"].item() == "NA"          # not read as missing
    assert df.filter(iso3="DZA")["m49"].item() == "012"          # zero-padded string
    assert df.filter(iso3="AFG").select("ldc", "lldc", "sids").row(0) == (True, True, False)
    assert df["region"].is_not_null().all() and df["iso3"].is_unique().all()


def test_m49_duplicate_iso3_is_an_error(tmp_path):
    header = ("Global Code;Global Name;Region Code;Region Name;Sub-region Code;Sub-region Name;"
              "Intermediate Region Code;Intermediate Region Name;Country or Area;M49 Code;"
              "ISO-alpha2 Code;ISO-alpha3 Code;Least Developed Countries (LDC);"
              "Land Locked Developing Countries (LLDC);Small Island Developing States (SIDS)")
    path = tmp_path / "UNSD_Methodology.csv"
    path.write_text("\ufeff" + header + "\n001;World;002;Africa;015;Northern Africa;;;Aland;901;AA;AAA;x;;\n"
                    "001;World;002;Africa;015;Northern Africa;;;Bland;902;AB;AAA;;;\n"
                    "001;World;;;;;;;Cold;903;CC;CCC;;;\n", encoding="utf-8")
    with pytest.raises(SourceError, match="'AAA' appears twice") as exc:
        un_m49.parse_countries(path)
    assert exc.value.row == "line 3"
    path.write_text(path.read_text(encoding="utf-8-sig").replace("AB;AAA", "AB;ab1"), encoding="utf-8")
    with pytest.raises(SourceError, match="fails validation"):
        un_m49.parse_countries(path)


# --------------------------------------------------------------------------- ISIC

def test_isic_real(shared_sources):
    df = unsd_isic.parse_isic(shared_sources / "unsd_isic" / "rev4" / "ISIC_Rev_4_english_structure.txt")
    assert dict(df["level"].value_counts().iter_rows()) == {
        "section": 21, "division": 88, "group": 238, "class": 419}
    by_code = {r["code"]: r for r in df.iter_rows(named=True)}
    assert by_code["0127"]["is_primary_producer"] is True
    assert by_code["1410"]["is_primary_producer"] is False
    assert by_code["0170"]["is_primary_producer"] is False      # hunting: division 01 but group 017
    assert by_code["0510"]["is_primary_producer"] is True
    assert (by_code["0729"]["section"], by_code["0729"]["division"], by_code["0729"]["grp"]) == ("B", "07", "072")
    assert by_code["1410"]["section"] == "C"
    assert by_code["35"]["section"] == "D" and by_code["35"]["grp"] is None
    assert by_code["A"]["division"] is None and by_code["A"]["is_primary_producer"] is False
    assert not by_code["A"]["title"].startswith('"') and not by_code["A"]["title"].endswith("\r")
    assert df["is_primary_producer"].is_not_null().all()


def test_isic_bad_rows(tmp_path):
    path = tmp_path / "ISIC_Rev_4_english_structure.txt"
    path.write_text('"Code","Description"\r\n"A","Agri"\r\n"01","Crops"\r\n"011","Non-perennial"\r\n'
                    '"01X1","Broken"\r\n', encoding="utf-8")
    with pytest.raises(SourceError, match="'01X1'") as exc:
        unsd_isic.parse_isic(path)
    assert exc.value.row == "line 5"
    path.write_text('"Code","Description"\n"01","Crops"\n"A","Agri"\n', encoding="utf-8")
    with pytest.raises(SourceError, match="before any section"):
        unsd_isic.parse_isic(path)
    path.write_text('"Code","Description"\n"A","Agri"\n"01","Crops"\n"0111","Cereals"\n', encoding="utf-8")
    with pytest.raises(SourceError, match="not below its parent '011'"):
        unsd_isic.parse_isic(path)


def test_api_indicator_without_data(tmp_path):
    def get(url, params):
        return b'[{"page":0,"pages":0,"per_page":20000,"total":0,"sourceid":null,"lastupdated":null},null]'
    assert [p.name for p in worldbank_wdi.download_api(get, "XX.TEST.ZS", tmp_path)] == ["XX.TEST.ZS.p1.json"]
    df = worldbank_wdi.parse(landed("worldbank_wdi", "x", tmp_path), [SPEC_X])
    assert df.height == 0 and df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
