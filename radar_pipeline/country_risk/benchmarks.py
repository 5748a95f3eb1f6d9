"""Benchmark agreement (issue 25 item 1): does the country picture agree with independent references?

rules/benchmarks.csv names, per row, a reference series (`source` + `series`: any publisher layout an
adapter reads, or `user_file` = a file `iso3,value` in RADAR_USER_FILES/benchmarks/<vintage>/<series>),
the topic it should agree with (`overall` = mean country risk over the topics), the expected direction
of the agreement and a minimum Spearman rho. A benchmark must not be an input of the topic it checks:
a row whose source and series are those of an indicator of that topic (of any topic for `overall`) in
rules/indicators.csv is refused, naming the file and the line.

Per edition and row: Spearman rho between the country topic score (country_topic_risk) and the
benchmark's latest value within the edition window (the vintages released by the edition, as for
the indicators, METHODOLOGY §1) over the countries having both, with a seeded bootstrap 95 %
interval (table `benchmark_agreement`); the 10 countries with the largest rank gap, with their
indicator values and how each was obtained (`benchmark_disagreements`); a rank scatter per pair
(the asset `benchmark_agreement_picture` in the pictures group, redrawn after each materialization:
drawing it took ~1.5 s of every refresh). `min_rho` is the least agreement in the expected direction: rho for
`positive`, -rho for `negative`. The asset check warns (never fails) when the agreement falls below
it or drops by more than 0.05 against the previous methodology version's rho: before a pair's row
is replaced, its stored rho is kept as `previous_rho` when it was computed with another version
(a rerun with the same rules carries the earlier version's forward).
"""

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from radar_pipeline.platform import settings
from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import DuckDBWarehouse, replace_slices, table_columns, table_schema_metadata
from radar_pipeline.rules import fingerprint
from radar_pipeline.rules.methodology import TOPICS
from radar_pipeline.sources import registry
from radar_pipeline.sources.reference.countries import resolve
from radar_pipeline.sources.toolkit import FlagsAggregates, IndicatorSpec, LandedFile, SourceError
from radar_pipeline.sources.toolkit.fetch import mirror_files

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

POOL = "duckdb_write"
GROUP = "country_risk"
RULE_FILE = "benchmarks.csv"
COLUMNS = ("benchmark_id", "source", "series", "topic", "direction", "min_rho", "why")
OVERALL = "overall"           # mean country risk over the topics
USER_FILE = "user_file"       # RADAR_USER_FILES/benchmarks/<vintage>/<series>: iso3,value
USER_FOLDER = "benchmarks"
DIRECTIONS = ("positive", "negative")
RESAMPLES = 1000              # bootstrap resamples per pair
SEED = 25                     # base seed; each pair's stream is derived from it and the pair's key
MAX_DROP = 0.05               # warn when the agreement drops by more than this against the previous version
TOP_GAPS = 10                 # countries listed per pair in benchmark_disagreements
MIN_COUNTRIES = 3             # below this no rho is computed (null)
CHECK = "agreement_holds"


class BenchmarkRuleError(ValueError):
    """A broken or refused row of rules/benchmarks.csv; the message names the file and the line."""


@dataclass(frozen=True)
class Benchmark:
    benchmark_id: str
    source: str
    series: str
    topic: str
    direction: str
    min_rho: float
    why: str
    line: int = 0

    @property
    def sign(self) -> int:
        return 1 if self.direction == "positive" else -1


# --- the rule table ------------------------------------------------------------------------------

def _norm(series: str) -> str:
    return re.sub(r"\s+", " ", series.strip()).casefold()


def load_benchmarks(path: Path | None = None, indicators: Path | None = None) -> list[Benchmark]:
    """The rows of rules/benchmarks.csv, checked: columns, ids, topic (or `overall`), direction,
    min_rho in 0..1, a known source, and never an input of the topic it checks."""
    from radar_pipeline.rules.check import RuleTableError, Table, read_table
    from radar_pipeline.sources.toolkit import load_indicator_specs

    path = path or settings.rules_dir() / RULE_FILE
    if not path.exists():  # a what-if rules folder copied before the table existed: no benchmark
        return []
    try:
        rows = read_table(path, Table(COLUMNS))
    except RuleTableError as exc:
        raise BenchmarkRuleError(str(exc)) from None
    specs = load_indicator_specs(indicators or path.with_name("indicators.csv"))
    sources = set(registry.adapter_names())
    out: list[Benchmark] = []
    seen: dict[str, int] = {}
    for line, r in rows:
        r = {k: (v or "").strip() for k, v in r.items()}

        def bad(reason: str, line: int = line) -> BenchmarkRuleError:
            return BenchmarkRuleError(f"{path} line {line}: {reason}")

        bid = r["benchmark_id"]
        if not re.fullmatch(r"[a-z0-9_]+", bid):
            raise bad(f"benchmark_id {bid!r} must be lower-case letters, digits and _")
        if bid in seen:
            raise bad(f"duplicate benchmark_id {bid!r} (first on line {seen[bid]})")
        seen[bid] = line
        if r["topic"] not in (*TOPICS, OVERALL):
            raise bad(f"topic {r['topic']!r} is not a topic of topics.csv nor {OVERALL!r}")
        if r["direction"] not in DIRECTIONS:
            raise bad(f"direction {r['direction']!r} is not one of {list(DIRECTIONS)}")
        try:
            min_rho = float(r["min_rho"])
        except ValueError:
            raise bad(f"min_rho {r['min_rho']!r} is not a number") from None
        if not 0.0 <= min_rho <= 1.0:
            raise bad(f"min_rho {min_rho} is outside 0..1 (the least agreement in the expected direction)")
        if r["source"] != USER_FILE and r["source"] not in sources:
            raise bad(f"source {r['source']!r} is neither an adapter of radar_pipeline/sources/adapters nor "
                      f"{USER_FILE!r} (a file iso3,value in RADAR_USER_FILES/{USER_FOLDER}/<vintage>/)")
        if not r["series"]:
            raise bad("series is empty (the publisher's column / series code, or the user file's name)")
        if not r["why"]:
            raise bad("why is empty: say why the benchmark should agree with the topic")
        inputs = [s for s in specs if (r["topic"] == OVERALL or s.topic == r["topic"])
                  and s.source == r["source"] and _norm(s.series) == _norm(r["series"])]
        if inputs:
            s = inputs[0]
            raise bad(f"benchmark {bid!r} ({r['source']} {r['series']}) is an input of topic {s.topic} "
                      f"(rules/indicators.csv indicator {s.indicator_id}): a benchmark must be independent of "
                      f"the topic it checks{' (overall: of every topic)' if r['topic'] == OVERALL else ''}")
        out.append(Benchmark(bid, r["source"], r["series"], r["topic"], r["direction"], min_rho, r["why"], line))
    return out


# --- the benchmark's values ----------------------------------------------------------------------

@functools.cache
def values_schema() -> "dict[str, pl.DataType]":
    """Built on first use: the definitions load without polars (issue 24 item 3)."""
    import polars as pl

    return {"iso3": pl.String, "value": pl.Float64, "data_year": pl.Int32}


__getattr__ = lazy_attributes(__name__, VALUES_SCHEMA=values_schema)


@dataclass
class BenchmarkValues:
    values: "pl.DataFrame"          # iso3, value, data_year: one row per country of the universe
    vintage: str | None
    released_after_edition: bool
    skipped: list[str]            # vintages that do not carry the series, with the reason


def read_values(b: Benchmark, edition: int, universe: set[str], *, mirror: Path | None = None,
                landing: Path | None = None, user_dir: Path | None = None) -> BenchmarkValues:
    """Per country of the universe the benchmark's latest value in the edition window (Y-5..Y), from
    the newest vintage released by the edition that carries the series (else the oldest later one,
    flagged released_after_edition, as for the indicators, METHODOLOGY §1)."""
    import polars as pl

    mirror = mirror if mirror is not None else settings.sources_mirror()
    landing = landing or settings.landing_dir()
    user_dir = user_dir or settings.user_files_dir()
    if b.source == USER_FILE:
        return _user_values(b, edition, universe, user_dir)
    mod = registry.adapter(b.source)
    patterns = tuple(mod.FILE_PATTERNS)
    if mirror is not None or b.source in registry.user_sources():
        by_vintage = registry.collect_files(b.source, mirror=mirror, landing=landing, user_dir=user_dir,
                                            log=lambda _m: None)
    else:  # live mode: what the source asset landed (a benchmark never downloads)
        by_vintage = mirror_files(landing, b.source, patterns)
    spec = IndicatorSpec(indicator_id=b.benchmark_id, topic=b.topic if b.topic in TOPICS else TOPICS[0],
                         source=b.source, direction="higher_is_riskier", unit="", vintages="*", series=b.series)
    kwargs = {}
    if isinstance(mod, FlagsAggregates):
        kwargs["aggregates"] = mod.aggregate_codes([f for fs in by_vintage.values() for f in fs])
    years = {v: registry.release_year(b.source, v, fs) for v, fs in by_vintage.items()}
    released = sorted((v for v in by_vintage if years[v] is None or years[v] <= edition),
                      key=lambda v: (years[v] or 0, v), reverse=True)
    later = sorted((v for v in by_vintage if v not in released), key=lambda v: (years[v], v))
    skipped: list[str] = []
    for vintage in [*released, *later]:
        try:
            raw = registry.parse_vintage(b.source, by_vintage[vintage], [spec], purpose=f"benchmark-{b.benchmark_id}",
                                         kwargs=kwargs)
        except SourceError as exc:  # e.g. the older per-index GII export of undp_gii has no `le` column
            skipped.append(f"{vintage}: {exc}")
            continue
        if raw is None or raw.height == 0:
            skipped.append(f"{vintage}: no {b.series!r} values")
            continue
        kept, _ = resolve(raw, universe, b.source)
        lo = edition - registry.EDITION_WINDOW
        values = (kept.filter(pl.col("data_year").is_between(lo, edition))
                      .sort("data_year", descending=True).unique("iso3", keep="first")
                      .select("iso3", "value", pl.col("data_year").cast(pl.Int32)).sort("iso3"))
        return BenchmarkValues(values, vintage, vintage in later, skipped)
    return BenchmarkValues(pl.DataFrame(schema=values_schema()), None, False, skipped)


def _user_values(b: Benchmark, edition: int, universe: set[str], user_dir: Path) -> BenchmarkValues:
    import polars as pl

    root = user_dir / USER_FOLDER
    vintages = {v.name: [LandedFile(USER_FOLDER, v.name, v / b.series)] for v in
                (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
                if (v / b.series).is_file()}
    choice = registry.choose_list_vintage(USER_FOLDER, vintages, edition)
    if choice is None:
        return BenchmarkValues(pl.DataFrame(schema=values_schema()), None, False,
                               [f"no file {root}/<vintage>/{b.series}"])
    vintage, _, after = choice
    return BenchmarkValues(read_user_file(vintages[vintage][0].path, universe), vintage, after, [])


def read_user_file(path: Path, universe: set[str]) -> "pl.DataFrame":
    """A user benchmark file `iso3,value` (UTF-8, header): errors name the file, line and field."""
    import polars as pl

    try:
        df = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(USER_FOLDER, f"not a readable CSV: {exc}", file=str(path)) from None
    df = df.rename({c: c.strip().lower() for c in df.columns})
    missing = [c for c in ("iso3", "value") if c not in df.columns]
    if missing:
        raise SourceError(USER_FOLDER, f"missing column(s) {missing}; expected header iso3,value", file=str(path))
    df = df.with_row_index("line", offset=2).with_columns(
        pl.col("iso3").str.strip_chars().str.to_uppercase(),
        pl.col("value").str.strip_chars().cast(pl.Float64, strict=False).alias("number"))
    for cond, fld, why in (
            (~pl.col("iso3").fill_null("").is_in(sorted(universe)), "iso3",
             "not an ISO3 code of the edition's universe"),
            (pl.col("number").is_null() | ~pl.col("number").is_finite(), "value", "not a number"),
            (pl.col("iso3").is_duplicated(), "iso3", "the country is listed twice")):
        hit = df.filter(cond).head(1)
        if hit.height:
            raise SourceError(USER_FOLDER, f"{why}: {hit[fld][0]!r}", file=str(path),
                              row=f"line {hit['line'][0]}", field=fld)
    return df.select("iso3", pl.col("number").alias("value"), pl.lit(None, pl.Int32).alias("data_year")).sort("iso3")


# --- the statistics ------------------------------------------------------------------------------

def average_ranks(a: "np.ndarray") -> "np.ndarray":
    """Ranks 1..n, ties given their mean rank (as Spearman's rho needs)."""
    import numpy as np  # here, not at module level: the definitions import never needs it (issue 24)

    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def spearman(x, y) -> float | None:
    """Spearman rank correlation (Pearson on average ranks); None with fewer than 3 pairs or a constant side."""
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_COUNTRIES:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return None if denom == 0 else float((rx * ry).sum() / denom)


def pair_seed(edition: int, topic: str, benchmark: str) -> int:
    """A stable seed per pair (not Python's salted hash): the same inputs give the same interval."""
    return SEED * 1_000_003 + int(hashlib.sha256(f"{edition}|{topic}|{benchmark}".encode()).hexdigest()[:12], 16)


def row_average_ranks(a: "np.ndarray") -> "np.ndarray":
    """average_ranks of each row of a 2-D array at once (no NaN): the rows sorted, each value's
    tie group found by where the sorted row changes, its rank the mean of the group's first and
    last position + 1 (a half-integer, exact as average_ranks' is)."""
    import numpy as np

    rows, n = a.shape
    order = np.argsort(a, axis=1, kind="stable")
    ordered = np.take_along_axis(a, order, axis=1)
    position = np.broadcast_to(np.arange(n), (rows, n))
    starts = np.ones((rows, n), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((rows, n), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((rows, n))
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def bootstrap_interval(x, y, *, seed: int, resamples: int = RESAMPLES,
                       level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of Spearman's rho: resample the countries with replacement.
    The resamples' rhos are computed together, one row each (the same draws and the same
    arithmetic as `spearman` on each, so the same bits: test_benchmarks.py compares with the
    per-resample loop, which took ~1 s of a refresh of the real files)."""
    import numpy as np

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < MIN_COUNTRIES:
        return None, None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    if np.isnan(x).any() or np.isnan(y).any():  # np.unique's ties of NaN: spearman's own way
        stats = np.array([np.nan if (r := spearman(x[i], y[i])) is None else r for i in draws])
    else:
        rx, ry = row_average_ranks(x[draws]), row_average_ranks(y[draws])
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
        constant = denom == 0  # a resample with one value on a side: no rho, as spearman says
        stats = np.where(constant, np.nan, (rx * ry).sum(axis=1) / np.where(constant, 1.0, denom))
    if np.isnan(stats).all():
        return None, None
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)


def agreement(rho: float | None, direction: str) -> float | None:
    """rho oriented so that higher = agrees more with the expected direction."""
    return None if rho is None else (rho if direction == "positive" else -rho)


def topic_scores(con, edition: int, topic: str) -> "pl.DataFrame":
    """iso3, score: the country topic score, or for `overall` the mean over the topics (mean country risk)."""
    if topic == OVERALL:
        return con.sql("select iso3, avg(score) as score from country_topic_risk where edition = $e "
                       "group by iso3 order by iso3", params={"e": edition}).pl()
    return con.sql("select iso3, score from country_topic_risk where edition = $e and topic = $t order by iso3",
                   params={"e": edition, "t": topic}).pl()


AGREEMENT_COLUMNS = ["edition", "topic", "benchmark", "direction", "min_rho", "vintage", "released_after_edition",
                     "n", "rho", "rho_low", "rho_high"]


def compare(b: Benchmark, edition: int, scores: "pl.DataFrame", values: BenchmarkValues
            ) -> "tuple[dict, pl.DataFrame]":
    """(agreement row, the pair's countries with score, value and ranks, largest rank gap first)."""
    both = scores.join(values.values, on="iso3", how="inner").sort("iso3")
    x, y = both["score"].to_numpy(), both["value"].to_numpy()
    rho = spearman(x, y)
    low, high = bootstrap_interval(x, y, seed=pair_seed(edition, b.topic, b.benchmark_id))
    row = {"edition": edition, "topic": b.topic, "benchmark": b.benchmark_id, "direction": b.direction,
           "min_rho": b.min_rho, "vintage": values.vintage, "released_after_edition": values.released_after_edition,
           "n": both.height, "rho": rho, "rho_low": low, "rho_high": high}
    return row, ranks(b, both)


def ranks(b: Benchmark, both: "pl.DataFrame") -> "pl.DataFrame":
    """The pair's countries (iso3, score, value) with their ranks, largest rank gap first."""
    import polars as pl

    ranked = both.with_columns(
        score_rank=pl.col("score").rank("average"),
        # the benchmark ranked as risk: for a negative benchmark the lowest value is the riskiest
        benchmark_rank=(pl.col("value") * b.sign).rank("average"),
    ).with_columns(rank_gap=pl.col("score_rank") - pl.col("benchmark_rank"))
    return ranked.sort(pl.col("rank_gap").abs(), "iso3", descending=[True, False])


def ranked_pairs(con, edition: int) -> list[tuple[Benchmark, dict, "pl.DataFrame"]]:
    """(rule, stored agreement row, ranked countries) of every pair benchmark_agreement computed
    for `edition`, in the rules' order: what the rank scatter draws. The benchmark values are read
    as the asset read them (the parse cache keeps the files' rows)."""
    stored = {(r["topic"], r["benchmark"]): r for r in con.sql(
        "select * from benchmark_agreement where edition = $e", params={"e": edition}).pl().iter_rows(named=True)}
    universe = {r[0] for r in con.sql("select iso3 from edition_countries where edition = $e",
                                      params={"e": edition}).fetchall()}
    out = []
    for b in load_benchmarks():
        row = stored.get((b.topic, b.benchmark_id))
        if row is None:
            continue
        values = read_values(b, edition, universe)
        if values.vintage != row["vintage"]:
            continue  # the files changed since: the next benchmark_agreement run redraws
        both = topic_scores(con, edition, b.topic).join(values.values, on="iso3", how="inner").sort("iso3")
        out.append((b, row, ranks(b, both.select("iso3", "score", "value"))))
    return out


def agreement_frame(rows: list[dict]) -> "pl.DataFrame":
    """The agreement rows (before previous_* and the version are added)."""
    import polars as pl

    return pl.DataFrame(rows, schema={
        "edition": pl.Int32, "topic": pl.String, "benchmark": pl.String, "direction": pl.String,
        "min_rho": pl.Float64, "vintage": pl.String, "released_after_edition": pl.Boolean, "n": pl.Int32,
        "rho": pl.Float64, "rho_low": pl.Float64, "rho_high": pl.Float64})


def indicator_detail(con, edition: int) -> "pl.DataFrame":
    """Per country x topic: its indicator values and how each was obtained (indicator_scores)."""
    return con.sql("""
        select s.iso3, r.topic,
               string_agg(s.indicator_id || ' ' || coalesce(cast(round(s.value, 4) as varchar), 'no value')
                          || ' -> ' || cast(round(s.score, 2) as varchar) || ' (' || s.method
                          || coalesce(' of ' || s.imputed_from, '') || ')', '; ' order by s.indicator_id)
                   as indicator_values,
               string_agg(distinct s.method, ', ' order by s.method) as imputation_methods
        from indicator_scores as s
        inner join indicator_registry as r using (indicator_id)
        where s.edition = $e
        group by s.iso3, r.topic""", params={"e": edition}).pl()


def disagreements(b: Benchmark, edition: int, ranked: "pl.DataFrame", detail: "pl.DataFrame",
                  names: "pl.DataFrame") -> "pl.DataFrame":
    """The TOP_GAPS countries with the largest rank gap, with their indicator values and methods
    (for `overall`, every topic's, topic by topic)."""
    import polars as pl

    top = ranked.head(TOP_GAPS).with_row_index("position", offset=1)
    if b.topic == OVERALL:
        per = (detail.sort("topic").group_by("iso3", maintain_order=True)
                     .agg(pl.format("{}: {}", "topic", "indicator_values").str.join(" | ").alias("indicator_values"),
                          pl.col("imputation_methods").str.split(", ")
                          .list.explode(keep_nulls=False, empty_as_null=False).unique().sort()
                          .str.join(", ").alias("imputation_methods")))
    else:
        per = detail.filter(pl.col("topic") == b.topic).drop("topic")
    return (top.join(per, on="iso3", how="left").join(names, on="iso3", how="left")
               .select(pl.lit(edition, pl.Int32).alias("edition"), pl.lit(b.topic).alias("topic"),
                       pl.lit(b.benchmark_id).alias("benchmark"), pl.col("position").cast(pl.Int32), "iso3",
                       pl.col("name").alias("country_name"), "score", pl.col("value").alias("benchmark_value"),
                       "score_rank", "benchmark_rank", "rank_gap", "indicator_values", "imputation_methods"))


def agreement_problems(current: "pl.DataFrame") -> list[str]:
    """Why the check warns: per pair an agreement below min_rho (or none computed), or a drop of more
    than MAX_DROP against previous_rho (the previous methodology version's)."""
    problems = []
    for r in current.iter_rows(named=True):
        a = agreement(r["rho"], r["direction"])
        pair = f"{r['benchmark']} vs {r['topic']}"
        if a is None:
            problems.append(f"{pair}: no rho ({r['n']} countries with both values)")
            continue
        if a < r["min_rho"]:
            problems.append(f"{pair}: agreement {a:.3f} (rho {r['rho']:.3f}, {r['direction']}) is below "
                            f"min_rho {r['min_rho']}")
        before = agreement(r.get("previous_rho"), r["direction"])
        if before is not None and before - a > MAX_DROP:
            problems.append(f"{pair}: agreement dropped by {before - a:.3f} (> {MAX_DROP}) against "
                            f"methodology version {r['previous_methodology_version']} ({before:.3f} -> {a:.3f})")
    return problems


def with_previous(current: "pl.DataFrame", stored: "pl.DataFrame", version: str) -> "pl.DataFrame":
    """`current` with previous_methodology_version / previous_rho: the stored row's own version and rho
    when it was computed with another version, else (a rerun with the same rules) what it carried."""
    import polars as pl

    stored = stored.select(
        "topic", "benchmark",
        pl.when(pl.col("methodology_version") != version).then(pl.col("methodology_version"))
          .otherwise(pl.col("previous_methodology_version")).alias("previous_methodology_version"),
        pl.when(pl.col("methodology_version") != version).then(pl.col("rho"))
          .otherwise(pl.col("previous_rho")).alias("previous_rho"))
    return current.join(stored, on=["topic", "benchmark"], how="left")


# --- the asset -----------------------------------------------------------------------------------

def _md_table(rows: "pl.DataFrame") -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"
    return ("| topic | benchmark | n | rho | 95 % interval | expected | min |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(f"| {r['topic']} | {r['benchmark']} | {r['n']} | {f(r['rho'])} | "
                        f"{f(r['rho_low'])} .. {f(r['rho_high'])} | {r['direction']} | {r['min_rho']} |"
                        for r in rows.iter_rows(named=True)))


@dg.asset(group_name=GROUP, pool=POOL, partitions_def=editions, kinds={"duckdb", "polars"},
          deps=[dg.AssetKey("country_topic_risk")],
          description="Benchmark agreement (rules/benchmarks.csv): Spearman rho between each country topic score "
                      "(or mean country risk, `overall`) and an independent reference series over the countries "
                      "having both, with a seeded bootstrap 95 % interval (table benchmark_agreement); the 10 "
                      "countries with the largest rank gap per pair with their indicator values and imputation "
                      "methods (benchmark_disagreements); its rank scatter per pair is the asset "
                      "benchmark_agreement_picture. A benchmark that is an input of the topic it checks is refused.",
          metadata={"dagster/table_name": "benchmark_agreement"}, code_version=fingerprint.version("country"),
          check_specs=[dg.AssetCheckSpec(CHECK, asset="benchmark_agreement",
                                         description="Warns when a pair's agreement in the expected direction is "
                                                     "below its min_rho or dropped by more than 0.05 against the "
                                                     "previous methodology version")])
def benchmark_agreement(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    import polars as pl

    edition = int(context.partition_key)
    version = fingerprint.version("country")
    try:
        rules = load_benchmarks()
    except BenchmarkRuleError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    with warehouse.get_connection() as con:
        universe = {r[0] for r in con.sql("select iso3 from edition_countries where edition = $e",
                                          params={"e": edition}).fetchall()}
        names = con.sql("select iso3, name from edition_countries where edition = $e", params={"e": edition}).pl()
        detail = indicator_detail(con, edition)
        present = {r[0] for r in con.sql("select distinct topic from country_topic_risk where edition = $e",
                                         params={"e": edition}).fetchall()}
        scores = {t: topic_scores(con, edition, t) for t in {b.topic for b in rules}}
    rows, gaps, notes, unread = [], [], [], []
    for b in rules:
        if b.topic != OVERALL and b.topic not in present:
            notes.append(f"{b.benchmark_id}: topic {b.topic} has no score in edition {edition} (missing topic)")
            continue
        try:
            values = read_values(b, edition, universe)
        except SourceError as exc:  # a diagnostic: a bad benchmark file warns, it never stops the refresh
            unread.append(f"{b.benchmark_id} vs {b.topic}: not read ({exc})")
            continue
        notes += [f"{b.benchmark_id}: vintage {s}" for s in values.skipped]
        if values.vintage is None:
            notes.append(f"{b.benchmark_id}: no {b.source} file carries {b.series!r}")
            continue
        if values.released_after_edition:
            context.log.warning(f"edition {edition}: benchmark {b.benchmark_id} read {b.source} {values.vintage}, "
                                "released after the edition (none released by then carries it)")
        row, ranked = compare(b, edition, scores[b.topic], values)
        rows.append(row)
        gaps.append(disagreements(b, edition, ranked, detail, names))
    gap_rows = (pl.concat(gaps, how="vertical_relaxed") if gaps else None)
    with warehouse.get_connection() as con:
        stored = con.sql("select topic, benchmark, rho, methodology_version, previous_methodology_version, "
                         "previous_rho from benchmark_agreement where edition = $e", params={"e": edition}).pl()
        current = with_previous(agreement_frame(rows), stored, version)
        gap_cols = table_columns(con, "benchmark_disagreements")
        gap_rows = (gap_rows.with_columns(methodology_version=pl.lit(version)).select(gap_cols)
                    if gap_rows is not None else "select * from benchmark_disagreements where false")
        n, _ = replace_slices(con, [
            ("benchmark_agreement", current.with_columns(methodology_version=pl.lit(version)), {"edition": edition}),
            ("benchmark_disagreements", gap_rows, {"edition": edition})])
        schema = table_schema_metadata(con, "benchmark_agreement")
    problems = unread + agreement_problems(current)
    for p in problems:
        context.log.warning(f"edition {edition}: benchmark {p}")
    yield dg.AssetCheckResult(check_name=CHECK, passed=not problems, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems)
                                                                        or "none"),
                                        "pairs": len(rows)})
    metadata = {"dagster/row_count": n, "dagster/column_schema": schema,
                "agreement": dg.MetadataValue.md(_md_table(current)) if rows else "no pair computed",
                "notes": dg.MetadataValue.md("\n".join(f"- {x}" for x in notes)) if notes else "none"}
    yield dg.MaterializeResult(metadata=metadata)
