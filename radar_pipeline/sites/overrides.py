"""Analyst category overrides (METHODOLOGY §8b).

One CSV row per override in the folder RADAR_OVERRIDES (default data/overrides), columns
`site_id,category,reason,author,created_on,expires_on`. An override changes a site's
category, never its score; the scoring SQL keeps both (category_calculated, category) with
the reason and author. Expiry: an override is in force up to and including its
`expires_on` day (empty = no expiry); an expired one is ignored. Where several are in force
for one site, the most recently created wins (then the later file / line).

Bad rows (unknown category, no reason or author, bad date, unknown site when the register
is known) are rejected with file, line, field and reason; good rows are still applied.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from radar_pipeline import settings
from radar_pipeline.methodology import CATEGORIES  # rules/score_categories.csv

COLUMNS = ("site_id", "category", "reason", "author", "created_on", "expires_on")
DEFAULT_FILE = "overrides.csv"

OVERRIDE_SCHEMA = {"site_id": pl.Utf8, "category": pl.Utf8, "reason": pl.Utf8, "author": pl.Utf8,
                   "created_on": pl.Date, "expires_on": pl.Date, "file": pl.Utf8, "line": pl.Int64}
REJECT_SCHEMA = {"file": pl.Utf8, "line": pl.Int64, "site_id": pl.Utf8, "field": pl.Utf8, "reason": pl.Utf8}


class OverrideError(ValueError):
    pass


@dataclass
class Overrides:
    valid: pl.DataFrame      # OVERRIDE_SCHEMA, every valid row (expired ones too)
    rejects: pl.DataFrame    # REJECT_SCHEMA

    def in_force(self, as_of: date | None = None) -> pl.DataFrame:
        """At most one override per site: those not expired on `as_of` (default today), the
        latest created winning. Columns site_id, category, reason, author."""
        as_of = as_of or date.today()
        return (self.valid
                .filter(pl.col("expires_on").is_null() | (pl.col("expires_on") >= as_of))
                .sort(["created_on", "file", "line"])
                .unique("site_id", keep="last", maintain_order=True)
                .select("site_id", "category", "reason", "author"))


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# a reason or author starting like a formula is shown as text by spreadsheets and BI exports
# (OWASP CSV injection): such a value is stored with a leading apostrophe
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _date(text: str) -> date:
    """Strictly YYYY-MM-DD: Python also reads '20260101' and '2026-W01-1' as dates."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)


def clean_text(text: str) -> str:
    """Free text as published: control and bidirectional-override characters removed (they reach
    BI tools and spreadsheets), a formula-like start neutralised with an apostrophe."""
    text = _CONTROL.sub("", text).strip()
    return "'" + text if text.startswith(_FORMULA_START) else text


def validate_row(row: dict[str, str], known_sites: set[str] | None = None) -> list[tuple[str, str]]:
    """(field, reason) for every problem of one override row (empty = valid)."""
    problems = []
    site = (row.get("site_id") or "").strip()
    if not site:
        problems.append(("site_id", "site_id is empty"))
    elif known_sites is not None and site not in known_sites:
        problems.append(("site_id", f"unknown site {site!r} (not in the site register)"))
    if (row.get("category") or "").strip() not in CATEGORIES:
        problems.append(("category", f"category {row.get('category')!r} is not one of {list(CATEGORIES)}"))
    if not clean_text(row.get("reason") or ""):
        problems.append(("reason", "an override needs a reason"))
    if not clean_text(row.get("author") or ""):
        problems.append(("author", "an override needs an author"))
    dates = {}
    for field in ("created_on", "expires_on"):
        value = (row.get(field) or "").strip()
        if not value:
            if field == "created_on":
                problems.append((field, "created_on is empty (YYYY-MM-DD)"))
            continue
        try:
            dates[field] = _date(value)
        except ValueError:
            problems.append((field, f"{field} {value!r} is not a date (YYYY-MM-DD)"))
    if "created_on" in dates and dates["created_on"] > date.today():
        # a future creation date would win over every later override until that day (9999-12-31:
        # forever), so the newest override in force could never be the one the analyst just wrote
        problems.append(("created_on", f"created_on {dates['created_on']} is in the future"))
    if "created_on" in dates and "expires_on" in dates and dates["expires_on"] < dates["created_on"]:
        problems.append(("expires_on", f"expires_on {dates['expires_on']} is before created_on "
                                       f"{dates['created_on']}"))
    return problems


def read_overrides(folder: Path | None = None, known_sites: set[str] | None = None) -> Overrides:
    """Every *.csv in the folder (sorted by name). A file without the required columns is
    rejected as a whole (line 1); a bad row is rejected alone."""
    folder = Path(folder or settings.overrides_dir())
    valid, rejects = [], []
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    for path in files:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                rejects.append({"file": path.name, "line": 1, "site_id": None, "field": ",".join(missing),
                                "reason": f"missing column(s) {missing}; expected {','.join(COLUMNS)}"})
                continue
            for row in reader:
                line = reader.line_num
                problems = validate_row(row, known_sites)
                if problems:
                    rejects += [{"file": path.name, "line": line, "site_id": row.get("site_id"),
                                 "field": f, "reason": r} for f, r in problems]
                    continue
                expires = (row.get("expires_on") or "").strip()
                valid.append({"site_id": row["site_id"].strip(), "category": row["category"].strip(),
                              "reason": clean_text(row["reason"]), "author": clean_text(row["author"]),
                              "created_on": _date(row["created_on"].strip()),
                              "expires_on": _date(expires) if expires else None,
                              "file": path.name, "line": line})
    return Overrides(pl.DataFrame(valid, schema=OVERRIDE_SCHEMA), pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def append_override(site_id: str, category: str, reason: str, author: str, *, expires_on: str | None = None,
                    created_on: date | None = None, folder: Path | None = None,
                    known_sites: set[str] | None = None) -> Path:
    """Validate one override and append it to <folder>/overrides.csv (created with a header).
    Raises OverrideError naming the field and reason; nothing is written then."""
    row = {"site_id": site_id, "category": category, "reason": reason, "author": author,
           "created_on": (created_on or date.today()).isoformat(), "expires_on": expires_on or ""}
    problems = validate_row(row, known_sites)
    if problems:
        raise OverrideError("; ".join(f"{field}: {reason}" for field, reason in problems))
    folder = Path(folder or settings.overrides_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DEFAULT_FILE
    new = not path.exists() or path.stat().st_size == 0
    # a hand-edited file may lack its final newline: the new row must not join the last one
    needs_newline = not new and not path.read_bytes().endswith(b"\n")
    with open(path, "a", newline="", encoding="utf-8") as fh:
        if needs_newline:
            fh.write("\n")
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)
    return path


def reject_lines(rejects: pl.DataFrame) -> list[str]:
    """The one report of bad override rows every path prints or logs (sensor, scoring run,
    `radar sites ingest`, `radar score`): file, line, field and reason."""
    return [f"override rejected: {r['file']} line {r['line']} {r['field']}: {r['reason']}"
            for r in rejects.iter_rows(named=True)]
