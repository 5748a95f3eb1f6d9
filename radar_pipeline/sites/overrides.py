"""Analyst category overrides (METHODOLOGY §8b).

One CSV row per override in the folder RADAR_OVERRIDES (default data/overrides), columns
`site_id,category,reason,author,created_on,expires_on`. An override changes a site's
category, never its score; the scoring SQL keeps both (category_calculated, category) with
the reason and author. Expiry: an override is in force up to and including its
`expires_on` day (empty = no expiry); an expired one is ignored. Where several are in force
for one site, the most recently created wins (then the later file / line).

Bad rows (unknown category, no reason or author, bad date, unknown site when the register
is known) are rejected with file, line, field and reason; good rows are still applied. A file
that cannot be used as a whole (not UTF-8 text: Latin-1, UTF-16, binary; a symlink, a folder
named x.csv, unreadable; missing columns; a quote never closed) is one reject naming the file
and why, and the other files still apply (issue 22: one such file stopped all scoring with a
raw UnicodeDecodeError); a line with more fields than the header is rejected alone (field
`line`). Files are read in 1 MiB blocks (text_input.csv_blocks) and parsed again only when
their content hash changes: within a process (`_PARSED`) and across processes (every Dagster run
is one) through the parse cache (platform/parse_cache.py, RADAR_CACHE), whose entry for a file
holds from the latest created_on it gives ("in the future" is the one rule that moves with the day).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from radar_pipeline.platform import parse_cache, settings
from radar_pipeline.platform.text_input import NotText, clean_text, clean_text_expr, csv_blocks, file_problem, scan_file
from radar_pipeline.rules.methodology import CATEGORIES  # rules/score_categories.csv

__all__ = ["clean_text"]  # the one free-text rule lives in radar_pipeline.platform.text_input; re-exported

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


MAX_TEXT = 2000  # characters of a reason or author: longer is a paste accident, not a reason


def _text(col: str) -> pl.Expr:
    return pl.col(col).fill_null("").str.strip_chars()


def _problem(cond: pl.Expr, reason: pl.Expr | str) -> pl.Expr:
    return pl.when(cond).then(pl.lit(reason) if isinstance(reason, str) else reason)


def _checked(frame: pl.LazyFrame, today: date, known_sites: set[str] | None = None) -> pl.LazyFrame:
    """The override rows with their cleaned values and one column per row rule (PROBLEM_FIELDS:
    the reason, null where the rule holds): the one set of row rules, for a folder of files and
    for `append_override`. Vectorised, so a 100 MB file is checked without a Python row loop
    (a list of (field, reason) structs per row was 40x slower)."""
    # strictly YYYY-MM-DD ([0-9]: \d would take other scripts' digits; Python's fromisoformat
    # also reads '20260101' and '2026-W01-1'); to_date then refuses 2026-02-30
    iso = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    dates = {f: pl.when(_text(f).str.contains(iso)).then(_text(f).str.to_date("%Y-%m-%d", strict=False))
             for f in ("created_on", "expires_on")}
    frame = frame.with_columns(
        _clean_site=_text("site_id"), _clean_category=_text("category"),
        _clean_reason=clean_text_expr(pl.col("reason").fill_null("")),
        _clean_author=clean_text_expr(pl.col("author").fill_null("")),
        _created=dates["created_on"], _expires=dates["expires_on"])
    site = pl.col("_clean_site")
    known = (pl.lit(False) if known_sites is None
             else (site != "") & ~site.is_in(pl.Series(sorted(known_sites), dtype=pl.Utf8).implode()))
    checks = [
        _problem(site == "", "site_id is empty"),
        _problem(known, pl.format("unknown site '{}' (not in the site register)", site)),
        _problem(~pl.col("_clean_category").is_in(CATEGORIES),
                 pl.format("category '{}' is not one of {}", pl.col("category").fill_null(""),
                           pl.lit(str(list(CATEGORIES))))),
        _problem(pl.col("_clean_reason") == "", "an override needs a reason"),
        _problem(pl.col("_clean_reason").str.len_chars() > MAX_TEXT, f"reason is longer than {MAX_TEXT} characters"),
        _problem(pl.col("_clean_author") == "", "an override needs an author"),
        _problem(pl.col("_clean_author").str.len_chars() > MAX_TEXT, f"author is longer than {MAX_TEXT} characters"),
        _problem(_text("created_on") == "", "created_on is empty (YYYY-MM-DD)"),
        _problem((_text("created_on") != "") & pl.col("_created").is_null(),
                 pl.format("created_on '{}' is not a date (YYYY-MM-DD)", _text("created_on"))),
        # a future creation date would win over every later override until that day (9999-12-31:
        # forever), so the newest override in force could never be the one the analyst just wrote
        _problem(pl.col("_created") > today, pl.format("created_on {} is in the future", pl.col("_created"))),
        _problem((_text("expires_on") != "") & pl.col("_expires").is_null(),
                 pl.format("expires_on '{}' is not a date (YYYY-MM-DD)", _text("expires_on"))),
        _problem(pl.col("_expires") < pl.col("_created"),
                 pl.format("expires_on {} is before created_on {}", pl.col("_expires"), pl.col("_created"))),
    ]
    return frame.with_columns(c.cast(pl.Utf8).alias(f"_p{i}") for i, c in enumerate(checks))


# the field each rule of _checked names, in order
PROBLEM_FIELDS = ("site_id", "site_id", "category", "reason", "reason", "author", "author",
                  "created_on", "created_on", "created_on", "expires_on", "expires_on")
_PROBLEMS = [f"_p{i}" for i in range(len(PROBLEM_FIELDS))]
_OK = pl.all_horizontal(pl.col(c).is_null() for c in _PROBLEMS)


def validate_row(row: dict[str, str], known_sites: set[str] | None = None) -> list[tuple[str, str]]:
    """(field, reason) for every problem of one override row (empty = valid)."""
    one = pl.DataFrame([{c: row.get(c) for c in COLUMNS}], schema=dict.fromkeys(COLUMNS, pl.Utf8)).lazy()
    checked = _checked(one, date.today(), known_sites).collect().row(0, named=True)
    return [(f, checked[c]) for f, c in zip(PROBLEM_FIELDS, _PROBLEMS) if checked[c] is not None]


def _file_reject(path: Path, reason: str, line: int | None = None, field: str = "file") -> pl.DataFrame:
    return pl.DataFrame([{"file": path.name, "line": line, "site_id": None, "field": field, "reason": reason}],
                        schema=REJECT_SCHEMA)


# path -> (sha256, day, (valid, rejects)): a folder re-read by every scoring run and sensor tick
# parses only the files whose content changed (the day matters: "in the future" moves with it)
_PARSED: dict[str, tuple[str, date, tuple[pl.DataFrame, pl.DataFrame]]] = {}
_FIELDS = dict(zip(_PROBLEMS, PROBLEM_FIELDS))


def _split(checked: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(valid rows in OVERRIDE_SCHEMA, reject rows in REJECT_SCHEMA) of a checked frame."""
    valid = checked.filter(_OK).select(
        pl.col("_clean_site").alias("site_id"), pl.col("_clean_category").alias("category"),
        pl.col("_clean_reason").alias("reason"), pl.col("_clean_author").alias("author"),
        pl.col("_created").alias("created_on"), pl.col("_expires").alias("expires_on"), "file", "line")
    rejects = (checked.filter(~_OK).select("file", "line", "site_id", *_PROBLEMS)
               .unpivot(_PROBLEMS, index=["file", "line", "site_id"], variable_name="field", value_name="reason")
               .filter(pl.col("reason").is_not_null())
               .with_columns(pl.col("field").replace_strict(_FIELDS, return_dtype=pl.Utf8)))
    return valid.cast(OVERRIDE_SCHEMA), rejects.select(list(REJECT_SCHEMA)).cast(REJECT_SCHEMA)


def _read_file(path: Path, today: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, rejects) of one file; a file that cannot be used as a whole (not a regular
    file, not UTF-8 text, missing columns, not CSV) is one reject naming it and why."""
    none = pl.DataFrame(schema=OVERRIDE_SCHEMA)
    problem = file_problem(path)
    if problem:
        return none, _file_reject(path, problem)
    try:
        scan = scan_file(path)  # streamed: hash + UTF-8 check, a few MiB for any size
    except NotText as exc:
        return none, _file_reject(path, str(exc).removeprefix(f"{path}: "))
    except OSError as exc:
        return none, _file_reject(path, f"cannot read the file: {exc.strerror or type(exc).__name__}")
    hit = _PARSED.get(str(path))
    if hit and hit[:2] == (scan.sha256, today):
        return hit[2]
    cache_key = parse_cache.key("overrides", path, scan.sha256, _rules_version())
    cached = parse_cache.load(cache_key)
    # the parse depends on the day only through "created_on is in the future": an entry holds
    # for every day on or after the latest created_on its file gives
    if cached is not None and len(cached[0]) == 2 and cached[1].get("latest_created", "") <= today.isoformat():
        result = _joined(*cached[0])
        _PARSED[str(path)] = (scan.sha256, today, result)
        return result
    # Parsed into the cache block by block and read back from it: the rows are then held once, in
    # a few large parts, not as the parse's hundreds of blocks among its freed intermediates (a
    # 100 MB file: 327 MiB holding the blocks while writing them, ~250 MiB this way). Without a
    # usable cache, parsed again holding the blocks.
    cache = parse_cache.Writer(cache_key, 2)
    kept_in_cache = cache.ok
    parsed = _parse(path, today, cache if kept_in_cache else None)
    if isinstance(parsed, pl.DataFrame):  # the file cannot be used: one reject
        cache.abort()
        return none, parsed
    days = [d for d in parsed[2] if d is not None]
    stored = kept_in_cache and cache.commit({"latest_created": max(days).isoformat() if days else ""})
    cached = parse_cache.load(cache_key) if stored else None
    if cached is None and kept_in_cache:  # the rows went to a cache that failed: parsed again, kept
        cache.abort()
        parsed = _parse(path, today, None)
        if isinstance(parsed, pl.DataFrame):
            return none, parsed
    result = _joined(*(cached[0] if cached is not None else parsed[:2]))
    _PARSED[str(path)] = (scan.sha256, today, result)
    return result


def _joined(valid: list[pl.DataFrame], rejects: list[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    # rechunk=False: a copy of every row would double the memory of a 100 MB file
    return (pl.concat([pl.DataFrame(schema=OVERRIDE_SCHEMA), *valid], rechunk=False),
            pl.concat([pl.DataFrame(schema=REJECT_SCHEMA), *rejects], rechunk=False))


def _parse(path: Path, today: date, cache: parse_cache.Writer | None):
    """(valid row parts, reject parts, the latest created_on of each block) of one file, the
    parts written to `cache` instead of kept when it is given; or a file's one reject frame
    (missing columns, not CSV)."""
    try:
        header, blocks = csv_blocks(path, ragged=True)  # a line with too many fields: that line rejected
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            return _file_reject(path, f"missing column(s) {missing}; expected {','.join(COLUMNS)}", 1,
                                ",".join(missing))
        # block by block (text_input.csv_blocks): only the two outputs grow with the file
        valid, rejects, latest = [], [], []
        keep = valid.append if cache is None else (lambda v: cache.add(0, v))
        reject = rejects.append if cache is None else (lambda r: cache.add(1, r))
        for frame in blocks:
            ragged = pl.col("__ragged").is_not_null()
            if frame.select(ragged.any()).item():
                reject(frame.filter(ragged).select(
                    file=pl.lit(path.name), line="__line", site_id=pl.col("site_id").str.strip_chars(),
                    field=pl.lit("line"), reason="__ragged").cast(REJECT_SCHEMA))
                frame = frame.filter(~ragged)
            checked = _checked(frame.drop("__ragged").lazy(), today).with_columns(file=pl.lit(path.name),
                                                                 line=pl.col("__line"))
            v, r, m = pl.collect_all([*_split(checked), checked.select(pl.col("_created").max())])
            keep(v)
            reject(r)
            latest.append(m.item())
        return valid, rejects, latest
    except (pl.exceptions.PolarsError, ValueError, OSError) as exc:  # ragged rows, an unclosed quote
        return _file_reject(path, "cannot parse as CSV: " + str(exc).splitlines()[0][:200])


def _rules_version() -> str:
    """What the parse of an override file depends on besides its bytes and name: this module's
    rules (its code) and the categories of rules/score_categories.csv."""
    return parse_cache.code_version(__name__, "radar_pipeline.platform.text_input") + "|" + "|".join(CATEGORIES)


def read_overrides(folder: Path | None = None, known_sites: set[str] | None = None) -> Overrides:
    """Every *.csv in the folder (sorted by name). A file that cannot be used as a whole (not
    UTF-8 text, missing columns, a symlink or folder, unreadable) is one reject naming the file
    and why; a bad row is rejected alone; the other files and rows are applied."""
    folder = Path(folder or settings.overrides_dir())
    today = date.today()
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    parts = [_read_file(p, today) for p in files]
    # rechunk=False: a copy of every row would double the memory of a 100 MB file
    valid = pl.concat([v for v, _ in parts], rechunk=False) if parts else pl.DataFrame(schema=OVERRIDE_SCHEMA)
    rejects = [r for _, r in parts]
    if known_sites is not None:  # the one rule that is not a property of the file alone
        unknown = ~pl.col("site_id").is_in(pl.Series(sorted(known_sites), dtype=pl.Utf8).implode())
        rejects.append(valid.filter(unknown).select(
            "file", "line", "site_id", field=pl.lit("site_id"),
            reason=pl.format("unknown site '{}' (not in the site register)", pl.col("site_id"))))
        valid = valid.filter(~unknown)
    rejects = pl.concat(rejects) if rejects else pl.DataFrame(schema=REJECT_SCHEMA)
    return Overrides(valid, rejects.sort("file", "line", maintain_order=True, nulls_last=False))


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
    return [f"override rejected: {r['file']}{'' if r['line'] is None else ' line ' + str(r['line'])} "
            f"{r['field']}: {r['reason']}" for r in rejects.iter_rows(named=True)]
