"""The one rule for identifiers that reach a path, a partition key or a query (site ids,
buyer ids), applied once where they enter the pipeline (site intake, buyer lists).

An id is 1-64 characters of `A-Z a-z 0-9 . _ -` and not made only of dots: `.` and `..`
are path components ("this folder", "the parent"), so a buyer id `..` would turn
`buyers/<id>/parquet` into the main `parquet` link. The match is on the whole string:
Python's `$` also matches before a trailing newline, so `re.fullmatch` is used here and
polars' regex (Rust: `$` is the end of the text) elsewhere.

File names derived from an id go through `child_path`, which refuses anything that would
leave its folder even if a caller forgot the rule.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


ID_REGEX = r"^[A-Za-z0-9._-]{1,64}$"  # polars/Rust and pandera: `$` is the end of the text
_ONLY_DOTS = r"^\.+$"
ID_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, not only dots"
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SHOWN_CHARS = 80


def id_problem(name: str, value: object) -> str | None:
    """Why `value` is not a valid `name` (site_id, buyer_id), or None when it is."""
    if value is None or value == "":
        return f"{name} is missing"
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    if _ID.fullmatch(value) is None or value.strip(".") == "":
        return f"{name} {value[:SHOWN_CHARS]!r} does not match the id rule ({ID_RULE})"
    return None


def is_id(value: object) -> bool:
    return id_problem("id", value) is None


def id_expr(col: str | pl.Expr) -> pl.Expr:
    """polars: True for a valid id, False otherwise (null stays null)."""
    import polars as pl

    c = pl.col(col) if isinstance(col, str) else col
    return c.str.contains(ID_REGEX) & ~c.str.contains(_ONLY_DOTS)


def child_path(folder: Path | str, ident: str, suffix: str = "") -> Path:
    """`folder / (ident + suffix)` for a file or folder named after an id; raises ValueError
    when `ident` breaks the rule or the result would not be directly inside `folder`."""
    problem = id_problem("id", ident)
    if problem:
        raise ValueError(f"refusing to derive a path from an invalid id: {problem}")
    folder = Path(folder)
    path = folder / f"{ident}{suffix}"
    if os.path.normpath(os.path.abspath(path.parent)) != os.path.normpath(os.path.abspath(folder)):
        raise ValueError(f"refusing a path outside {folder}: {ident + suffix!r}")
    return path
