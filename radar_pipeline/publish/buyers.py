"""Buyer -> site lists: which sites each buyer sees in its own published file.

Files in RADAR_BUYERS_INBOX (default data/buyers): `*.csv` with a header
`buyer_id,site_id` or `*.jsonl` with one `{"buyer_id": ..., "site_id": ...}`
per line. The folder is the source of truth: every load replaces the
warehouse tables `buyer_sites` and `buyer_site_rejects` as a whole, so removing
a line (or a file) takes the site away from the buyer at the next publish.

Rows whose buyer or site id breaks the identifier rule (radar_pipeline/identifiers.py:
1-64 characters of `A-Z a-z 0-9 . _ -`, not only dots, no trailing newline), or is
missing, or whose line is unreadable, are rejected with a reason. Site ids the
warehouse does not know are kept (the buyer's list may arrive before the site data)
and reported. Symlinks in the folder are not followed (a link could point at any file
on the server, whose lines would then be echoed into reject reasons): each is one
reject row naming only the link.

Each buyer's published file is `buyers/<name>.duckdb` (its Parquet: `buyers/<name>/parquet/`,
its snapshots: `.snapshots/buyer-<name>/`), `<name>` = `buyer_file_name(buyer_id)`:

* an ordinary id — only lowercase letters, digits, `-` and `_` — is its own name: `acme-eu`
  -> `acme-eu.duckdb`;
* any other id (capitals, dots) is written as itself, leading dots as `_` (no hidden files),
  followed by `~` and a hex bit mask of the positions of its capitals and leading dots (bit i
  = character i, from 0): `Acme` -> `Acme~1.duckdb`, `ACME` -> `ACME~f.duckdb`, `acme.duckdb`
  -> `acme.duckdb~0.duckdb`, `.x` -> `_x~1.duckdb`.

Why: the mapping must be one-to-one even where the file system ignores case (macOS, Windows
shares), so that two buyers can never share a file (`Acme` and `acme` would, as would `acme`'s
file and the folder of a buyer `acme.duckdb`). `~` never occurs in an id, so escaped names never
meet ordinary ones; lowercased, a name still gives back its id (the mask says which letters
were capitals and which `_` were dots); names of ordinary ids contain no dot and escaped ones
end in hex digits, so no folder `<name>` is ever some file `<name>.duckdb`. Every name is at
most 81 characters (64 + `~` + 16), so the file, its temp names and the snapshot folder stay
far below the 255-byte limit. Ordinary ids keep the name they always had. Inside every file,
`publish_info.scope` is `buyer:<buyer_id>`.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline.identifiers import id_problem, is_id
from radar_pipeline.warehouse import in_transaction

MAX_LINE_BYTES = 1 << 16
ROW_SCHEMA = {"buyer_id": pl.Utf8, "site_id": pl.Utf8, "source_file": pl.Utf8, "source_line": pl.Int64}
REJECT_SCHEMA = {"file": pl.Utf8, "line": pl.Int64, "buyer_id": pl.Utf8, "site_id": pl.Utf8, "reason": pl.Utf8}


@dataclass
class BuyerLoad:
    files: list[str]
    rows: pl.DataFrame
    rejects: pl.DataFrame
    unknown_sites: list[tuple[str, str]] = field(default_factory=list)  # (buyer_id, site_id)

    @property
    def buyers(self) -> list[str]:
        return sorted(set(self.rows["buyer_id"].to_list()))


_ORDINARY = re.compile(r"[a-z0-9_-]+")
_MASK = re.compile(r"0|[1-9a-f][0-9a-f]{0,15}")


def buyer_file_name(buyer_id: str) -> str:
    """The name of a buyer's file (without `.duckdb`) and folders: see the module docstring."""
    problem = id_problem("buyer_id", buyer_id)
    if problem:
        raise ValueError(f"refusing to derive a file name from an invalid id: {problem}")
    if _ORDINARY.fullmatch(buyer_id):
        return buyer_id
    lead = len(buyer_id) - len(buyer_id.lstrip("."))
    mask = sum(1 << i for i, c in enumerate(buyer_id) if i < lead or c.isupper())
    return "_" * lead + buyer_id[lead:] + f"~{mask:x}"


def buyer_id_of(name: str) -> str | None:
    """The buyer id whose file name (without `.duckdb`) is `name`; None for a name
    `buyer_file_name` never gives (a file publish did not write)."""
    if "~" not in name:
        return name if _ORDINARY.fullmatch(name) and is_id(name) else None
    shown, _, mask = name.rpartition("~")
    if not _MASK.fullmatch(mask):
        return None
    bits = int(mask, 16)
    candidate = "".join("." if c == "_" and bits >> i & 1 else c for i, c in enumerate(shown))
    return candidate if is_id(candidate) and buyer_file_name(candidate) == name else None


def _shown(value: object) -> str | None:
    return None if value is None else str(value)[:80]


def _check(file: str, line: int, buyer_id: object, site_id: object, rows: list, rejects: list) -> None:
    problems = [p for p in (id_problem("buyer_id", buyer_id), id_problem("site_id", site_id)) if p]
    if problems:
        rejects.append({"file": file, "line": line, "buyer_id": _shown(buyer_id), "site_id": _shown(site_id),
                        "reason": "; ".join(problems)})
    else:
        rows.append({"buyer_id": buyer_id, "site_id": site_id, "source_file": file, "source_line": line})


def read_file(path: Path, rows: list, rejects: list) -> None:
    name = path.name
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "buyer_id" not in header or "site_id" not in header:
                rejects.append({"file": name, "line": 1, "buyer_id": None, "site_id": None,
                                "reason": f"header must have buyer_id and site_id, got {header}"})
                return
            reader.fieldnames = header
            for rec in reader:
                _check(name, reader.line_num, (rec.get("buyer_id") or "").strip() or None,
                       (rec.get("site_id") or "").strip() or None, rows, rejects)
        return
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                rejects.append({"file": name, "line": n, "buyer_id": None, "site_id": None,
                                "reason": f"line longer than {MAX_LINE_BYTES} bytes"})
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                rejects.append({"file": name, "line": n, "buyer_id": None, "site_id": None,
                                "reason": f"not valid JSON: {exc}"[:200]})
                continue
            if not isinstance(rec, dict):
                rejects.append({"file": name, "line": n, "buyer_id": None, "site_id": None,
                                "reason": "line is not a JSON object"})
                continue
            _check(name, n, rec.get("buyer_id"), rec.get("site_id"), rows, rejects)


def read_folder(folder: Path) -> BuyerLoad:
    folder = Path(folder)
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".jsonl")) \
        if folder.is_dir() else []
    rows: list[dict] = []
    rejects: list[dict] = []
    files = []
    for path in candidates:
        reason = ("symlink not followed (put the file itself in the folder)" if path.is_symlink()
                  else None if path.is_file() else "not a regular file")
        if reason is None:
            try:
                read_file(path, rows, rejects)
                files.append(path)
                continue
            except OSError as exc:  # unreadable (permissions, vanished): the other files still load
                reason = f"cannot read the file: {exc.strerror or type(exc).__name__}"
        rejects.append({"file": path.name, "line": None, "buyer_id": None, "site_id": None,
                        "reason": reason})
    frame = pl.DataFrame(rows, schema=ROW_SCHEMA).unique(["buyer_id", "site_id"], keep="first",
                                                         maintain_order=True)
    return BuyerLoad([p.name for p in files], frame, pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def load(con: duckdb.DuckDBPyConnection, folder: Path) -> BuyerLoad:
    """Read the folder and replace buyer_sites / buyer_site_rejects in one transaction."""
    result = read_folder(folder)
    con.register("_buyer_rows", result.rows)
    con.register("_buyer_rejects", result.rejects)

    def body(c):
        c.execute("delete from buyer_sites")
        c.execute("insert into buyer_sites by name select * from _buyer_rows")
        c.execute("delete from buyer_site_rejects")
        c.execute("insert into buyer_site_rejects by name select * from _buyer_rejects")
    try:
        # on a DuckLake: a named snapshot, rerun if it raced another writer of these tables
        in_transaction(con, body, "replace buyer_sites from the buyers inbox")
    finally:
        con.unregister("_buyer_rows")
        con.unregister("_buyer_rejects")
    result.unknown_sites = con.sql(
        "select buyer_id, site_id from buyer_sites anti join sites using (site_id) "
        "order by buyer_id, site_id").fetchall()
    return result
