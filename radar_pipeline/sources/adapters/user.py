"""Generic user-supplied indicator file (METHODOLOGY §2), e.g. licensed data such as
a commercial Forced Labour Index, or ILOSTAT weekly hours.

Format (UTF-8 CSV, header required, column order free):

    iso3,indicator_id,year,value
    BGD,ilo_weekly_hours,2022,47.1

- `iso3`: ISO 3166-1 alpha-3 (or World Bank 3-letter) code; goes to `code`.
- `indicator_id`: any id of rules/indicators.csv (any source).
- `year`: integer data year; `value`: a number (empty = missing, dropped).

A file that cannot be used as a whole (empty, an HTML page, not UTF-8 text, a missing column,
a quote never closed) is a SourceError naming the file. A bad row is quarantined and the
other rows are used (issue 22, like a site file): a line with more fields than the header, an
unknown indicator id, an empty/malformed iso3, a non-integer year, a non-numeric or non-finite
value, a value outside the indicator's plausible range (rules/indicators.csv
`valid_min`/`valid_max`: one typo such as 4700 hours a week would otherwise rescale every other
country), or an (iso3, indicator_id, year) given again — later in the file, or in another file
of the vintage — (the first one is kept). Each quarantined row becomes a `source_notes` row of
the refresh (`quarantined(files)`: file, `line N`, the code, and `field '<field>': <reason>`;
`registry.load_source` adds them to its notes).
A (indicator, country, year) a publisher source also gives is an error
(`clash_with_other_sources`), naming both.

Memory (issue 22 item 3): a file is read in 1 MiB blocks (text_input.csv_blocks), each block
checked with polars expressions and kept as 20 bytes a row (indicator as a registry index,
code as a categorical, year, value, line); the duplicate check runs on one 64-bit key per
row. A refresh asks for one edition (`parse(..., edition=Y)`): only the rows of its window
(Y - max_age_years .. Y, plus each indicator's first row so the vintage still carries it for
`registry.as_of`) become observation rows. A file is parsed again only when its content
(sha256), the indicator rules or the parser change (`toolkit.tables.parsed_once`), in this
process or any later one (the parse cache, platform/parse_cache.py).
"""
from __future__ import annotations

import polars as pl

from radar_pipeline.sources.reference.countries import NOTE_SCHEMA
from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    conform,
    empty_observations,
    load_indicator_specs,
)
from radar_pipeline.sources.toolkit.tables import LINE, parsed_once

SOURCE = "user"
FILE_PATTERNS = ("*.csv",)
USER_SUPPLIED = True  # no publisher file: read from the mirror and RADAR_USER_FILES, never downloaded
READS_EDITION_WINDOW = True  # registry.parse_all passes edition=: only that window becomes rows
COLUMNS = ["iso3", "indicator_id", "year", "value"]

# the kept rows of one file: 20 bytes a row (a 100 MB file: ~3.4M rows, ~70 MB)
ROWS = {"ind": pl.UInt16, "code": pl.Categorical, "data_year": pl.Int32, "value": pl.Float64, "line": pl.Int32}
# the quarantined rows of one file
REJECTS = {"line": pl.Int64, "code": pl.Utf8, "field": pl.Utf8, "reason": pl.Utf8}


class _Rules:
    """The registry as the checks need it: indicator ids (index = the stored `ind`), their
    plausible ranges and units."""

    def __init__(self, specs) -> None:
        by_id: dict[str, tuple] = {}
        for s in specs:
            lo, hi = getattr(s, "valid_min", ""), getattr(s, "valid_max", "")
            by_id.setdefault(s.indicator_id, (float(lo) if lo else None, float(hi) if hi else None, s.unit))
        self.ids = sorted(by_id)
        if len(self.ids) >= 1 << 16:
            raise ValueError("more than 65535 indicators in rules/indicators.csv")
        self.index = {k: i for i, k in enumerate(self.ids)}
        self.lo = [by_id[k][0] for k in self.ids]
        self.hi = [by_id[k][1] for k in self.ids]
        self.lo_text = [None if x is None else f"{x:g}" for x in self.lo]
        self.hi_text = [None if x is None else f"{x:g}" for x in self.hi]
        self.unit = [by_id[k][2] for k in self.ids]
        self.key = tuple((k, *by_id[k]) for k in self.ids)  # parsed again when the rules change

    def of(self, ind: pl.Expr, values: list, dtype) -> pl.Expr:
        """values[ind] for an index column."""
        return ind.replace_strict(list(range(len(values))), values, default=None, return_dtype=dtype)


def _problems(rules: _Rules) -> list[tuple[str, pl.Expr, pl.Expr]]:
    """(field, bad row, reason) per row rule, in the order a row is judged (first one wins)."""
    ind, val = pl.col("_ind"), pl.col("_value")
    lo, hi = rules.of(ind, rules.lo, pl.Float64), rules.of(ind, rules.hi, pl.Float64)
    return [
        ("line", pl.col("__ragged").is_not_null(), pl.col("__ragged")),
        ("indicator_id", ind.is_null(),
         pl.format("unknown indicator_id (not in rules/indicators.csv): '{}'", pl.col("indicator_id").fill_null(""))),
        ("iso3", ~pl.col("iso3").str.contains(r"^[A-Za-z]{3}$").fill_null(False),
         pl.format("iso3 must be a 3-letter country code: '{}'", pl.col("iso3").fill_null(""))),
        ("year", pl.col("_year").is_null(), pl.format("year is not an integer: '{}'", pl.col("year").fill_null(""))),
        ("value", pl.col("value").is_not_null() & val.is_null(),
         pl.format("value is not a number: '{}'", "value")),
        # conform() would drop non-finite values silently: the user must hear about it
        ("value", val.is_not_null() & ~val.is_finite(), pl.format("value is not a finite number: '{}'", "value")),
        ("value", (val < lo).fill_null(False) | (val > hi).fill_null(False),
         pl.format("{} value '{}' for {} {} is outside the plausible range {} to {} ({}; rules/indicators.csv "
                   "valid_min/valid_max)", "indicator_id", "value", "iso3", "_year",
                   rules.of(ind, rules.lo_text, pl.Utf8).fill_null("-inf"),
                   rules.of(ind, rules.hi_text, pl.Utf8).fill_null("inf"), rules.of(ind, rules.unit, pl.Utf8))),
    ]


def _check_block(frame: pl.DataFrame, rules: _Rules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept rows, quarantined rows) of one block, polars expressions only."""
    frame = frame.with_columns(
        *(pl.col(c).str.strip_chars().replace("", None) for c in COLUMNS),
    ).with_columns(
        _ind=pl.col("indicator_id").replace_strict(rules.index, default=None, return_dtype=pl.UInt16),
        _year=pl.col("year").cast(pl.Int32, strict=False),
        _value=pl.col("value").cast(pl.Float64, strict=False))
    problems = _problems(rules)
    rule = pl.lit(None, pl.Int8)
    for i, (_, bad, _) in reversed(list(enumerate(problems))):  # the first rule a row breaks names it
        rule = pl.when(bad).then(pl.lit(i, pl.Int8)).otherwise(rule)
    frame = frame.with_columns(_rule=rule)
    ok = pl.col("_rule").is_null()
    kept = frame.filter(ok & pl.col("_value").is_not_null()).select(  # an empty value is a missing one
        ind="_ind", code=pl.col("iso3").cast(pl.Categorical), data_year="_year", value="_value",
        line=pl.col(LINE).cast(pl.Int32))
    bad = frame.filter(~ok)  # the reasons are spelt out for these rows only
    reason = pl.lit(None, pl.Utf8)
    for i, (_, _, why) in enumerate(problems):
        reason = pl.when(pl.col("_rule") == i).then(why).otherwise(reason)
    bad = bad.select(line=LINE, code=pl.col("iso3").str.slice(0, 40),
                     field=pl.col("_rule").replace_strict(list(range(len(problems))), [p[0] for p in problems],
                                                         return_dtype=pl.Utf8),
                     reason=reason)
    return kept.cast(ROWS), bad.cast(REJECTS)


YEAR_BITS = 24  # years in [-2**23, 2**23) fit the key; any other year: the slower struct key


def _key() -> pl.Expr:
    """One 64-bit key per (indicator, code, year): indicator index (16 bits), the 3 bytes of
    the code as written (24) and the year (24)."""
    code = pl.col("code").cast(pl.Utf8).str.encode("hex").str.to_integer(base=16).cast(pl.UInt64)
    return (pl.col("ind").cast(pl.UInt64) * pl.lit(1 << 48, pl.UInt64) + code * pl.lit(1 << YEAR_BITS, pl.UInt64)
            + (pl.col("data_year").cast(pl.Int64) + (1 << (YEAR_BITS - 1))).cast(pl.UInt64))


def _dedupe(blocks: list[pl.DataFrame], describe) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """(blocks without a repeated (indicator, code, year), the repeats as rejects): the first
    occurrence (block order, then row order) is kept; `describe(repeats)` gives the reject rows
    of the repeats, which carry the first occurrence's columns with the suffix `_first`.
    Bounded: one sorted 64-bit key per row finds the repeated keys (usually none); only the
    rows holding one are looked at, and only the blocks holding a repeat are copied."""
    none = [], pl.DataFrame(schema=REJECTS)
    blocks = [b for b in blocks if b.height]
    if not blocks:
        return none
    years = pl.concat([b.select(lo=pl.col("data_year").min(), hi=pl.col("data_year").max()) for b in blocks])
    if years["lo"].min() < -(1 << (YEAR_BITS - 1)) or years["hi"].max() >= 1 << (YEAR_BITS - 1):
        key = pl.struct("ind", pl.col("code").cast(pl.Utf8), "data_year").hash()  # then checked exactly below
    else:
        key = _key()
    keys = [b.select(key).to_series() for b in blocks]
    ordered = pl.concat(keys).sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).unique()
    del ordered
    if repeated.is_empty():
        return blocks, none[1]
    cols = ["ind", "code", "data_year"]
    wanted = repeated.implode()
    hits = pl.concat([b.with_row_index("_pos").with_columns(_blk=pl.lit(i, pl.UInt32)).filter(k.is_in(wanted))
                      for i, (b, k) in enumerate(zip(blocks, keys)) if k.is_in(wanted).any()])
    hits = hits.with_columns(pl.col("code").cast(pl.Utf8))
    first = hits.select(pl.struct(cols).is_first_distinct()).to_series()
    repeats = hits.filter(~first).join(hits.filter(first).drop("_pos", "_blk"), on=cols, how="left",
                                       suffix="_first")
    drop = repeats.group_by("_blk").agg("_pos")
    for blk, pos in drop.iter_rows():
        blocks[blk] = blocks[blk].with_row_index("_pos").filter(~pl.col("_pos").is_in(pos)).drop("_pos")
    return blocks, describe(repeats)


def _parse_file(f: LandedFile, rules: _Rules) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """(kept rows, one frame per block; quarantined rows) of one file, read block by block."""
    from radar_pipeline.platform.text_input import NotText, csv_blocks, scan_file

    with open(f.path, "rb") as fh:
        head = fh.read(512)
    if not head.strip():
        raise SourceError(SOURCE, "file is empty", file=f.name)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise SourceError(SOURCE, f"expected csv but got an HTML/XML page (starts {head[:60]!r}) — "
                          "the publisher probably served an error page", file=f.name)
    kept: list[pl.DataFrame] = [pl.DataFrame(schema=ROWS)]
    bad: list[pl.DataFrame] = [pl.DataFrame(schema=REJECTS)]
    try:
        scan_file(f.path)
        header, blocks = csv_blocks(f.path, ragged=True)
        names = {h.strip().lower(): h for h in header}
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise SourceError(SOURCE, f"missing column(s) {missing}; expected header {','.join(COLUMNS)}",
                              file=f.name)
        for frame in blocks:
            k, b = _check_block(frame.select(*(pl.col(names[c]).alias(c) for c in COLUMNS), LINE, "__ragged"),
                                rules)
            kept.append(k)
            bad.append(b)
    except NotText as exc:
        raise SourceError(SOURCE, str(exc).removeprefix(f"{f.path}: "), file=f.name) from None
    except (pl.exceptions.PolarsError, ValueError) as exc:  # a quote never closed
        raise SourceError(SOURCE, f"cannot parse as CSV: {str(exc).splitlines()[0]}", file=f.name) from None
    kept, repeats = _dedupe(kept, lambda d: d.select(
        line=pl.col("line").cast(pl.Int64), code=pl.col("code").cast(pl.Utf8), field=pl.lit("iso3"),
        reason=pl.format("{} {} {} given twice (first on line {})", pl.col("code"),
                         pl.col("ind").cast(pl.Utf8), "data_year", "line_first")))
    if repeats.height:
        repeats = _name_indicators(repeats, rules)
    rejects = pl.concat([*bad, repeats]).sort("line")
    return kept, rejects


def _name_indicators(repeats: pl.DataFrame, rules: _Rules) -> pl.DataFrame:
    """The duplicate reasons carry the indicator index: put its id in its place."""
    parts = repeats["reason"].str.splitn(" ", 3).struct.unnest()
    ids = parts["field_1"].cast(pl.UInt16).replace_strict(list(range(len(rules.ids))), rules.ids,
                                                        return_dtype=pl.Utf8)
    return repeats.with_columns(reason=pl.concat_str(parts["field_0"], ids, parts["field_2"], separator=" "))


# str(path) -> quarantined rows (NOTE_SCHEMA) of the last parse that read the file
_QUARANTINED: dict[str, pl.DataFrame] = {}


def quarantined(files: list[LandedFile]) -> pl.DataFrame:
    """The rows of `files` left out by their last `parse` (bad rows, repeats), as source_notes
    rows: file, row_ref `line N`, code, reason `field '<field>': <why>`."""
    frames = [_QUARANTINED[str(f.path)] for f in files if str(f.path) in _QUARANTINED]
    return pl.concat(frames) if frames else pl.DataFrame(schema=NOTE_SCHEMA)


def parse(files: list[LandedFile], specs: list[IndicatorSpec], edition: int | None = None,
          max_ages: dict[str, int] | None = None) -> pl.DataFrame:
    """`specs` is not used to select rows: a user file may carry any registry indicator. With
    `edition` (and `max_ages`: indicator_id -> max_age_years, registry.max_ages()), only the rows
    the edition can use: its window, and each indicator's first row in each file."""
    if not files:
        return empty_observations()
    rules = _Rules(load_indicator_specs())
    parts = [parsed_once(f, lambda f: _parse_file(f, rules), rules.key) for f in files]
    # the same key in two files of the vintage: the later file's row is left out, naming both
    names = [f.name for f in files]
    by_index = list(range(len(names)))
    blocks = [b.with_columns(_file=pl.lit(i, pl.UInt16)) for i, (bs, _) in enumerate(parts) for b in bs]
    blocks, across = _dedupe(blocks, lambda d: d.select(
        "_file", line=pl.col("line").cast(pl.Int64), code=pl.col("code").cast(pl.Utf8), field=pl.lit("iso3"),
        reason=pl.format("{} {} {} is given in two files: {} (line {}) and {} (line {}); keep it in one",
                         pl.col("code"), pl.col("ind").cast(pl.Utf8), "data_year",
                         pl.col("_file_first").replace_strict(by_index, names, return_dtype=pl.Utf8),
                         "line_first", pl.col("_file").replace_strict(by_index, names, return_dtype=pl.Utf8),
                         "line")))
    across = _name_indicators(across, rules) if across.height else across.with_columns(_file=pl.lit(0, pl.UInt16))
    for i, f in enumerate(files):
        bad = pl.concat([parts[i][1], across.filter(pl.col("_file") == i).drop("_file")]).sort("line")
        _QUARANTINED[str(f.path)] = bad.select(
            source=pl.lit(SOURCE), vintage=pl.lit(f.vintage), file=pl.lit(f.name),
            row_ref=pl.format("line {}", "line"), country=pl.lit(None, pl.Utf8), code="code",
            reason=pl.format("field '{}': {}", "field", "reason")).cast(NOTE_SCHEMA)
    if edition is not None:  # block by block: only the window's rows are ever copied
        age = rules.of(pl.col("ind"), [(max_ages or {}).get(i, 5) for i in rules.ids], pl.Int32)
        window = pl.col("data_year").is_between(edition - age, edition)
        seen: set[tuple[int, int]] = set()  # (file, indicator) whose first row was kept
        cut = []
        for b in blocks:
            # each indicator's first row in each file too: registry.as_of decides by the vintages carrying it
            firsts = b.with_row_index("_i").filter(pl.struct("_file", "ind").is_first_distinct())
            take = [i for i, f, k in firsts.select("_i", "_file", "ind").iter_rows() if (f, k) not in seen]
            seen |= set(firsts.select("_file", "ind").iter_rows())
            first = pl.int_range(pl.len(), dtype=pl.UInt32).is_in(pl.Series(take, dtype=pl.UInt32).implode())
            cut.append(b.filter(window | first))
        blocks = cut
    vintage = [f.vintage for f in files]
    out = pl.concat([pl.DataFrame(schema={**ROWS, "_file": pl.UInt16}), *blocks], rechunk=False).select(
        pl.lit(SOURCE).alias("source"),
        pl.col("ind").replace_strict(list(range(len(rules.ids))), rules.ids, return_dtype=pl.Utf8)
        .alias("indicator_id"),
        pl.col("_file").replace_strict(by_index, vintage, return_dtype=pl.Utf8).alias("vintage"),
        pl.col("_file").replace_strict(by_index, names, return_dtype=pl.Utf8).alias("file"),
        pl.format("line {}", "line").alias("row_ref"), pl.lit(None, pl.String).alias("country"),
        pl.col("code").cast(pl.Utf8), "data_year", "value")
    return conform(out)


def clash_with_other_sources(con, edition: int, source: str, observations: pl.DataFrame) -> str | None:
    """A message when `observations` give an (indicator, country, year) that another source
    already stored for this edition (the table's key would refuse it with a raw error)."""
    obs = observations.select("indicator_id", "iso3", "data_year", "file", "row_ref")  # noqa: F841 (SQL)
    hit = con.execute("""select n.indicator_id, n.iso3, n.data_year, n.file, n.row_ref, o.source, o.file, o.row_ref
                         from obs n join indicator_observations o using (indicator_id, iso3, data_year)
                         where o.edition = $e and o.source <> $s limit 1""", {"e": edition, "s": source}).fetchall()
    if not hit:
        return None
    ind, iso3, year, file, ref, other, ofile, oref = hit[0]
    return (f"{ind} {iso3} {year} in {file} ({ref}) is also given by source {other} ({ofile} {oref or ''}); "
            f"an indicator value for a country and year comes from one source: remove one of them")
