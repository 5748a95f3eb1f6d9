"""Intake of buyer site files (JSON Lines, see /work/shared/SITE_INPUT.md).

Flow (`iter_sites_jsonl`: one result per chunk of CHUNK_LINES lines, so memory is
bounded by the chunk, not the file; `read_sites_jsonl` concatenates the chunks):
1. Each physical line is read with a hard size cap (lines over 1 MiB are rejected
   without being parsed).
2. Fast path, for the lines that are valid (nearly all of a real file): orjson parses
   the line; the top level, SAQ keys and audit keys are checked in Python, and the values
   are gathered column-wise (one list per SAQ field / control / audit key) and checked as
   polars columns (types, ranges, enums, catalogue, dates, site_id regex, country and
   ISIC). The content hash is sha256 of orjson's sorted-keys bytes, which equal
   `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for the lines
   the fast path keeps (no backslash escapes; floats printed alike).
3. Exact path: every line the fast path cannot prove valid — malformed, over the cap, any
   rule broken, a duplicate site_id, escapes, a possible repeated key, floats outside the
   range where both printers agree — is re-read by the original reader: `json` with
   duplicate-key and constant checks, flattened into small typed frames (site, SAQ answer,
   control, audit finding, key) validated by pandera polars schemas. Every failure becomes
   a reject row naming the file, line, site id (when it is a string), field and reason. So
   all rejects, and their wording, come from the exact path.
4. Duplicate site_ids are tracked across chunks (a dict of the ids seen so far): a
   second occurrence is rejected with the first line's number.

Values are never interpolated into SQL: the result is polars frames, which
callers hand to DuckDB as Arrow/Parquet.

`iter_sites_jsonl(..., workers=N)` runs steps 1-3's per-line part (orjson, the fast path) in N worker
processes, the parent keeping steps 3's exact path and 4 (workers.py; `radar score` on a big file,
RADAR_INTAKE_WORKERS): the same results. Lines are read by blocks (reader._iter_lines), the same lines
and sizes as readline with the cap. `radar score` starts the workers (workers.IntakePool) before it
reads the warehouse, and passes the pool (`iter_sites_jsonl(..., pool=...)`).

`radar score` reads with `content_hash=False`: it stores nothing, so the fast path skips the
hash (orjson dumps + sha256, ~15 % of its parse) and the sites' content_hash is null.

`radar score` first tries native.py on a whole file: msgspec checks each line's keys and JSON types
(in the workers) while DuckDB reads the file with the types declared, and the value rules run as SQL
column expressions; the sites are loaded only if every line passes (the same rows as this flow's),
else the file goes through the flow above, which words the rejects.

Modules: fields.py (limits, result schemas, the questionnaire, country / ISIC resolution),
fast.py (step 2), exact.py (step 3) with rules.py (its pandera schemas and the wording of
rejects), reader.py (steps 1 and 4, chunking), workers.py (the worker processes). The names below
are the package's public interface (they were one module, radar_pipeline/sites/intake.py).
"""

from __future__ import annotations

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.sites.intake.exact import EXACT_ROWS_BUDGET
from radar_pipeline.sites.intake.fields import (
    AMBIGUOUS_COUNTRIES,
    AUDIT_KEYS,
    MAX_INTEGER,
    MAX_ITEMS,
    MAX_KEYS,
    MAX_LINE_BYTES,
    MORE_SHOWN,
    SCHEMA_GETTERS,
    SEVERITIES,
    SHOWN_CHARS,
    SITE_ID_PATTERN,
    SITE_ID_SHOWN_CHARS,
    STATUSES,
    TOP_LEVEL_KEYS,
    IntakeResult,
    country_shown,
    load_saq_fields,
    saq_schema,
    to_iso3,
)
from radar_pipeline.sites.intake.reader import (
    CHUNK_LINES,
    iter_sites_jsonl,
    read_sites_jsonl,
)

__all__ = [
    "AMBIGUOUS_COUNTRIES", "AUDIT_KEYS", "CHUNK_LINES", "CONTROLS_SCHEMA", "EXACT_ROWS_BUDGET", "MAX_INTEGER",
    "MAX_ITEMS", "MAX_KEYS", "MAX_LINE_BYTES", "MORE_SHOWN", "NC_SCHEMA", "REJECTS_SCHEMA", "SAQ_DTYPES",
    "SEVERITIES", "SHOWN_CHARS", "SITES_SCHEMA", "SITE_ID_PATTERN", "SITE_ID_SHOWN_CHARS", "STATUSES",
    "TOP_LEVEL_KEYS", "IntakeResult", "country_shown", "iter_sites_jsonl", "load_saq_fields",
    "read_sites_jsonl", "saq_schema", "to_iso3",
]

# SITES_SCHEMA, SAQ_DTYPES, ... (polars dtypes): built on first use, see fields.py
__getattr__ = lazy_attributes(__name__, **SCHEMA_GETTERS)
