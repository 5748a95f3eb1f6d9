"""Getting publisher files onto local disk: live HTTP, or a mirror folder.

Live mode downloads each catalogue entry (rules/sources.csv) with a
`requests` session whose urllib3 `Retry` retries connection errors, read
errors and 429/5xx responses with exponential backoff, honouring
`Retry-After`. Every download lands in `<landing>/<source>/<vintage>/<file>`
next to `<file>.meta.json` (url, sha256, bytes, fetched_at); the write is
atomic (temp file + rename) so a failed or truncated download never replaces
a good earlier copy.

Mirror mode (`RADAR_SOURCES_MIRROR=<dir>`) reads `<dir>/<source>/<vintage>/*`
— the layout of ../shared/data/sources — and never touches the network.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

from radar_pipeline.sources.toolkit import LandedFile, SourceError

# Several publishers (Cloudflare-fronted CDNs, the CAHRA API) refuse the
# default python-requests agent; a browser-like one is what their own pages send.
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0 Safari/537.36 radar-pipeline/0.1 (+https://github.com/radar-pipeline)")
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class CatalogueEntry:
    source: str
    vintage: str
    file: str
    url: str
    # release month (YYYY-MM) where the vintage label is not the release: TI labels the CPI
    # workbook by index year, and "CPI 2023" came out in January 2024 (METHODOLOGY §1)
    released: str = ""
    member: str = ""     # path inside a zip download, when the publisher ships a zip
    headers: str = ""    # extra request headers "Name: value; Name2: value2"
    note: str = ""


def load_catalogue(path: Path | None = None) -> list[CatalogueEntry]:
    from radar_pipeline.platform.settings import sources_catalogue

    with open(path or sources_catalogue(), newline="", encoding="utf-8") as fh:
        return [CatalogueEntry(**{k: (v or "").strip() for k, v in row.items()})
                for row in csv.DictReader(fh)]


class HttpClient:
    """A `requests` session with retries, backoff and timeouts.

    `get(url, params)` returns the body bytes or raises SourceError naming the
    source, the URL and the cause (unreachable, timeout, HTTP status).
    """

    def __init__(self, source: str, *, connect_timeout: float = 10.0, read_timeout: float = 120.0,
                 retries: int = 4, backoff: float = 1.0, backoff_max: float = 60.0,
                 user_agent: str = BROWSER_UA, headers: dict[str, str] | None = None):
        self.source = source
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff = backoff
        # requests and urllib3 are imported by a live download only, not by every process that
        # loads the definitions (~0.06 s, issue 24 item 3)
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                      backoff_factor=backoff, backoff_max=backoff_max,
                      status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
                      respect_retry_after_header=True, raise_on_status=False)
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers.update({"User-Agent": user_agent, **(headers or {})})

    def get(self, url: str, params: dict | None = None) -> bytes:
        # Retry covers the request; a body cut short after the headers arrived
        # (connection reset, Content-Length mismatch) surfaces only when reading
        # it, so that part gets its own bounded retry here.
        import requests

        for attempt in range(self.retries + 1):
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
                body = resp.content
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                if attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise SourceError(self.source, f"{url}: response body truncated or corrupt "
                                  f"after {attempt + 1} attempts ({exc})") from exc
            except requests.exceptions.ConnectTimeout as exc:
                # no connection at all: the publisher is unreachable, not slow
                raise SourceError(self.source, f"{url}: publisher unreachable (connection timed out "
                                  f"after retries: ConnectTimeout). Offline? Run with --sample or "
                                  "set RADAR_SOURCES_MIRROR=<dir> (UI launchpad: resources.warehouse.config.source "
                                  "= sample, or mirror + mirror_path)") from exc
            except requests.exceptions.Timeout as exc:
                raise SourceError(self.source, f"{url}: timed out after retries ({exc.__class__.__name__})") from exc
            except requests.exceptions.ConnectionError as exc:
                raise SourceError(self.source, f"{url}: publisher unreachable ({_root_cause(exc)}). "
                                  "Offline? Run with --sample or set RADAR_SOURCES_MIRROR=<dir> "
                                  "(UI launchpad: resources.warehouse.config.source = sample, or mirror + "
                                  "mirror_path)") from exc
            if resp.status_code >= 400:
                raise SourceError(self.source, f"{url}: HTTP {resp.status_code} {resp.reason} "
                                  f"after retries (body starts {body[:80]!r})")
            return body
        raise AssertionError("unreachable")


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__
    return str(exc)[:200]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def land_bytes(landing: Path, source: str, vintage: str, file: str, data: bytes,
               url: str | None) -> LandedFile:
    """Atomically store a download and its provenance; returns the landed file."""
    folder = landing / source / vintage
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file
    digest = sha256_bytes(data)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    meta = {"url": url, "sha256": digest, "bytes": len(data),
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
    meta_tmp = folder / f".{file}.meta.{os.getpid()}.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, folder / f"{file}.meta.json")
    return LandedFile(source, vintage, target, url=url, sha256=digest, extra=meta)


def fetch_entry(entry: CatalogueEntry, landing: Path,
                client: HttpClient | None = None) -> LandedFile:
    client = client or HttpClient(entry.source, headers=_parse_headers(entry.headers))
    data = client.get(entry.url)
    if entry.member:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                data = zf.read(entry.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise SourceError(entry.source, f"{entry.url}: expected a zip holding {entry.member} ({exc})"
                              + body_hint(data), file=entry.file) from exc
    # An outage answered with 200 (error page, empty body) must not replace the
    # good copy landed by an earlier fetch: refuse it before it touches landing.
    hint = body_hint(data)
    if hint and not entry.file.lower().endswith((".html", ".htm")):
        raise SourceError(entry.source, f"{entry.url}: unusable response{hint}", file=entry.file)
    return land_bytes(landing, entry.source, entry.vintage, entry.file, data, entry.url)


def body_hint(data: bytes) -> str:
    """Why a 200 body is unusable, when it is plainly an outage answer ('' otherwise)."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not data.strip():
        return ": the response body is empty"
    if head.startswith((b"<!doctype html", b"<html")):
        return ": got an HTML page — the publisher probably served an error page"
    return ""


def _parse_headers(text: str) -> dict[str, str]:
    pairs = [p.split(":", 1) for p in text.split(";") if ":" in p]
    return {k.strip(): v.strip() for k, v in pairs}


def mirror_files(mirror: Path, source: str, patterns: tuple[str, ...]) -> dict[str, list[LandedFile]]:
    """Files of one source in a mirror/landing folder, grouped by vintage (sorted)."""
    root = mirror / source
    if not root.is_dir():
        return {}
    out: dict[str, list[LandedFile]] = {}
    for vdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in vdir.iterdir() if p.is_file() and not p.name.startswith(".")
                       and any(fnmatch(p.name, pat) for pat in patterns)
                       and not p.name.endswith(".meta.json"))
        if files:
            out[vdir.name] = [_landed(source, vdir.name, p) for p in files]
    return out


def _landed(source: str, vintage: str, path: Path) -> LandedFile:
    meta_path = path.with_name(path.name + ".meta.json")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except ValueError as exc:  # cut short by a full disk or a kill: name the file, not "line 1 column 42"
        raise ValueError(f"{meta_path}: not valid JSON ({exc}); delete it and the file is described anew") from exc
    digest = meta.get("sha256") or sha256_bytes(path.read_bytes())
    return LandedFile(source, vintage, path, url=meta.get("url"), sha256=digest, extra=meta)


Getter = Callable[[str, dict | None], bytes]
