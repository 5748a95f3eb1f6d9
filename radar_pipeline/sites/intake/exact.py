"""The exact path of the site intake: every line the fast path cannot prove valid is re-read
row by row with the stdlib `json` (duplicate-key and constant checks), flattened into small
typed frames (site, SAQ answer, control, audit finding, key) and validated by pandera polars
schemas (rules.py). Every failure becomes a reject row naming the file, line, site id, field and reason:
all rejects, and their wording, come from here."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radar_pipeline.sites.intake.fields import (
    AUDIT_KEYS,
    MAX_ITEMS,
    MAX_KEYS,
    MORE_SHOWN,
    SHOWN_CHARS,
    SITE_ID_SHOWN_CHARS,
    TOP_LEVEL_KEYS,
    IntakeResult,
    _resolve_sites,
    _wide_saq,
    controls_schema,
    nc_schema,
    rejects_schema,
    saq_schema,
    sites_schema,
)

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

# Rows the exact path builds at once (estimated from the lines' bytes): bounds its memory
# whatever the file holds. A group is validated, its rejects folded to one row per line.
EXACT_ROWS_BUDGET = 300_000


def _jtype(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:SHOWN_CHARS]!r}")
        seen[key] = value
    return seen


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None

@dataclass
class _SlowRows:
    """Row dicts of the exact (stdlib json, row-by-row) path, as the original reader built them."""
    parse_rejects: list[dict]
    site_rows: list[dict]
    key_rows: list[dict]
    saq_rows: list[dict]
    ctl_rows: list[dict]
    audit_rows: list[dict]

    @classmethod
    def empty(cls) -> _SlowRows:
        return cls([], [], [], [], [], [])

    def extend(self, other: _SlowRows) -> None:
        for name in ("parse_rejects", "site_rows", "key_rows", "saq_rows", "ctl_rows", "audit_rows"):
            getattr(self, name).extend(getattr(other, name))

    def sort(self) -> None:
        for name in ("parse_rejects", "site_rows", "key_rows", "saq_rows", "ctl_rows", "audit_rows"):
            getattr(self, name).sort(key=lambda r: r["line"])  # stable: keeps the order within a line


def _parse_slow(lines: list[tuple[int, bytes | None, int]], ids_only: bool = False) -> _SlowRows:
    """The exact path: stdlib json with duplicate-key and constant checks, one dict per field.
    ids_only: only the site rows (for duplicate detection), no rows per answer/element."""
    out = _SlowRows.empty()
    parse_rejects, site_rows, key_rows = out.parse_rejects, out.site_rows, out.key_rows
    saq_rows, ctl_rows, audit_rows = out.saq_rows, out.ctl_rows, out.audit_rows
    for lineno, body, size in lines:
        if body is None:
            parse_rejects.append({"line": lineno, "field": None,
                                  "reason": f"line is {size} bytes, over the 1 MiB limit; not parsed"})
            continue
        if not body.strip():
            continue  # blank lines (e.g. a trailing newline) are not records
        try:
            text = body.decode("utf-8")
            if text.startswith("\ufeff") and lineno == 1:
                text = text[1:]
            obj = json.loads(text, parse_constant=_reject_constant,
                             object_pairs_hook=_no_duplicate_keys)
        except UnicodeDecodeError:
            parse_rejects.append({"line": lineno, "field": None, "reason": "not valid UTF-8"})
            continue
        except (ValueError, RecursionError) as exc:
            parse_rejects.append({"line": lineno, "field": None,
                                  "reason": f"malformed JSON: {str(exc)[:200]}"})
            continue
        if not isinstance(obj, dict):
            parse_rejects.append({"line": lineno, "field": None,
                                  "reason": f"a site must be a JSON object, got {_jtype(obj)}"})
            continue
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        try:
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:  # an escaped lone surrogate ("\ud800") is not a character
            parse_rejects.append({"line": lineno, "field": _surrogate_field(obj),
                                  "reason": "escaped lone surrogate (e.g. \\ud800): not valid Unicode text"})
            continue
        row = {"line": lineno, "content_hash": digest}
        for key in ("site_id", "site_name", "country", "isic", "saq", "controls", "audits"):
            row[f"{key}__type"] = _jtype(obj.get(key))
        for key in ("site_id", "site_name", "country", "isic"):
            row[key] = _str_or_none(obj.get(key))
        site_rows.append(row)
        if ids_only:
            continue
        oversized = _oversized(obj)
        if oversized:
            parse_rejects.extend({"line": lineno, "field": f, "reason": r} for f, r in oversized)
            continue  # rejected whole: no row per element
        key_rows.extend({"line": lineno, "scope": "site", "key": k, "_field": k} for k in obj)

        saq = obj.get("saq")
        if isinstance(saq, dict):
            for field, value in saq.items():
                if value is None:
                    continue  # an explicit null is an unanswered question
                jt = _jtype(value)
                saq_rows.append({
                    "line": lineno, "field": field, "json_type": jt,
                    "value_num": float(value) if jt == "number" else None,
                    "value_bool": value if jt == "boolean" else None,
                    "value_text": value if jt == "string" else None,
                    "_shown": f"{jt} {json.dumps(value, ensure_ascii=False)[:SHOWN_CHARS]}",
                })
        ctl = obj.get("controls")
        if isinstance(ctl, list):
            for pos, value in enumerate(ctl):
                ctl_rows.append({"line": lineno, "pos": pos, "json_type": _jtype(value) or "null",
                                 "control_id": _str_or_none(value), "_field": f"controls[{pos}]"})
        audits = obj.get("audits")
        if isinstance(audits, list):
            for pos, value in enumerate(audits):
                item = value if isinstance(value, dict) else {}
                arow = {"line": lineno, "pos": pos, "json_type": _jtype(value) or "null",
                        "_field": f"audits[{pos}]"}
                for key in AUDIT_KEYS:
                    arow[f"{key}__type"] = _jtype(item.get(key))
                    arow[key] = _str_or_none(item.get(key))
                audit_rows.append(arow)
                key_rows.extend({"line": lineno, "scope": "audit", "key": k,
                                 "_field": f"audits[{pos}].{k}"} for k in item)
    return out


def _oversized(obj: dict) -> list[tuple[str | None, str]]:
    """(field, reason) for every part of a site over the size caps."""
    out: list[tuple[str | None, str]] = []
    if len(obj) > MAX_KEYS:
        out.append((None, f"the site object has {len(obj)} keys; at most {MAX_KEYS}"))
    for key, kind in (("saq", dict), ("controls", list), ("audits", list)):
        value = obj.get(key)
        if isinstance(value, kind) and len(value) > MAX_ITEMS:
            out.append((key, f"{len(value)} {'keys' if kind is dict else 'elements'}; at most {MAX_ITEMS}"))
    audits = obj.get("audits")
    if isinstance(audits, list) and len(audits) <= MAX_ITEMS:
        n_keys = sum(len(a) for a in audits if isinstance(a, dict))
        if n_keys > MAX_KEYS * 10:
            out.append(("audits", f"the audit findings have {n_keys} keys in all; at most {MAX_KEYS * 10}"))
    return out


def _surrogate_field(obj: Any, path: str = "", depth: int = 0) -> str | None:
    """The first field (saq.x, controls[3], ...) holding a lone surrogate, in a key or a value."""
    if depth > 50:
        return path or None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        sub = f"{path}[{key}]" if isinstance(obj, list) else (f"{path}.{key}" if path else str(key))
        if isinstance(key, str) and not _encodable(key):
            return (path + "." if path else "") + key.encode("utf-8", "replace").decode()
        if isinstance(value, str) and not _encodable(value):
            return sub.encode("utf-8", "replace").decode()
        if isinstance(value, (dict, list)):
            found = _surrogate_field(value, sub, depth + 1)
            if found:
                return found
    return path or None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _estimated_rows(item: tuple[int, bytes | None, int]) -> int:
    """Upper bound of the exact path's rows for one line (elements are comma/brace separated),
    within the size caps."""
    body = item[1]
    if body is None:
        return 1
    return min(body.count(b",") + body.count(b"{") + 2, 3 * MAX_ITEMS + MAX_KEYS * 12)


def _one_reject_per_line(rejects: pl.DataFrame) -> pl.DataFrame:
    """Fold a line's reject rows into one: its first problem, plus a count and the next few.
    A hostile line breaking a rule thousands of times is one row, not thousands."""
    import polars as pl

    if rejects.height == 0 or rejects["line"].n_unique() == rejects.height:
        return rejects
    problem = pl.col("field").fill_null("line") + ": " + pl.col("reason")
    folded = rejects.group_by("line", maintain_order=True).agg(
        pl.col("file").first(), pl.col("site_id").first(), pl.col("field").first(),
        pl.col("reason").first(), pl.len().alias("_n"),
        problem.slice(1, MORE_SHOWN).str.join("; ").alias("_more"))
    reason = (pl.when(pl.col("_n") == 1).then(pl.col("reason"))
              .otherwise(pl.col("reason") + pl.format(" (+{} more problem(s) on this line: ", pl.col("_n") - 1)
                         + pl.col("_more")
                         + pl.when(pl.col("_n") > MORE_SHOWN + 1).then(pl.lit("; …)")).otherwise(pl.lit(")"))))
    return folded.select("file", "line", "site_id", "field", reason.alias("reason")).cast(rejects_schema())

def exact_path(reader, slow_lines: list[tuple[int, bytes | None, int]], dup: dict[int, int]):
    """The exact path over `slow_lines` (in line order), in groups of about
    EXACT_ROWS_BUDGET rows so its row dicts stay bounded; one reject row per line."""
    import polars as pl

    parts: list[IntakeResult] = []
    group: list[tuple[int, bytes | None, int]] = []
    budget = 0
    for item in [*slow_lines, None]:
        if item is not None:
            group.append(item)
            budget += _estimated_rows(item)
        if group and (item is None or budget >= EXACT_ROWS_BUDGET):
            slow = _parse_slow(group)
            group, budget = [], 0
            if slow.parse_rejects or slow.site_rows:
                res = _validate_rows(slow, dup, file_name=reader.file_name, isic=reader.isic,
                                     saq_fields=reader.saq_fields, schemas=reader.schemas,
                                     iso3_cache=reader.iso3_cache)
                parts.append(IntakeResult(res.sites, res.saq, res.controls, res.nonconformities,
                                          _one_reject_per_line(res.rejects)))
            del slow
    if not parts:
        return None
    res = parts[0] if len(parts) == 1 else IntakeResult(*(
        pl.concat([getattr(p, name) for p in parts])
        for name in ("sites", "saq", "controls", "nonconformities", "rejects")))
    ex_lines = res.sites.select("site_id", pl.col("source_line").alias("line"))
    return res, ex_lines


def _validate_rows(rows: _SlowRows, dup: dict[int, int], *, file_name: str, isic: pl.DataFrame,
                   saq_fields: pl.DataFrame, schemas: dict[str, pa.DataFrameSchema],
                   iso3_cache: dict[str, str | None]) -> IntakeResult:
    """The exact path's validation (pandera), on the rows of some lines of a file."""
    # the rules module imports pandera (and pandas under it): ~0.5 s that the definitions import and
    # a file the fast path accepts whole never need (issue 24 item 3)
    import polars as pl

    from radar_pipeline.sites.intake.rules import _failures

    frames = _build_frames(rows.site_rows, rows.key_rows, rows.saq_rows, rows.ctl_rows, rows.audit_rows,
                           isic=isic, saq_fields=saq_fields, dup=dup, iso3_cache=iso3_cache)
    failures = pl.concat(
        [pl.DataFrame(rows.parse_rejects, schema={"line": pl.Int64, "field": pl.Utf8, "reason": pl.Utf8})]
        + [_failures(frames[name], schemas[name]) for name in ("sites", "keys", "saq", "controls", "audits")]
    )
    sites_raw = frames["sites"]
    site_id_shown = pl.when(pl.col("site_id").str.len_chars() > SITE_ID_SHOWN_CHARS) \
        .then(pl.col("site_id").str.slice(0, SITE_ID_SHOWN_CHARS) + "…").otherwise(pl.col("site_id"))
    rejects = (
        failures.unique(maintain_order=True)
        .join(sites_raw.select("line", site_id_shown.alias("site_id")), on="line", how="left")
        .select(pl.lit(file_name).alias("file"), "line", "site_id", "field", "reason")
        .sort("line", maintain_order=True)
        .cast(rejects_schema())
    )
    bad_lines = rejects.select("line").unique()

    good = sites_raw.join(bad_lines, on="line", how="anti")
    line_to_site = good.select("line", "site_id")
    sites = good.select(
        "site_id", "site_name", "iso3", "isic_code", "isic_level",
        pl.when(pl.col("isic_level") == "class").then(pl.col("isic_code")).alias("isic_class"),
        pl.lit(file_name).alias("source_file"), pl.col("line").alias("source_line"), "content_hash",
    ).cast(sites_schema())
    saq_out = _wide_saq(frames["saq"].join(line_to_site, on="line", how="inner"), saq_fields, "site_id") \
        .select(list(saq_schema(saq_fields)))
    ctl_out = (frames["controls"].join(line_to_site, on="line", how="inner")
               .select("site_id", "control_id").unique(maintain_order=True).cast(controls_schema()))
    nc_out = (frames["audits"].join(line_to_site, on="line", how="inner")
              .select("site_id", "nc_id", "severity", "status",
                      pl.col("raised_on_date").alias("raised_on"), pl.col("closed_on_date").alias("closed_on"))
              .cast(nc_schema()))
    return IntakeResult(sites=sites, saq=saq_out, controls=ctl_out, nonconformities=nc_out,
                        rejects=rejects)

def _build_frames(site_rows, key_rows, saq_rows, ctl_rows, audit_rows, *, isic: pl.DataFrame,
                  saq_fields: pl.DataFrame, dup: dict[int, int] | None = None,
                  iso3_cache: dict[str, str | None] | None = None) -> dict[str, pl.DataFrame]:
    import polars as pl

    str_cols = ("site_id", "site_name", "country", "isic")
    sites = pl.DataFrame(site_rows, schema={
        "line": pl.Int64, "content_hash": pl.Utf8,
        **{f"{k}__type": pl.Utf8 for k in TOP_LEVEL_KEYS}, **dict.fromkeys(str_cols, pl.Utf8)})

    # duplicate site ids: every occurrence after the first names the first line (`dup`
    # comes from the caller, which sees the whole file)
    if dup is None:
        first_line = pl.col("line").min().over("site_id")
        sites = sites.with_columns(
            pl.when(pl.col("site_id").is_not_null() & (pl.col("line") != first_line))
            .then(first_line).alias("duplicate_of_line"))
    else:
        sites = sites.with_columns(pl.col("line").replace_strict(
            list(dup), list(dup.values()), default=None, return_dtype=pl.Int64).alias("duplicate_of_line"))

    sites = _resolve_sites(sites, isic, iso3_cache if iso3_cache is not None else {})

    keys = pl.DataFrame(key_rows, schema={"line": pl.Int64, "scope": pl.Utf8, "key": pl.Utf8,
                                          "_field": pl.Utf8}).with_columns(pl.col("key").alias("_shown"))

    fields = saq_fields.select(
        "field", pl.col("type").alias("expected_type"), pl.col("min").cast(pl.Float64),
        pl.col("max").cast(pl.Float64),
        pl.col("allowed_values").cast(pl.Utf8).str.split("|").alias("allowed"))
    saq = pl.DataFrame(saq_rows, schema={
        "line": pl.Int64, "field": pl.Utf8, "json_type": pl.Utf8, "value_num": pl.Float64,
        "value_bool": pl.Boolean, "value_text": pl.Utf8, "_shown": pl.Utf8,
    }).join(fields, on="field", how="left").with_columns(
        (pl.lit("saq.") + pl.col("field")).alias("_field"),
        pl.when(pl.col("expected_type").is_not_null())
        .then(pl.col("_shown") + ", expected " + pl.col("expected_type"))
        .otherwise(pl.col("_shown")).alias("_shown"))

    ctl = pl.DataFrame(ctl_rows, schema={"line": pl.Int64, "pos": pl.Int64, "json_type": pl.Utf8,
                                         "control_id": pl.Utf8, "_field": pl.Utf8}) \
        .with_columns(pl.col("control_id").alias("_shown"))

    audits = pl.DataFrame(audit_rows, schema={
        "line": pl.Int64, "pos": pl.Int64, "json_type": pl.Utf8, "_field": pl.Utf8,
        **{f"{k}__type": pl.Utf8 for k in AUDIT_KEYS}, **dict.fromkeys(AUDIT_KEYS, pl.Utf8)})
    first_pos = pl.col("pos").min().over("line", "nc_id")
    audits = audits.with_columns(
        pl.col("raised_on").str.to_date("%Y-%m-%d", strict=False).alias("raised_on_date"),
        pl.col("closed_on").str.to_date("%Y-%m-%d", strict=False).alias("closed_on_date"),
        pl.when(pl.col("nc_id").is_not_null() & (pl.col("pos") != first_pos))
        .then(first_pos).alias("nc_first_pos"),
    ).with_columns(pl.concat_str(
        [pl.lit("nc_id="), pl.col("nc_id").fill_null("?"), pl.lit(" raised_on="),
         pl.col("raised_on").fill_null("-"), pl.lit(" closed_on="), pl.col("closed_on").fill_null("-")]
    ).alias("_shown"))
    return {"sites": sites, "keys": keys, "saq": saq, "controls": ctl, "audits": audits}
