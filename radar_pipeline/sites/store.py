"""Writing sites into the warehouse and scoring a set of them — shared by the
Dagster sensor/asset and the CLI, so both paths give identical results.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from radar_pipeline.platform.processes import remove_left_by_dead
from radar_pipeline.platform.warehouse import rollback
from radar_pipeline.rules import check as rules_check
from radar_pipeline.sites.intake import CHUNK_LINES, IntakeResult, iter_sites_jsonl, read_sites_jsonl

if TYPE_CHECKING:
    import polars as pl


@dataclass
class IngestSummary:
    file: str
    file_sha256: str
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: int = 0

    @property
    def to_score(self) -> list[str]:
        return [*self.new, *self.changed]


def reference(con: duckdb.DuckDBPyConnection, *, check_stored: bool = True
              ) -> tuple[set[str], pl.DataFrame, set[str]]:
    """Country universe, ISIC table and control ids the intake validates against. `check_stored`:
    also check the stored sites' control ids against the catalogue (`radar score`'s in-memory site
    tables are empty: nothing to check, and that query makes duckdb import pyarrow.dataset and
    pandas, ~0.5-1 s of a cold process)."""
    from radar_pipeline.sites import scoring

    countries = {r[0] for r in con.sql("select iso3 from countries").fetchall()}
    isic = isic_frame(con)
    if not countries or isic.is_empty():
        raise RuntimeError("the warehouse has no countries/isic yet: run `radar refresh` (or materialize "
                           "the reference assets) before loading sites")
    rules_check.check()  # a broken rules folder stops the intake before a site is judged by it
    controls = set(scoring.read_controls()["control_id"].to_list())
    if check_stored:
        rules_check.check_stored_controls(con, controls)
    return countries, isic, controls


def isic_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The ISIC table the intake validates against, built from its rows: `.pl()` goes through
    Arrow, and importing pyarrow (~0.15 s) delays `radar score`'s first chunks to its workers."""
    import polars as pl

    rel = con.sql("select code, level, section, division, grp, is_primary_producer from isic")
    kinds = {"VARCHAR": pl.Utf8, "BOOLEAN": pl.Boolean}
    types = [str(t) for t in rel.types]
    if not all(t in kinds for t in types):  # another layout: as DuckDB converts it
        return rel.pl()
    return pl.DataFrame(rel.fetchall(), schema={c: kinds[t] for c, t in zip(rel.columns, types, strict=True)},
                        orient="row")


def read_file(con: duckdb.DuckDBPyConnection, path: Path) -> IntakeResult:
    countries, isic, controls = reference(con)
    return read_sites_jsonl(path, countries=countries, isic=isic, controls=controls)


def unreadable_file(path: Path) -> str | None:
    """Why `path` cannot be ingested (missing, a directory, a symlink loop, unreadable), as a
    sentence for the user; None when it is a readable regular file."""
    try:
        st = os.stat(path)  # follows symlinks: a loop is ELOOP here
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or type(exc).__name__}"
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory; give a JSON Lines file"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or type(exc).__name__}"
    return None


_TMP_PREFIX = "radar-ingest-"


def remove_orphaned_temp_dirs(tmp_root: Path | None = None) -> list[Path]:
    """Staging folders of ingests whose process died (SIGKILL, OOM): `radar-ingest-<pid>-*`
    in the temp folder with <pid> gone. Called at the start of every ingest."""
    root = Path(tmp_root or tempfile.gettempdir())
    return remove_left_by_dead((p for p in root.glob(f"{_TMP_PREFIX}*") if p.is_dir()),
                               rf"^{_TMP_PREFIX}(\d+)-")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


_STAGED = ("sites", "saq", "controls", "nonconformities", "rejects")


def ingest(con: duckdb.DuckDBPyConnection, path: Path, result: IntakeResult | None = None,
           *, chunk_lines: int = CHUNK_LINES, on_chunk=None) -> IngestSummary:
    """Validate a JSON Lines file and store it: new/changed sites replace their
    current state, unchanged ones are left alone, rejects are (re)recorded for
    this file content. One transaction: a crash leaves the previous state.

    Without `result` the file is streamed in chunks of `chunk_lines` lines. Each chunk's
    result is staged as Parquet files in a temporary folder and applied inside the one
    transaction by a worker thread while the main thread validates the next chunk.
    Memory does not grow with the file: neither the parsed file nor a transaction's worth
    of appended rows (DuckDB keeps rows appended from Python frames inside an open
    transaction in memory; rows inserted from Parquet are written out as it goes).
    `on_chunk(part)` is called with each validated chunk (progress output)."""
    path = Path(path)
    problem = unreadable_file(path)
    if problem:
        raise ValueError(problem)
    remove_orphaned_temp_dirs()
    now = datetime.now(UTC).replace(tzinfo=None)
    if result is None:
        countries, isic, controls = reference(con)
        parts = iter_sites_jsonl(path, countries=countries, isic=isic, controls=controls,
                                 chunk_lines=chunk_lines)
    else:
        parts = iter([result])
    summary = IngestSummary(path.name, "")
    n_valid = 0
    con.execute("begin transaction")
    try:
        with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-") as tmp, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-ingest") as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-ingest-sha256") as hasher, \
                _parser_keeps_a_core(con):
            # the digest (a full read of the file) is computed while the first chunk is parsed;
            # only the worker, which needs it to record rejects, waits for it
            digest = hasher.submit(_file_sha256, path)
            # only the worker uses `con` while chunks are applied; the main thread parses
            forget = pool.submit(_forget_rejects, con, digest)
            pending = None
            for k, part in enumerate(parts):
                n_valid += part.sites.height
                summary.rejected += part.rejects.height
                if on_chunk is not None:
                    on_chunk(part)
                if pending is not None:  # one chunk in flight: memory stays bounded
                    _collect(summary, pending.result())
                pending = pool.submit(_apply_chunk, con, part, Path(tmp) / f"{k:06d}", digest, now)
            forget.result()
            if pending is not None:
                _collect(summary, pending.result())
            summary.file_sha256 = digest.result()
        summary.unchanged = n_valid - len(summary.new) - len(summary.changed)
        con.execute("""insert into site_intake_files (file, file_sha256, processed_at, n_valid, n_rejected,
                                                      n_new, n_changed, n_unchanged)
                       values ($f, $d, $now, $v, $r, $n, $c, $u)""",
                    {"f": path.name, "d": summary.file_sha256, "now": now, "v": n_valid,
                     "r": summary.rejected, "n": len(summary.new), "c": len(summary.changed),
                     "u": summary.unchanged})
        con.execute("commit")
    except BaseException as exc:
        rollback(con, exc)
        raise
    return summary


def _forget_rejects(con: duckdb.DuckDBPyConnection, digest: Future[str]) -> None:
    """Rejects are (re)recorded for this file content: drop those an earlier load of it left."""
    con.execute("delete from site_rejects where file_sha256 = $d", {"d": digest.result()})


@contextmanager
def _parser_keeps_a_core(con: duckdb.DuckDBPyConnection):
    """While a file is ingested, DuckDB gets one thread fewer than the cores this process may
    use. Parsing is one Python thread that needs a core of its own the whole time; with DuckDB
    on every core, the 1M-site intake took 27 s on 2 cores instead of 25, while DuckDB on one
    thread still applies each chunk before the next one is parsed."""
    before = con.sql("select current_setting('threads')").fetchall()[0][0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    con.execute(f"set threads = {max(1, min(int(before), cores - 1))}")
    try:
        yield
    finally:
        con.execute(f"set threads = {int(before)}")


def _collect(summary: IngestSummary, new_changed: tuple[list[str], list[str]]) -> None:
    summary.new.extend(new_changed[0])
    summary.changed.extend(new_changed[1])


def _apply_chunk(con: duckdb.DuckDBPyConnection, part: IntakeResult, stem: Path, digest: Future[str],
                 now: datetime) -> tuple[list[str], list[str]]:
    """Inside the caller's transaction: diff one chunk's valid sites against the stored
    hashes, replace the state of its new/changed sites, append their history, record its
    rejects. Site ids are unique across the file (a repeat is rejected), so chunk-wise
    is file-wise. The rows go through Parquet files (see `ingest`), deleted after."""
    files = {name: f"{stem}_{name}.parquet" for name in _STAGED}
    try:
        for name in _STAGED:
            getattr(part, name).write_parquet(files[name], compression="lz4")
        return _apply_staged(con, files, digest.result(), now, part.sites.height)
    finally:
        for f in files.values():
            Path(f).unlink(missing_ok=True)


def _apply_staged(con: duckdb.DuckDBPyConnection, files: dict[str, str], digest: str, now: datetime,
                  n_valid: int) -> tuple[list[str], list[str]]:
    from radar_pipeline.sites import scoring

    staged = {name: f"read_parquet(${name})" for name in _STAGED}

    def run(sql: str, **extra) -> None:
        params = {**files, **extra}
        con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})

    run(f"""create or replace temp table _ingest_touched as
            select s.site_id, s.source_line,
                   case when k.site_id is null then 'new' else 'changed' end as change
            from {staged['sites']} s left join sites k on k.site_id = s.site_id
            where k.site_id is null or k.content_hash <> s.content_hash""")
    rows = con.sql("select site_id, change from _ingest_touched order by source_line").fetchall()
    new = [r[0] for r in rows if r[1] == "new"]
    changed = [r[0] for r in rows if r[1] == "changed"]
    if changed:
        # only a changed site has stored rows (a new id is not in `sites`, and its answers
        # are only ever written together with its `sites` row)
        for table in ("site_saq", "site_controls", "site_nonconformities", "sites"):
            con.execute(f"delete from {table} where site_id in "
                        f"(select site_id from _ingest_touched where change = 'changed')")
    if rows:
        # every staged site new or changed (e.g. a first load): no filter on the copies
        touched = "true" if len(rows) == n_valid else "site_id in (select site_id from _ingest_touched)"
        run(f"insert into sites by name select s.*, $now as updated_at from {staged['sites']} s "
            f"where {touched}", now=now)
        run(f"insert into site_saq by name select * from {staged['saq']} where {touched}")
        run(f"insert into site_controls by name select * from {staged['controls']} where {touched}")
        run(f"insert into site_nonconformities by name select * from {staged['nonconformities']} "
            f"where {touched}")
        run(f"""insert into site_history by name
                select s.site_id, s.content_hash, t.change, s.source_file, s.source_line,
                       $now as received_at
                from {staged['sites']} s join _ingest_touched t on t.site_id = s.site_id""", now=now)
    # a site accepted now resolves its open rejects from earlier files / file versions
    run(f"update site_rejects set resolved_at = $now where resolved_at is null and file_sha256 <> $d "
        f"and site_id in (select site_id from {staged['sites']})", d=digest, now=now)
    # §8c: the site stage's rules (saq_fields.csv, controls.csv) judged these lines
    run(f"insert into site_rejects by name select r.*, $d as file_sha256, $now as received_at, "
        f"$mv as methodology_version from {staged['rejects']} r", d=digest, now=now, mv=scoring.site_version())
    con.execute("drop table _ingest_touched")
    return new, changed


def stale_sites(con: duckdb.DuckDBPyConnection, edition: int | None) -> list[str]:
    """Stored sites whose current content has no score for `edition` (None: for any edition;
    sql/sites/stale_sites.sql), in intake order: what an interrupted ingest left to score."""
    from radar_pipeline.sites import scoring

    return [r[0] for r in con.execute(scoring._sql("stale_sites"), {"edition": edition}).fetchall()]


def override_drift(con: duckdb.DuckDBPyConnection, edition: int | None = None) -> pl.DataFrame:
    """(edition, site_id) of stored scores whose category disagrees with the overrides in force
    today in RADAR_OVERRIDES (sql/sites/override_drift.sql): an override added, changed or removed
    by hand, or one that expired. Loads the overrides as scoring does (temp tables)."""
    from radar_pipeline.sites import scoring

    scoring._load_overrides(con, None)
    return con.sql(scoring._sql("override_drift"), params={"edition": edition}).pl()


def apply_overrides(con: duckdb.DuckDBPyConnection, log=None) -> dict[int, list[str]]:
    """Rescore exactly the sites whose stored category disagrees with today's overrides, on every
    edition they have a score for (METHODOLOGY §8b: the overrides folder is an input like a site
    file). Returns edition -> the sites rescored."""
    drift = override_drift(con)
    done: dict[int, list[str]] = {}
    for (edition,), group in drift.group_by("edition", maintain_order=True):
        ids = group["site_id"].to_list()
        score_and_store(con, int(edition), ids)
        done[int(edition)] = ids
        if log:
            log(f"edition {edition}: {len(ids)} site(s) rescored for a new, changed or expired override")
    return done


def unscorable(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str]) -> list[str]:
    """Of `site_ids`, those whose score row for `edition` has no final score (their country x
    ISIC has no inherent risk in that edition) or that have no score row at all."""
    import polars as pl

    ids = pl.DataFrame({"site_id": site_ids}, schema={"site_id": pl.Utf8})  # noqa: F841 (used in SQL)
    return [r[0] for r in con.execute(
        "select i.site_id from ids i left join site_scores s on s.site_id = i.site_id and s.edition = $e "
        "where s.final_score is null order by i.site_id", {"e": edition}).fetchall()]


def latest_edition(con: duckdb.DuckDBPyConnection) -> int:
    row = con.sql("select max(edition) from inherent_risk_overall").fetchall()[0][0]
    if row is None:
        raise RuntimeError("no inherent risk in the warehouse: run `radar refresh --edition Y` first")
    return int(row)


def score_and_store(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                    methodology_version: str | None = None, overrides: pl.DataFrame | None = None
                    ) -> pl.DataFrame:
    """Score the given sites (all when None) for an edition and replace their rows
    in site_scores / site_score_factors for that edition only. Returns the scores.
    methodology_version: default the site stage's fingerprint (§8c); overrides: default the
    ones in force today in RADAR_OVERRIDES (§8b; rejects left in temp.site_override_rejects)."""
    import polars as pl

    from radar_pipeline.sites import scoring

    scoring.load_rules(con, temp=True)
    methodology_version = methodology_version or scoring.site_version()
    scores = scoring.score_sites(con, edition, site_ids, methodology_version, overrides)
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    scores = scores.with_columns(scored_at=pl.lit(scored_at))
    # site_uncertainty.sql's two ASOF joins are planned as nested loops when DuckDB estimates their
    # left side small, and it estimates from the committed rows: the first scoring of a warehouse
    # (its scores only in this transaction) got the loops, 2.2 s instead of 0.35 s per 50k sites
    # (bench/README.md, eighth session). The setting picks the plan, not the rows; it is reset
    # after the commit or rollback (in an aborted transaction it could not be).
    con.execute("set asof_loop_join_threshold = 0")
    try:
        _store_scores(con, edition, methodology_version, scored_at)
    finally:
        con.execute("reset asof_loop_join_threshold")
    return scores


def _store_scores(con: duckdb.DuckDBPyConnection, edition: int, methodology_version: str,
                  scored_at: datetime) -> None:
    """score_and_store's writes, in one transaction: the scores score_sites left in the temp
    table scored_sites, their explanation, remediation and uncertainty rows."""
    from radar_pipeline.sites import scoring

    con.execute("begin transaction")
    try:
        con.execute("delete from site_scores where edition = $e and site_id in (select site_id from score_scope)",
                    {"e": edition})
        # straight from the temp table score_sites left behind: no round trip through polars
        con.execute("insert into site_scores by name select *, $t::timestamp as scored_at from scored_sites",
                    {"t": scored_at})
        con.execute("delete from site_score_factors where edition = $e "
                    "and site_id in (select site_id from score_scope)", {"e": edition})
        # the explanation rows (79 per site) are computed and written inside DuckDB
        con.execute("insert into site_score_factors by name " + scoring._sql("site_score_factors"),
                    {"edition": edition, "methodology_version": methodology_version})
        # what would lower each score (sql/sites/site_remediation.sql reads the rows just written)
        con.execute("delete from site_remediation where edition = $e "
                    "and site_id in (select site_id from score_scope)", {"e": edition})
        con.execute("insert into site_remediation by name " + scoring._sql("site_remediation"),
                    {"edition": edition, "methodology_version": methodology_version})
        # how sure each category is (sql/sites/site_uncertainty.sql: the edition's country_topic_draws
        # through §5 and §8; beside the score, never in it)
        con.execute("delete from site_uncertainty where edition = $e "
                    "and site_id in (select site_id from score_scope)", {"e": edition})
        con.execute("insert into site_uncertainty by name " + scoring._sql("site_uncertainty"),
                    {"edition": edition, "methodology_version": methodology_version})
        con.execute("commit")
    except BaseException as exc:
        rollback(con, exc)
        raise


def override_rejects(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Override rows the last scoring on `con` left out (file, line, site_id, field, reason),
    plus valid rows naming a site that is not in the register (they match nothing)."""
    return con.sql("""
        select file, line, site_id, field, reason from site_override_rejects
        union all
        select o.file, o.line, o.site_id, 'site_id', 'unknown site ' || o.site_id || ' (not in the site register)'
        from site_override_rows as o
        where o.site_id not in (select site_id from sites)
        order by file, line""").pl()
