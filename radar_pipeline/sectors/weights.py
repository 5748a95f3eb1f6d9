"""Sector weights (METHODOLOGY §3): the 0–4 rule table and its validator.

The table lives in ``rules/sector_weights.csv`` (see ``rules/sector_weights.md``):
one row per (ISIC section or division, topic). A site's ISIC class takes the
row of its division when the table has one, otherwise the row of its section.

Public functions:

- :func:`load_sector_weights` reads the CSV with fixed dtypes.
- :func:`validate_sector_weights` lists every problem of a table (empty = valid).
- :func:`sanity_orderings` lists violations of the §3 orderings a reviewer expects.

The lookup of a class's weight (its division's row if present, else its section's) has one
home: the table macro ``sector_weight_lookup`` in ``sql/sectors/sector_weight_lookup.sql``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.settings import rules_dir
from radar_pipeline.rules import methodology

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

#: METHODOLOGY §1 topic ids in pillar order, and the labour-standards pillar's (rules/topics.csv).
TOPICS: tuple[str, ...] = methodology.TOPICS
LABOUR_TOPICS: tuple[str, ...] = methodology.PILLARS["labour_standards"]
LEVELS: tuple[str, ...] = ("section", "division")
MIN_WEIGHT, MAX_WEIGHT = 0, 4


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def sector_weights_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "isic_code": pl.String,
        "level": pl.String,
        "topic": pl.String,
        "weight": pl.Int8,
        "rationale": pl.String,
        "evidence": pl.String,
    }


__getattr__ = lazy_attributes(__name__, SECTOR_WEIGHTS_SCHEMA=sector_weights_schema)

# Shape of a code at each level: a section is one letter A–U, a division two digits.
_CODE_PATTERN = {"section": r"^[A-U]$", "division": r"^[0-9]{2}$"}

# ISIC Rev.4 divisions of each section (fixed by the classification). Only used by
# `sanity_orderings` to find division rows that belong to a section.
_SECTION_DIVISIONS: dict[str, tuple[int, int]] = {
    "A": (1, 3), "B": (5, 9), "C": (10, 33), "D": (35, 35), "E": (36, 39), "F": (41, 43),
    "G": (45, 47), "H": (49, 53), "I": (55, 56), "J": (58, 63), "K": (64, 66), "L": (68, 68),
    "M": (69, 75), "N": (77, 82), "O": (84, 84), "P": (85, 85), "Q": (86, 88), "R": (90, 93),
    "S": (94, 96), "T": (97, 98), "U": (99, 99),
}


def _non_empty(data: pa.PolarsData) -> pl.LazyFrame:
    import polars as pl

    return data.lazyframe.select(pl.col(data.key).str.strip_chars().str.len_chars() > 0)


#: Column-level rules. Set-level rules (completeness, duplicates, known codes) are
#: polars expressions in `validate_sector_weights`.
@functools.cache
def sector_weights_pandera() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "isic_code": pa.Column(pl.String, nullable=False),
            "level": pa.Column(pl.String, pa.Check.isin(list(LEVELS)), nullable=False),
            "topic": pa.Column(pl.String, pa.Check.isin(list(TOPICS)), nullable=False),
            "weight": pa.Column(pl.Int64, pa.Check.in_range(MIN_WEIGHT, MAX_WEIGHT), nullable=False),
            "rationale": pa.Column(pl.String, pa.Check(_non_empty, name="non_empty"), nullable=False),
            "evidence": pa.Column(pl.String, nullable=True),
        },
        strict=False,
        name="sector_weights",
    )


def load_sector_weights(path: Path | None = None) -> pl.DataFrame:
    """Read the sector weight table (default: the shipped ``rules/sector_weights.csv``).

    Codes stay strings ("01" keeps its zero); weight is Int8. The table is not
    validated here: call :func:`validate_sector_weights`.
    """
    import polars as pl

    return pl.read_csv(path or rules_dir() / "sector_weights.csv", schema=sector_weights_schema())


def _row_label(df: pl.DataFrame, index: int | None) -> str:
    if index is None or not 0 <= index < df.height:
        return "table"
    row = df.row(index, named=True)
    return f"row {index + 2} (isic_code {row.get('isic_code')!r}, topic {row.get('topic')!r})"


def _column_problems(df: pl.DataFrame) -> list[str]:
    """pandera column rules; messages name the CSV line (header = line 1), code and topic."""
    import polars as pl

    missing = [c for c in sector_weights_schema() if c not in df.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    problems: list[str] = []
    weight = df.get_column("weight")
    if not weight.dtype.is_integer():
        as_int = weight.cast(pl.Int64, strict=False)
        bad = df.with_row_index("_i").filter(
            weight.is_not_null()
            & (as_int.is_null() | (as_int.cast(pl.Float64, strict=False) != weight.cast(pl.Float64, strict=False)))
        )
        for r in bad.iter_rows(named=True):
            problems.append(f"{_row_label(df, r['_i'])}: weight {r['weight']!r} is not an integer "
                            f"{MIN_WEIGHT}–{MAX_WEIGHT}")
        df = df.with_columns(as_int.alias("weight"))
    import pandera.polars as pa

    try:
        sector_weights_pandera().validate(df.with_columns(pl.col("weight").cast(pl.Int64)), lazy=True)
    except pa.errors.SchemaErrors as err:
        for case in err.failure_cases.sort("index", nulls_last=True).iter_rows(named=True):
            check = case["check"]
            if check == "not_nullable":
                reason = "is empty"
            elif check == "non_empty":
                reason = "is blank"
            elif check and check.startswith("in_range"):
                reason = f"{case['failure_case']} is outside {MIN_WEIGHT}–{MAX_WEIGHT}"
            elif check and check.startswith("isin"):
                allowed = TOPICS if case["column"] == "topic" else LEVELS
                reason = f"{case['failure_case']!r} is not one of {', '.join(allowed)}"
            else:
                reason = f"fails {check} ({case['failure_case']})"
            problems.append(f"{_row_label(df, case['index'])}: {case['column']} {reason}")
    return problems


def validate_sector_weights(df: pl.DataFrame, isic: pl.DataFrame) -> list[str]:
    """Every problem of a sector weight table, as readable messages (empty list = valid).

    ``isic`` is the ISIC Rev.4 structure with columns ``code`` (string, e.g. "A",
    "01", "011", "0111") and ``level`` ("section", "division", "group", "class").

    Rules: required columns; ``level`` is section/division; ``topic`` is one of
    the 14 §1 ids; ``weight`` an integer 0–4; ``rationale`` non-blank (pandera);
    then ``level`` matches the code's shape (letter / two digits); the code
    exists in ISIC at that level; no duplicate (isic_code, topic); every code
    present has all 14 topics; all ISIC sections are present.
    """
    import polars as pl

    problems = _column_problems(df)
    if problems and problems[0].startswith("missing column"):
        return problems
    rows = df.with_row_index("_i").with_columns(pl.col("_i") + 2)  # CSV line: header is line 1

    # level matches the code's shape
    shape_ok = (
        pl.when(pl.col("level") == "section").then(pl.col("isic_code").str.contains(_CODE_PATTERN["section"]))
        .when(pl.col("level") == "division").then(pl.col("isic_code").str.contains(_CODE_PATTERN["division"]))
        .otherwise(True)
    )
    for r in rows.filter(pl.col("isic_code").is_not_null() & ~shape_ok).iter_rows(named=True):
        expected = "one letter A–U" if r["level"] == "section" else "two digits"
        problems.append(f"row {r['_i']} (isic_code {r['isic_code']!r}, topic {r['topic']!r}): "
                        f"level {r['level']!r} needs a code of {expected}")

    # code known in ISIC (with the shape rule above, a known code is at the right level)
    known = isic.select(pl.col("code").cast(pl.String).alias("isic_code"), pl.col("level").cast(pl.String))
    unknown = (rows.filter(pl.col("isic_code").is_not_null())
               .join(known.select("isic_code"), on="isic_code", how="anti")
               .group_by("isic_code", maintain_order=True).agg(pl.col("_i")))
    for code, lines in unknown.iter_rows():
        problems.append(f"isic_code {code!r}: not an ISIC Rev.4 code (rows {_ranges(lines)})")

    # duplicates
    dups = (rows.group_by("isic_code", "topic").agg(pl.col("_i").sort())
            .filter(pl.col("_i").list.len() > 1).sort("isic_code", "topic"))
    for r in dups.iter_rows(named=True):
        problems.append(f"isic_code {r['isic_code']!r}, topic {r['topic']!r}: duplicate rows {r['_i']}")

    # complete topic sets for every code present
    codes = rows.select("isic_code").drop_nulls().unique()
    expected = codes.join(pl.DataFrame({"topic": list(TOPICS)}), how="cross")
    missing_topics = (expected.join(rows.select("isic_code", "topic"), on=["isic_code", "topic"], how="anti")
                      .group_by("isic_code").agg(pl.col("topic")).sort("isic_code"))
    for r in missing_topics.iter_rows(named=True):
        ordered = [t for t in TOPICS if t in r["topic"]]
        problems.append(f"isic_code {r['isic_code']!r}: incomplete topic set, missing {', '.join(ordered)}")

    # every section present
    sections = known.filter(pl.col("level") == "section").select("isic_code")
    present = rows.filter(pl.col("level") == "section").select("isic_code")
    for (code,) in sections.join(present, on="isic_code", how="anti").sort("isic_code").iter_rows():
        problems.append(f"isic_code {code!r}: section has no rows (all 21 sections need a full topic set)")
    return problems


def _ranges(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:5])) + (" …" if len(lines) > 5 else "")


def _rows_of_section(df: pl.DataFrame, section: str) -> pl.DataFrame:
    """Section row set plus division rows inside that section."""
    import polars as pl

    lo, hi = _SECTION_DIVISIONS[section]
    div_no = pl.col("isic_code").cast(pl.Int32, strict=False)
    return df.filter(
        ((pl.col("level") == "section") & (pl.col("isic_code") == section))
        | ((pl.col("level") == "division") & div_no.is_between(lo, hi))
    )


# High-risk side of the labour / H&S orderings (§3): sections A, B, F and divisions 13–15.
_LABOUR_HIGH: tuple[tuple[str, str], ...] = (
    ("section", "A"), ("section", "B"), ("section", "F"),
    ("division", "13"), ("division", "14"), ("division", "15"),
)
_LABOUR_LOW_SECTIONS: tuple[str, ...] = ("K", "J")
_ENERGY_HIGH_SECTIONS: tuple[str, ...] = ("D", "B")
# Service sections D and B must outrank on energy & emissions. H (transport) is left
# out on purpose: fuel combustion in transport is a leading emitter (OECD AEA), so
# H ranking level with D is justified.
_ENERGY_LOW_SECTIONS: tuple[str, ...] = ("G", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U")


def sanity_orderings(df: pl.DataFrame) -> list[str]:
    """Violations of the §3 sanity orderings (empty list = all hold).

    Orderings checked (all strict, ``>``):

    1. Labour: the mean weight over the 8 ``labour_standards`` topics of each of
       sections A (agriculture), B (mining), F (construction) and divisions 13, 14,
       15 (textiles, apparel, leather) is above that of section K (finance), section
       J (ICT) and any K or J division rows.
    2. Health & safety: the ``health_safety`` weight of each of those same
       high-risk codes is above that of K, J and their division rows.
    3. Energy & emissions: the ``energy_emissions`` weight of sections D
       (electricity) and B (mining) is above that of every service section
       G, I, J, K, L, M, N, O, P, Q, R, S, T, U and of every division row inside
       them. Section H (transport and storage) is exempt: fuel combustion makes
       transport a leading emitter in the OECD air emission accounts.

    A code the check needs but the table lacks is reported too.
    """
    import polars as pl

    problems: list[str] = []
    labour = (df.filter(pl.col("topic").is_in(LABOUR_TOPICS))
              .group_by("level", "isic_code").agg(pl.col("weight").cast(pl.Float64).mean().alias("v")))
    as_v = pl.col("weight").cast(pl.Float64).alias("v")
    hs = df.filter(pl.col("topic") == "health_safety").select("level", "isic_code", as_v)
    energy = df.filter(pl.col("topic") == "energy_emissions").select("level", "isic_code", as_v)

    def value(frame: pl.DataFrame, level: str, code: str) -> float | None:
        hit = frame.filter((pl.col("level") == level) & (pl.col("isic_code") == code))["v"]
        return hit.max() if hit.len() else None

    def low_side(frame: pl.DataFrame, sections: tuple[str, ...]) -> list[tuple[str, str, float]]:
        out: list[tuple[str, str, float]] = []
        for s in sections:
            if value(frame, "section", s) is None:
                problems.append(f"ordering cannot be checked: section {s} has no rows")
            rows = _rows_of_section(frame, s).select("level", "isic_code", "v")
            out += [(lvl, code, v) for lvl, code, v in rows.iter_rows()]
        return out

    for name, frame, fmt in (("labour-standards mean", labour, "{:.2f}"), ("health_safety", hs, "{:.0f}")):
        lows = low_side(frame, _LABOUR_LOW_SECTIONS)
        for h_level, h_code in _LABOUR_HIGH:
            hv = value(frame, h_level, h_code)
            if hv is None:
                problems.append(f"ordering cannot be checked: {h_level} {h_code} has no {name} rows")
                continue
            for l_level, l_code, lv in lows:
                if not hv > lv:
                    problems.append(f"{name}: {h_level} {h_code} ({fmt.format(hv)}) must outrank "
                                    f"{l_level} {l_code} ({fmt.format(lv)})")

    lows = low_side(energy, _ENERGY_LOW_SECTIONS)
    for h_code in _ENERGY_HIGH_SECTIONS:
        hv = value(energy, "section", h_code)
        if hv is None:
            problems.append(f"ordering cannot be checked: section {h_code} has no energy_emissions row")
            continue
        for l_level, l_code, lv in lows:
            if not hv > lv:
                problems.append(f"energy_emissions: section {h_code} ({hv:.0f}) must outrank "
                                f"service {l_level} {l_code} ({lv:.0f})")
    return problems
