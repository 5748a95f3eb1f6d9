"""Publisher files parsed once across processes: a vintage folder's rows kept in the parse cache
(platform/parse_cache.py) and read back while its files, the specs, the rule tables and the parser
code stay the same. Used by registry.parse_vintage (observations, benchmark values) and by the
adapters' readers of standard errors."""
from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from radar_pipeline.platform import settings
from radar_pipeline.sources.toolkit.contract import IndicatorSpec, LandedFile

if TYPE_CHECKING:
    import polars as pl

# One parse at a time in a process: a refresh's prefetch thread (sources/prefetch.py) parses beside
# the steps, and the adapters keep per-process memos (tables._SHEETS) that are not made for two
# parsers at once. Held across the cache lookup, so a step whose vintage is being parsed ahead waits
# for that parse and reads its entry instead of parsing it a second time. Reentrant: a parse may
# read another adapter's parse (worldbank_wgi reads API pages with worldbank_wdi's).
PARSE_LOCK = threading.RLock()


@lru_cache(maxsize=1)
def _parser_code() -> str:
    """sha256 over the source of every module under radar_pipeline/sources (adapters, toolkit,
    reference lists) and the text reader: which of them a parse runs varies by source, and any
    edit there makes every cached parse stale rather than one wrong."""
    import hashlib

    from radar_pipeline.platform import text_input

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]  # radar_pipeline/sources
    for path in sorted([*root.rglob("*.py"), Path(text_input.__file__).resolve()]):
        digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _rules_state() -> str:
    """The rule tables as the parse reads them (names, sizes, times: cheap to take every call)."""
    folder = settings.rules_dir()
    try:
        return repr(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
                           if p.is_file()))
    except OSError:
        return ""


def parsed_vintage(source: str, files: list[LandedFile], specs: list[IndicatorSpec], *, parse: Callable,
                   purpose: str = "observations", kwargs: dict | None = None) -> pl.DataFrame:
    """`parse(files, specs, **kwargs)` (an adapter's parse, or its reader of standard errors): the
    rows of one vintage folder, parsed again only when a file, the specs, the rule tables or the
    parser's code changed. Each run is a new process: a backfill of three
    editions, a rerun, a refresh after a methodology edit read the same publisher files, and the
    WGI workbook alone took ~0.4 s a read. Kept between processes in the parse cache
    (platform/parse_cache.py, RADAR_CACHE), one entry per (source, purpose, vintage folder). A
    parse that raises is never cached. (The user source caches per file itself: parsed_once.)"""
    with PARSE_LOCK:
        return _parsed_vintage(source, files, specs, parse=parse, purpose=purpose, kwargs=kwargs or {})


def _parsed_vintage(source: str, files: list[LandedFile], specs: list[IndicatorSpec], *, parse: Callable,
                    purpose: str, kwargs: dict) -> pl.DataFrame:
    import hashlib

    from radar_pipeline.platform import parse_cache
    from radar_pipeline.sources.toolkit.tables import _packed, _unpacked

    if not files:
        return parse(files, specs, **kwargs)
    contents = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        # the bytes as they are now, not a landed file's recorded sha256 (an edit by hand keeps it)
        with open(f.path, "rb") as fh:
            contents.update(f"{f.name}\0{hashlib.file_digest(fh, 'sha256').hexdigest()}\0".encode())
    rules = repr((purpose, [repr(s) for s in specs],
                  sorted((k, sorted(v) if isinstance(v, set | frozenset) else v) for k, v in kwargs.items())))
    k = parse_cache.key(f"source-{source}-{purpose}", files[0].path.parent, contents.hexdigest(),
                        rules + "|" + _rules_state() + "|" + _parser_code())
    cached = parse_cache.load(k)
    rows = _unpacked(cached) if cached is not None else None  # the frames as parsed_once keeps them
    if rows is None:
        rows = parse(files, specs, **kwargs)
        parse_cache.store(k, *_packed(rows))
    return rows
