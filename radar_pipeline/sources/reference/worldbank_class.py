"""World Bank country income classification (`CLASS.xlsx`, "country and lending groups").

METHODOLOGY §1: the income group (low, lower-middle, upper-middle, high) of the classification
vintage an edition may read; an economy the World Bank leaves unclassified has none. Gap
filling (§2.3) uses it beside the M49 region. A vintage folder is labelled by the World Bank
fiscal year the classification applies to (`FY2023`, released July 2022: thresholds from 2022
GNI per capita, stated on the `Notes` sheet).

Layout (FY2023 file): sheet `List of economies`, header (located by content) `Economy, Code,
Region, Income group, Lending category, Other (EMU or HIPC)`; one row per economy (218), then
a blank row and the aggregates (Arab World `ARB` ... World `WLD`: a code and a name, no region
and no income group). Sheet `Groups` (`GroupCode, GroupName, CountryCode, CountryName`) lists
the aggregates' members; sheet `Notes` the thresholds.

Rules (`parse_income_groups`):
- Aggregates are dropped: a row whose `Code` is a `GroupCode` of the `Groups` sheet, or that has
  no `Region` (how the World Bank marks aggregates in CLASS.xlsx and in the WDI country
  metadata). A row that has a region and also a group code is still an aggregate.
- Unclassified economies (a region but an empty `Income group`, e.g. Venezuela `VEN` in FY2023)
  are omitted: they have no income group (METHODOLOGY §1), and gap filling skips the peer
  steps for them.
- `Income group` "Low income" / "Lower middle income" / "Upper middle income" / "High income"
  -> `low` / `lower_middle` / `upper_middle` / `high` (case, hyphens and spacing tolerated:
  "Upper-middle income"); any other label is a SourceError naming the row and the value.
- Codes: the World Bank's 3-letter codes are ISO 3166-1 alpha-3 except for a few economies.
  A code is kept when it is an ISO3 code known to country_converter, which includes the
  user-assigned `XKX` Kosovo code the project's universe uses (rules/universe_additions.csv);
  any other code is dropped — `CHI` Channel Islands (a World Bank grouping of Guernsey and
  Jersey, which have ISO codes of their own but no row here). `summary` names what was dropped.
- The same code twice is a SourceError.

Output: `iso3, income_group`, one row per classified economy, sorted by iso3 (216 in FY2023).
Economies outside the pipeline's country universe (e.g. territories M49 does not list) stay in
the frame; joining it to the universe is the consumer's business.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from radar_pipeline.sources.reference.countries import converter
from radar_pipeline.sources.toolkit import LandedFile, SourceError, check_content
from radar_pipeline.sources.toolkit import tables as t

if TYPE_CHECKING:
    import pandera.polars as pa

SOURCE = "worldbank_class"
FILE_PATTERNS = ("*.xlsx",)

ECONOMIES_SHEET, GROUPS_SHEET = "List of economies", "Groups"
ECONOMY, CODE, REGION, INCOME = "Economy", "Code", "Region", "Income group"
GROUP_CODE = "GroupCode"

INCOME_GROUPS = {"low income": "low", "lower middle income": "lower_middle",
                 "upper middle income": "upper_middle", "high income": "high"}

@functools.cache
def income_schema() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa

    return pa.DataFrameSchema(
        {
            "iso3": pa.Column(pl.String, pa.Check.str_matches(r"^[A-Z]{3}$"), unique=True, nullable=False),
            "income_group": pa.Column(pl.String, pa.Check.isin(list(INCOME_GROUPS.values())), nullable=False),
        },
        strict=True, ordered=True,
    )


def _file(path: Path) -> LandedFile:
    path = Path(path)
    return LandedFile(SOURCE, path.parent.name, path)


def _iso3_codes() -> set[str]:
    """ISO 3166-1 alpha-3 codes country_converter knows (with XKX Kosovo)."""
    return {c for c in converter().data["ISO3"].dropna() if isinstance(c, str) and len(c) == 3}


def _group_codes(file: LandedFile, sheets: list[str]) -> set[str]:
    sheet = next((s for s in sheets if s.strip().lower() == GROUPS_SHEET.lower()), None)
    if sheet is None:
        return set()
    raw = t.read_sheet_raw(file, sheet)
    where = f"sheet '{sheet}'"
    df = t.apply_header(raw, t.locate_header(raw, [GROUP_CODE, "GroupName", "CountryCode"],
                                             source=SOURCE, file=file.name, where=where))
    col = t.require_columns(df, [GROUP_CODE], source=SOURCE, file=file.name, where=where)[GROUP_CODE]
    return set(df[col].str.strip_chars().drop_nulls().to_list()) - {""}


def read_class_file(path: Path) -> tuple[pl.DataFrame, set[str]]:
    """The `List of economies` rows below the header (publisher's columns as text, `__row`) and the
    aggregate codes of the `Groups` sheet."""
    file = _file(path)
    check_content(file, "xlsx")
    sheets = t.sheet_names(file)
    sheet = next((s for s in sheets if s.strip().lower() == ECONOMIES_SHEET.lower()), None)
    if sheet is None:
        raise SourceError(SOURCE, f"no sheet '{ECONOMIES_SHEET}'; sheets found: {sheets}", file=file.name)
    where = f"sheet '{sheet}'"
    raw = t.read_sheet_raw(file, sheet)
    expected = [ECONOMY, CODE, REGION, INCOME]
    df = t.apply_header(raw, t.locate_header(raw, expected, source=SOURCE, file=file.name, where=where))
    df = t.with_columns_named(file, df, expected)
    df = df.with_columns(pl.col(c).str.strip_chars().replace("", None) for c in expected)
    return df, _group_codes(file, sheets)


def _classify(path: Path) -> pl.DataFrame:
    """Every economy row with `income_group` (null = unclassified) and `kept` / `dropped` reasons."""
    file = _file(path)
    df, groups = read_class_file(path)
    df = df.filter(pl.col(CODE).is_not_null() | pl.col(ECONOMY).is_not_null())
    blank_code = df.filter(pl.col(CODE).is_null() & pl.col(REGION).is_not_null()).head(1)
    if blank_code.height:
        raise SourceError(SOURCE, f"economy {blank_code[ECONOMY].item()!r} has no code", file=file.name,
                          row=f"sheet '{ECONOMIES_SHEET}' row {blank_code[t.ROW].item()}", field=CODE)
    eco = df.filter(pl.col(REGION).is_not_null() & ~pl.col(CODE).is_in(sorted(groups)))
    label = pl.col(INCOME).str.to_lowercase().str.replace_all(r"[-\s]+", " ").str.strip_chars()
    eco = eco.with_columns(label.replace_strict(INCOME_GROUPS, default=None, return_dtype=pl.String)
                           .alias("income_group"))
    bad = eco.filter(pl.col(INCOME).is_not_null() & pl.col("income_group").is_null()).head(1)
    if bad.height:
        raise SourceError(SOURCE, f"income group {bad[INCOME].item()!r} of {bad[CODE].item()} is not one of "
                          "'Low income', 'Lower middle income', 'Upper middle income', 'High income'",
                          file=file.name, row=f"sheet '{ECONOMIES_SHEET}' row {bad[t.ROW].item()}", field=INCOME)
    dup = (eco.with_columns(pl.col(t.ROW).min().over(CODE).alias("__first"))
              .filter(pl.col(t.ROW) != pl.col("__first")).head(1))
    if dup.height:
        raise SourceError(SOURCE, f"code {dup[CODE].item()!r} appears twice (first on row {dup['__first'].item()})",
                          file=file.name, row=f"sheet '{ECONOMIES_SHEET}' row {dup[t.ROW].item()}", field=CODE)
    return eco.with_columns(pl.col(CODE).str.to_uppercase().is_in(sorted(_iso3_codes())).alias("iso_code"))


def parse_income_groups(path: Path) -> pl.DataFrame:
    """iso3, income_group (low | lower_middle | upper_middle | high): one row per classified
    economy with an ISO3 (or XKX) code; aggregates, unclassified economies and non-ISO codes
    left out (see the module docstring)."""
    eco = _classify(path)
    df = (eco.filter(pl.col("income_group").is_not_null() & pl.col("iso_code"))
             .select(pl.col(CODE).str.to_uppercase().alias("iso3"), "income_group").sort("iso3"))
    import pandera.polars as pa

    try:
        return income_schema().validate(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise SourceError(SOURCE, f"income classification fails validation: {exc}",
                          file=Path(path).name) from exc


def summary(files: list[LandedFile]) -> str:
    """`radar sources check`'s line for a vintage folder (ListsSummary)."""
    path = files[-1].path
    df = parse_income_groups(path)
    eco = _classify(path)
    counts = dict(df.group_by("income_group").len().iter_rows())
    parts = ", ".join(f"{g} {counts.get(g, 0)}" for g in INCOME_GROUPS.values())
    unclassified = sorted(eco.filter(pl.col("income_group").is_null())[CODE].to_list())
    dropped = sorted(eco.filter(pl.col("income_group").is_not_null() & ~pl.col("iso_code"))[CODE].to_list())
    return (f"{df.height} economies classified ({parts}); unclassified: {', '.join(unclassified) or 'none'}; "
            f"non-ISO codes dropped: {', '.join(dropped) or 'none'}")
