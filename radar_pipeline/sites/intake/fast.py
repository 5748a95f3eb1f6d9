"""The fast path of the site intake, for the lines that are valid (nearly all of a real file):
orjson parses each line, the top level, SAQ keys and audit keys are checked in Python, and the
values are gathered column-wise (one list per SAQ field / control / audit key) and checked as
polars columns. A line it cannot prove valid goes to the exact path (exact.py)."""
from __future__ import annotations

import hashlib
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING

import orjson

from radar_pipeline.platform.identifiers import id_expr
from radar_pipeline.sites.intake.fields import (
    AUDIT_KEYS,
    MAX_ITEMS,
    MAX_KEYS,
    SEVERITIES,
    STATUSES,
    TOP_LEVEL_KEYS,
    _resolve_sites,
    saq_dtypes,
)

if TYPE_CHECKING:
    import polars as pl

_BOM = b"\xef\xbb\xbf"
_NONE = type(None)


def fast_parse(reader, lines):
    """orjson per line; a line leaves the fast path (to `slow`) unless it is a JSON object
    whose top level has only known keys of the right JSON types, has no backslash escape
    (so strings are raw UTF-8 and orjson's canonical bytes equal json.dumps'), and has as
    many strings as it has quote pairs (so no key was given twice: orjson keeps the last)."""
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    sha256 = hashlib.sha256
    hashed = reader.content_hash  # `radar score` stores nothing and skips the hash (~15 % of the parse)
    top_keys = frozenset(TOP_LEVEL_KEYS)
    saq_keys = reader.saq_keys
    audit_keys = frozenset(AUDIT_KEYS)
    f_line, f_id, f_name, f_country, f_isic, f_hash = [], [], [], [], [], []
    saq_line, saq_vals, ctl_line, ctls, aud_line, auds = [], [], [], [], [], []
    saq_fields = [spec[0] for spec in reader.specs]
    # a SAQ with every field (known keys only, as many as there are fields): its values in field
    # order by one itemgetter call (~30 % cheaper than a .get per field)
    n_saq = len(saq_fields)
    all_saq = itemgetter(*saq_fields) if n_saq > 1 and len(saq_keys) == n_saq else None
    enum_fields = [spec[0] for spec in reader.specs if spec[1] == "enum"]
    slow = []
    for item in lines:
        lineno, body, _ = item
        if body is None:
            slow.append(item)
            continue
        if not body or body.isspace():
            continue  # blank lines are not records (same as the exact path)
        if b"\\" in body or body.startswith(_BOM):
            slow.append(item)
            continue
        try:
            obj = loads(body)
        except orjson.JSONDecodeError:
            slow.append(item)
            continue
        if type(obj) is not dict or not top_keys.issuperset(obj):
            slow.append(item)
            continue
        get = obj.get
        sid, country, isic, name = get("site_id"), get("country"), get("isic"), get("site_name")
        saq, ctl, aud = get("saq"), get("controls"), get("audits")
        if (type(sid) is not str or type(country) is not str or type(isic) is not str
                or (name is not None and type(name) is not str)):
            slow.append(item)
            continue
        n_str = len(obj) + 3 + (name is not None)
        if saq is not None:
            if type(saq) is not dict or not saq_keys.issuperset(saq):
                slow.append(item)
                continue
            # strings in the SAQ: only enum answers may be strings (any other string
            # breaks a rule and the line goes to the exact path anyway), so counting
            # those undercounts at worst, which still fails the quote check below
            n_str += len(saq)
            for f in enum_fields:
                if type(saq.get(f)) is str:
                    n_str += 1
        if ctl is not None:
            if type(ctl) is not list or len(ctl) > MAX_ITEMS:
                slow.append(item)
                continue
            n_str += list(map(type, ctl)).count(str)
        if aud is not None:
            if type(aud) is not list or len(aud) > MAX_ITEMS:
                slow.append(item)
                continue
            ok = True
            n_keys = 0
            for a in aud:
                if type(a) is not dict or not audit_keys.issuperset(a):
                    ok = False
                    break
                n_keys += len(a)
                n_str += len(a) + list(map(type, a.values())).count(str)
            if not ok or n_keys > MAX_KEYS * 10:  # the exact path's cap on a line's audit keys
                slow.append(item)
                continue
        if body.count(b'"') != 2 * n_str:
            slow.append(item)
            continue
        f_line.append(lineno)
        f_id.append(sid)
        f_name.append(name)
        f_country.append(country)
        f_isic.append(isic)
        f_hash.append(sha256(dumps(obj, option=sort_keys)).hexdigest() if hashed else None)
        if saq:
            saq_line.append(lineno)
            # row-wise while the dict is hot
            saq_vals.extend(all_saq(saq) if all_saq is not None and len(saq) == n_saq else map(saq.get, saq_fields))
        if ctl:
            ctl_line.append(lineno)
            ctls.append(ctl)
        if aud:
            aud_line.append(lineno)
            auds.append(aud)
    fast = {"line": f_line, "site_id": f_id, "site_name": f_name, "country": f_country, "isic": f_isic,
            "content_hash": f_hash, "saq_line": saq_line, "saq_vals": saq_vals, "ctl_line": ctl_line,
            "ctls": ctls, "aud_line": aud_line, "auds": auds}
    return fast, slow


def fast_frames(reader, fast) -> tuple[dict[str, pl.DataFrame], set[int]]:
    """Column-wise frames of the fast lines and the set of lines that break (or may
    break) a rule — those go to the exact path."""
    import numpy as np  # here, not at module level: the definitions import never needs it (issue 24)
    import polars as pl

    bad: set[int] = set()
    sites = pl.DataFrame({k: fast[k] for k in ("line", "site_id", "site_name", "country", "isic",
                                               "content_hash")},
                         schema={"line": pl.Int64, "site_id": pl.Utf8, "site_name": pl.Utf8,
                                 "country": pl.Utf8, "isic": pl.Utf8, "content_hash": pl.Utf8})
    sites = _resolve_sites(sites, reader.isic, reader.iso3_cache)
    bad.update(sites.filter(
        ~id_expr("site_id")
        | ~pl.col("iso3").is_in(sorted(reader.countries))
        | ~pl.col("isic_code").is_in(reader.isic["code"].to_list())
        | pl.col("isic_level").is_null()
    )["line"].to_list())

    # SAQ: one column per questionnaire field, typed as a whole, checked in one pass; kept
    # wide (site_saq is one row per site), rows of lines with at least one answer
    saq_line, saq_vals = fast["saq_line"], fast["saq_vals"]
    n_fields = len(reader.specs)
    cols: dict[str, pl.Series] = {}
    wrong: list[pl.Expr] = []
    for k, (field, ftype, lo, hi, allowed) in enumerate(reader.specs):
        col = saq_vals[k::n_fields]
        types = set(map(type, col))
        types.discard(_NONE)
        if not types:
            cols[field] = pl.Series(field, [None] * len(saq_line), dtype=saq_dtypes()[ftype])
            continue
        ok_types = {bool} if ftype == "boolean" else {str} if ftype == "enum" else {int, float}
        if not types <= ok_types:
            for i, v in enumerate(col):
                if v is not None and type(v) not in ok_types:
                    bad.add(saq_line[i])
                    col[i] = None
        v = pl.col(field)
        if ftype == "boolean":
            cols[field] = pl.Series(field, col, dtype=pl.Boolean)
        elif ftype == "enum":
            cols[field] = pl.Series(field, col, dtype=pl.Utf8)
            wrong.append(~v.is_in(allowed or []))
        else:
            cols[field] = pl.Series(field, col, dtype=pl.Float64, strict=False)
            # finite, and in the range where orjson and json.dumps print a float alike
            w = ~v.is_finite() | ~((v == 0) | ((v.abs() >= 1e-4) & (v.abs() < 1e15)))
            if lo is not None:
                w = w | (v < lo)
            if hi is not None:
                w = w | (v > hi)
            if ftype == "integer":
                w = w | (v != v.floor())
            wrong.append(w)
    wide = pl.DataFrame([pl.Series("line", saq_line, dtype=pl.Int64), *cols.values()])
    if wrong:
        bad.update(wide.filter(pl.any_horizontal([w.fill_null(False) for w in wrong]))["line"].to_list())
    # integers were checked as doubles (whole, |x| < 1e15 on this path): now BIGINT; a bad
    # line's value that does not fit becomes null, and the line goes to the exact path anyway
    saq = wide.with_columns(pl.col(spec[0]).cast(pl.Int64, strict=False)
                            for spec in reader.specs if spec[1] == "integer")
    if reader.specs:
        saq = saq.filter(pl.any_horizontal(pl.col(spec[0]).is_not_null() for spec in reader.specs))

    # controls: strings from the catalogue
    ctls = fast["ctls"]
    flat = list(chain.from_iterable(ctls))
    lines = np.repeat(np.asarray(fast["ctl_line"], dtype=np.int64), list(map(len, ctls)))
    if not set(map(type, flat)) <= {str}:
        for line, v in zip(lines.tolist(), flat):
            if type(v) is not str:
                bad.add(line)
        flat = [v if type(v) is str else None for v in flat]
    ctl = pl.DataFrame({"line": lines, "control_id": flat},
                       schema={"line": pl.Int64, "control_id": pl.Utf8})
    bad.update(ctl.filter(~pl.col("control_id").is_in(sorted(reader.controls)).fill_null(False)
                          | pl.col("control_id").is_null())["line"].to_list())
    # a control listed twice on a line is one row (site_controls), as on the exact path: done here,
    # per line (a line is one site), not on (site_id, control_id) after the chunk (a string hash)
    if ctl.select(pl.struct("line", "control_id").is_duplicated().any()).item():
        ctl = ctl.unique(["line", "control_id"], maintain_order=True)

    # audits: required strings, enums, dates, order, one nc_id per site
    auds = fast["auds"]
    items = list(chain.from_iterable(auds))
    a_lines = np.repeat(np.asarray(fast["aud_line"], dtype=np.int64), list(map(len, auds)))
    cols = {}
    for key in AUDIT_KEYS:
        col = list(map(dict.get, items, repeat(key)))
        required = key in ("nc_id", "severity", "status")
        ok = {str} if required else {str, _NONE}
        if not set(map(type, col)) <= ok:
            for line, v in zip(a_lines.tolist(), col):
                if type(v) not in ok:
                    bad.add(line)
            col = [v if type(v) is str else None for v in col]
        cols[key] = col
    audits = pl.DataFrame({"line": a_lines, **cols},
                          schema={"line": pl.Int64, **dict.fromkeys(AUDIT_KEYS, pl.Utf8)}).with_columns(
        pl.col("raised_on").str.to_date("%Y-%m-%d", strict=False).alias("raised_on_date"),
        pl.col("closed_on").str.to_date("%Y-%m-%d", strict=False).alias("closed_on_date"))
    bad.update(audits.filter(
        pl.col("nc_id").is_null() | pl.col("severity").is_null() | pl.col("status").is_null()
        | ~pl.col("severity").is_in(list(SEVERITIES)) | ~pl.col("status").is_in(list(STATUSES))
        | (pl.col("raised_on").is_not_null() & pl.col("raised_on_date").is_null())
        | (pl.col("closed_on").is_not_null() & pl.col("closed_on_date").is_null())
        | (pl.col("closed_on_date") < pl.col("raised_on_date")).fill_null(False)
        | pl.struct("line", "nc_id").is_duplicated()
    )["line"].to_list())
    audits = audits.select("line", "nc_id", "severity", "status",
                           pl.col("raised_on_date").alias("raised_on"),
                           pl.col("closed_on_date").alias("closed_on"))
    return {"sites": sites, "saq": saq, "controls": ctl, "audits": audits}, bad
