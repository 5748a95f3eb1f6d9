"""WGI adapter: the wide bulk CSV (2019, 2023-09), the 2024 LONG workbook and the CSV
export of that long table all give the same rows. Real files from `shared_sources`;
layout tests use small synthetic files (made-up values) in the publisher's layouts."""
from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest

from radar_pipeline.sources import registry
from radar_pipeline.sources.adapters import worldbank_wgi
from radar_pipeline.sources.reference import un_m49
from radar_pipeline.sources.toolkit import RAW_OBSERVATION_SCHEMA, IndicatorSpec, LandedFile, SourceError, specs_for


def landed(folder: Path, vintage: str) -> list[LandedFile]:
    return [LandedFile("worldbank_wgi", vintage, p) for p in sorted(folder.iterdir()) if p.is_file()]


def spec(series: str, indicator_id: str = "x") -> IndicatorSpec:
    return IndicatorSpec(indicator_id, "forced_labour", "worldbank_wgi", "lower_is_riskier", "u", "*",
                         series)


# ---------------------------------------------------------------- real files

@pytest.mark.slow
def test_real_2024_long_workbook_rule_of_law_2023(shared_sources):
    folder = shared_sources / "worldbank_wgi" / "2024-09"
    df = worldbank_wgi.parse(landed(folder, "2024-09"), specs_for("worldbank_wgi", "2024-09"))
    assert df.schema == pl.Schema(RAW_OBSERVATION_SCHEMA)
    assert df["indicator_id"].unique().to_list() == ["wgi_rule_of_law"]
    rl23 = df.filter(pl.col("data_year") == 2023)
    assert rl23["code"].n_unique() >= 200
    assert rl23.select("code").is_duplicated().sum() == 0
    assert df["value"].is_between(-3, 3).all()
    assert df["data_year"].min() == 1996
    # `..` cells are gaps, not zeros: the file has 214 economies but rl 2023 values for 213
    assert rl23.height == 213
    # row_ref points at the workbook cell the value came from
    row = rl23.filter(pl.col("code") == "DNK").row(0, named=True)
    assert row["row_ref"].startswith("sheet 'Sheet1' row ") and row["row_ref"].endswith("column 'estimate'")
    ws = openpyxl.load_workbook(folder / "wgidataset.xlsx", read_only=True).active
    sheet_row = int(row["row_ref"].split(" row ")[1].split(",")[0])
    cells = next(ws.iter_rows(min_row=sheet_row, max_row=sheet_row, values_only=True))
    assert cells[1] == "DNK" and int(cells[3]) == 2023 and cells[4] == "rl"
    # the publisher's double, bit for bit (fastexcel's cell text keeps only 10 significant digits)
    assert row["value"] == float(cells[5])
    cells_rl23 = {c[1]: c[5] for c in ws.iter_rows(min_row=2, values_only=True)
                  if c[4] == "rl" and c[3] == 2023 and isinstance(c[5], float)}
    got = dict(rl23.select("code", "value").iter_rows())
    assert got == cells_rl23


def test_real_wide_and_long_vintages_agree_where_unrevised(shared_sources):
    """The 2023-09 wide CSV and the 2024-09 long workbook describe the same series; most
    back-year values are identical, so a misread column (stddev for estimate) would show."""
    root = shared_sources / "worldbank_wgi"
    specs = specs_for("worldbank_wgi", "2024-09")
    wide = worldbank_wgi.parse(landed(root / "2023-09", "2023-09"), specs)
    long = worldbank_wgi.parse(landed(root / "2024-09", "2024-09"), specs)
    assert wide["data_year"].max() == 2022 and long["data_year"].max() == 2023
    j = wide.join(long, on=["code", "data_year"], suffix="_long").filter(pl.col("data_year") == 2010)
    assert j.height >= 190
    assert ((j["value"] - j["value_long"]).abs() < 1e-6).mean() > 0.9


def test_edition_2024_on_shared_mirror_uses_2024_update(shared_sources):
    uni = set(un_m49.parse_countries(shared_sources / "un_m49/2022/UNSD_Methodology.csv")["iso3"])
    load = registry.load_source("worldbank_wgi", 2024, uni, mirror=shared_sources, log=lambda m: None)
    obs = load.observations
    rl23 = obs.filter((pl.col("indicator_id") == "wgi_rule_of_law") & (pl.col("data_year") == 2023))
    assert rl23["vintage"].unique().to_list() == ["2024-09"]
    assert rl23["iso3"].n_unique() >= 200
    # the long file's legacy WGI codes reach their ISO3 country (rules/country_overrides.csv)
    assert {"AND", "ROU", "COD", "TLS", "PSE"} <= set(rl23["iso3"])
    legacy = load.notes.filter(pl.col("code").is_in(["ADO", "ROM", "ZAR", "TMP", "WBG"]))
    assert legacy.height == 0


# ---------------------------------------------------------------- one set of rows, three layouts

VALUES = {("AAA", "Aland Test", 2022): (0.5, 0.21), ("AAA", "Aland Test", 2023): (0.75, None),
          ("BBB", "Bravo, Rep.", 2022): (-1.25, 0.3), ("BBB", "Bravo, Rep.", 2023): (None, None)}


def _wide(path: Path) -> None:
    lines = ['"Country Name","Country Code","Indicator Name","Indicator Code","2022","2023",']
    for code, name in (("AAA", "Aland Test"), ("BBB", "Bravo, Rep.")):
        for series, k, label in (("RL.EST", 0, "Rule of Law:\nEstimate"),
                                 ("RL.STD.ERR", 1, "Rule of Law: Standard Error")):
            vals = ["" if VALUES[code, name, y][k] is None else str(VALUES[code, name, y][k])
                    for y in (2022, 2023)]
            lines.append(",".join(f'"{v}"' for v in [name, code, label, series, *vals]) + ",")
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


def _long_rows() -> list[list]:
    rows = []
    for (code, name, year), (est, sd) in VALUES.items():
        for ind in ("cc", "rl"):
            rows.append([f"{code}{ind}{year}", code, name, year, ind,
                         ".." if est is None else est, ".." if sd is None else sd, 3, 50.0, 40.0, 60.0])
    return rows


HEADER = ["codeindyr", "code", "countryname", "year", "indicator", "estimate", "stddev", "nsource",
          "pctrank", "pctranklower", "pctrankupper"]


def _long_xlsx(path: Path, title_rows: int = 0) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    for _ in range(title_rows):
        ws.append(["Worldwide Governance Indicators (synthetic)"])
    ws.append(HEADER)
    for r in _long_rows():
        ws.append([float(v) if i == 3 else v for i, v in enumerate(r)])  # year stored as a number
    wb.save(path)


def _long_csv(path: Path) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(_long_rows())


@pytest.mark.parametrize("writer,name", [(_wide, "WGIData.csv"), (_long_xlsx, "wgidataset.xlsx"),
                                         (_long_csv, "wgidataset_export.csv")])
def test_every_layout_gives_the_same_rows(tmp_path, writer, name):
    writer(tmp_path / name)
    df = worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST", "est"), spec("RL.STD.ERR", "sd")])
    got = set(df.select("indicator_id", "code", "country", "data_year", "value").iter_rows())
    want = {("est", c, n, y, e) for (c, n, y), (e, _) in VALUES.items() if e is not None} \
        | {("sd", c, n, y, s) for (c, n, y), (_, s) in VALUES.items() if s is not None}
    assert got == want


def test_long_xlsx_header_below_a_title_and_row_refs(tmp_path):
    _long_xlsx(tmp_path / "wgidataset.xlsx", title_rows=2)
    df = worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])
    # header on row 3; VALUES' first key is written on rows 4 (cc) and 5 (rl)
    assert one_ref(df, "AAA", 2022) == "sheet 'Sheet1' row 5, column 'estimate'"


def test_long_csv_row_refs_are_lines(tmp_path):
    _long_csv(tmp_path / "wgi.csv")
    df = worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])
    assert one_ref(df, "BBB", 2022) == "line 7, column 'estimate'"


def one_ref(df: pl.DataFrame, code: str, year: int) -> str:
    return df.filter((pl.col("code") == code) & (pl.col("data_year") == year))["row_ref"].item()


def test_long_bad_value_names_row_and_column(tmp_path):
    _long_csv(tmp_path / "wgi.csv")
    text = (tmp_path / "wgi.csv").read_text().replace("-1.25", "n/a?")
    (tmp_path / "wgi.csv").write_text(text)
    with pytest.raises(SourceError, match=r"'n/a\?' is not a number") as exc:
        worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])
    assert exc.value.file == "wgi.csv" and exc.value.row == "line 7, column 'estimate'"


def test_long_without_estimate_column_is_named(tmp_path):
    (tmp_path / "wgi.csv").write_text("code,countryname,year,indicator,score\nAAA,A,2023,rl,1\n")
    with pytest.raises(SourceError, match="unrecognised CSV layout"):
        worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])


def test_workbook_without_long_table(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["Country", "Score"])
    wb.save(tmp_path / "wgidataset.xlsx")
    with pytest.raises(SourceError, match="no sheet holds the WGI long table") as exc:
        worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])
    assert exc.value.file == "wgidataset.xlsx"


def test_bulk_zip_companion_files_are_skipped(tmp_path):
    _wide(tmp_path / "WGIData.csv")
    (tmp_path / "WGICountry.csv").write_text('"Country Code","Short Name"\n"AAA","Aland"\n')
    (tmp_path / "WGISeries.csv").write_text('"Series Code","Topic"\n"RL.EST","Rule of Law"\n')
    df = worldbank_wgi.parse(landed(tmp_path, "2023-09"), [spec("RL.EST")])
    assert set(df["file"]) == {"WGIData.csv"} and df.height == 3


def test_html_error_page_as_workbook(tmp_path):
    (tmp_path / "wgidataset.xlsx").write_bytes(b"<!DOCTYPE html><html>503</html>")
    with pytest.raises(SourceError, match="HTML"):
        worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])


def test_a_workbook_sheet_is_read_once_per_content(tmp_path, monkeypatch):
    """A refresh reads the WGI sheet for the observations, their standard errors and the benchmark:
    fastexcel reads it once; a file edited since is read again (its new values, not the kept ones)."""
    import fastexcel

    from radar_pipeline.sources.toolkit import tables

    path = tmp_path / "wgidataset.xlsx"
    _long_xlsx(path)
    opened: list[str] = []
    real = fastexcel.read_excel
    monkeypatch.setattr(tables.fastexcel, "read_excel", lambda p, *a, **k: opened.append(str(p)) or real(p, *a, **k))
    files = landed(tmp_path, "2024-09")
    first = worldbank_wgi.parse(files, [spec("RL.EST")])
    reads = len(opened)
    again = worldbank_wgi.standard_errors(files, [spec("RL.EST")])
    assert len(opened) - reads <= 1  # sheet_names may open the workbook; the sheet is not read again
    assert again.height > 0 and first.height > 0
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for row in ws.iter_rows(min_row=2):
        if row[4].value == "rl" and row[5].value not in ("..", None):
            row[5].value = 9.5
    wb.save(path)
    edited = worldbank_wgi.parse(landed(tmp_path, "2024-09"), [spec("RL.EST")])
    assert set(edited["value"].to_list()) == {9.5}
