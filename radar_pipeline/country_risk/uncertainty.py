"""How sure (issue 25 item 2, extends METHODOLOGY §8a): per country x topic an interval from the
uncertainty the publishers state and from imputation, by a seeded simulation.

Each of `N_DRAWS` draws redoes §2.2-§2.4 on perturbed inputs:

* an observed value with a publisher-stated standard error (TI CPI "Standard error YYYY", WGI
  `<IND>.STD.ERR`; read by the adapters' `standard_errors`) is drawn from
  normal(value, standard error); values without one stay as published;
* the indicator is re-normalised in every draw (clip, min-max over that draw's values, §2.2), so
  a country's score moves with the other countries' draws as well as with its own;
* an imputed value (§2.3) is, in each draw, the score of one of its donors picked at random
  (uniformly, `imputed_from`): we do not know which of its peers the country resembles, so the
  spread of the donors is the uncertainty of the gap fill;
* the topic score is the mean of the topic's indicator scores (§2.4).

Stored per (edition, country, topic): `country_topic_draws` (each draw's topic score minus the
reported score, `delta`; sql/sites/site_uncertainty.sql carries them through §5 and §8 to every
site) and `country_topic_uncertainty` (the 5 %-95 % interval and its source). A delta is exactly
0.0 where nothing is uncertain (all of the topic's values observed, none with a stated error, no
other country of the indicator with one), so such a topic's draws reproduce its score exactly.

Seeded: the draws of an indicator come from numpy's PCG64 seeded with (seed, crc32 of the
indicator id), rows in iso3 order, so the same inputs and seed give identical draws whatever
other indicators exist. Vectorised per indicator (numpy / polars), no loop over rows.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import polars as pl

N_DRAWS = 200
SEED = 20_250_025
INTERVAL = (0.05, 0.95)
SE_SOURCES = ("ti_cpi", "worldbank_wgi")  # adapters with a standard_errors(files, specs)

DRAW_SCHEMA = {"iso3": pl.String, "topic": pl.String, "draw": pl.Int32, "delta": pl.Float64}


def standard_errors(con, edition: int, universe: set[str], root: Path | None = None) -> pl.DataFrame:
    """(indicator_id, iso3, standard_error) of the observation each indicator score of `edition`
    uses (same data year and vintage as in indicator_observations), from the landed files of the
    sources whose adapter reads a stated error. `root`: the mirror (default RADAR_SOURCES_MIRROR,
    else the landing folder)."""
    from radar_pipeline.platform import settings
    from radar_pipeline.sources.reference.countries import resolve
    from radar_pipeline.sources.registry import adapter, specs_for
    from radar_pipeline.sources.toolkit.fetch import mirror_files

    root = root or settings.sources_mirror() or settings.landing_dir()
    frames = []
    for source in SE_SOURCES:
        mod = adapter(source)
        for vintage, files in mirror_files(Path(root), source, tuple(mod.FILE_PATTERNS)).items():
            specs = specs_for(source, vintage)
            if specs:
                rows = mod.standard_errors(files, specs)
                if rows.height:
                    frames.append(rows.with_columns(pl.col("data_year").cast(pl.Int32),
                                                    pl.col("value").cast(pl.Float64)))
    empty = pl.DataFrame(schema={"indicator_id": pl.String, "iso3": pl.String, "standard_error": pl.Float64})
    if not frames:
        return empty
    raw = pl.concat(frames, how="vertical_relaxed")
    kept = _resolve_each(raw, universe, resolve)
    used = con.execute(
        """select s.indicator_id, s.iso3, o.data_year, o.vintage
           from indicator_scores s
           join indicator_observations o on o.edition = s.edition and o.indicator_id = s.indicator_id
                and o.iso3 = s.iso3 and o.data_year = s.data_year
           where s.edition = $e and s.method = 'direct'""", {"e": edition}).pl()
    if kept.height == 0 or used.height == 0:
        return empty
    return (used.join(kept.select("indicator_id", "iso3", pl.col("data_year").cast(pl.Int32), "vintage",
                                  standard_error="value"),
                      on=["indicator_id", "iso3", "data_year", "vintage"], how="inner")
                .filter(pl.col("standard_error").is_finite() & (pl.col("standard_error") > 0))
                .unique(["indicator_id", "iso3"], keep="first")
                .select("indicator_id", "iso3", "standard_error").sort("indicator_id", "iso3"))


def _resolve_each(raw: pl.DataFrame, universe: set[str], resolve) -> pl.DataFrame:
    """Country codes -> iso3 per source (each source's own rows of rules/country_overrides.csv)."""
    parts = [resolve(g, universe, src)[0] for (src,), g in raw.group_by("source", maintain_order=True)]
    return pl.concat(parts, how="vertical_relaxed")


def _rng(seed: int, indicator_id: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([int(seed), zlib.crc32(indicator_id.encode())]))


def _normalise(used: np.ndarray, direction: str) -> np.ndarray:
    """§2.2 per draw (columns): min-max over the countries (rows) to 1..6 by direction; a flat
    draw gives 3.5; clamped to 1..6 as indicator_scores.sql does."""
    lo, hi = used.min(axis=0, keepdims=True), used.max(axis=0, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        s = 1 + 5 * ((used - lo) if direction == "higher_is_riskier" else (hi - used)) / span
    s = np.where(span == 0, 3.5, s)
    return np.clip(s, 1.0, 6.0)


def simulate_indicator(rows: pl.DataFrame, direction: str, clip_min: float | None, clip_max: float | None,
                       seed: int, n_draws: int, indicator_id: str) -> np.ndarray:
    """Draws (rows x n_draws) of one indicator's scores minus the reported score. `rows` (sorted by
    iso3): iso3, value, score, method, imputed_from, standard_error (null: none stated)."""
    rng = _rng(seed, indicator_id)
    direct = (rows["method"] == "direct").to_numpy()
    score = rows["score"].to_numpy().astype(float)
    out = np.zeros((rows.height, n_draws))
    d_idx = np.flatnonzero(direct)
    se = rows["standard_error"].fill_null(0.0).to_numpy().astype(float)[d_idx]
    z = rng.standard_normal((len(d_idx), n_draws))
    draws = np.repeat(score[d_idx, None], n_draws, axis=1)  # no stated error anywhere: the scores as reported
    if (se > 0).any():
        value = rows["value"].to_numpy().astype(float)[d_idx]
        used = value[:, None] + se[:, None] * z
        lo = -np.inf if clip_min is None else clip_min
        hi = np.inf if clip_max is None else clip_max
        draws = _normalise(np.clip(used, lo, hi), direction)
    out[d_idx] = draws - score[d_idx, None]
    i_idx = np.flatnonzero(~direct)
    if len(i_idx):
        # each imputed value: in each draw, a donor's score of that draw, the donor picked at random
        pos = {iso: k for k, iso in enumerate(rows["iso3"].to_numpy()[d_idx])}
        donors = rows["imputed_from"].to_numpy()[i_idx]
        lists = [[pos[c] for c in (d or "").split(",") if c in pos] for d in donors]
        n = np.array([len(x) for x in lists])
        offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
        flat = np.array([p for x in lists for p in x], dtype=np.int64)
        pick = np.minimum((rng.random((len(i_idx), n_draws)) * n[:, None]).astype(np.int64), n[:, None] - 1)
        donor_rows = flat[offsets[:, None] + pick]
        out[i_idx] = draws[donor_rows, np.arange(n_draws)[None, :]] - score[i_idx, None]
    return out


def simulate(scores: pl.DataFrame, registry: pl.DataFrame, se: pl.DataFrame, *, seed: int = SEED,
             n_draws: int = N_DRAWS) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(draws, intervals) for one edition.

    scores: indicator_scores rows (indicator_id, iso3, value, score, method, imputed_from);
    registry: indicator_id, topic, direction, clip_min, clip_max; se: indicator_id, iso3,
    standard_error. draws: iso3, topic, draw (0-based), delta (topic score of the draw minus the
    reported topic score); intervals: iso3, topic, score, q_low, q_high (5 % / 95 % quantiles of the
    deltas), sd, source."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    rows = (scores.join(registry.select("indicator_id", "topic", "direction", "clip_min", "clip_max"),
                        on="indicator_id", how="inner")
                  .join(se, on=["indicator_id", "iso3"], how="left")
                  .sort("indicator_id", "iso3"))
    parts, meta = [], []
    for (ind,), g in rows.group_by("indicator_id", maintain_order=True):
        first = g.row(0, named=True)
        delta = simulate_indicator(g, first["direction"], first["clip_min"], first["clip_max"], seed, n_draws, ind)
        parts.append(delta)
        has_se = g["standard_error"].fill_null(0.0) > 0
        meta.append(g.select(
            "iso3", "topic", "score",
            source=pl.when(pl.col("method") != "direct").then(pl.lit("donor_spread"))
                     .when(has_se).then(pl.lit("publisher_se"))
                     .when(pl.lit(bool(has_se.any()))).then(pl.lit("normalisation"))
                     .otherwise(pl.lit("none"))))
    if not parts:
        return (pl.DataFrame(schema=DRAW_SCHEMA),
                pl.DataFrame(schema={"iso3": pl.String, "topic": pl.String, "score": pl.Float64,
                                     "q_low": pl.Float64, "q_high": pl.Float64, "sd": pl.Float64,
                                     "source": pl.String}))
    meta = pl.concat(meta)
    delta = np.vstack(parts)
    # per (iso3, topic): the mean over its indicators, per draw (rows grouped in a fixed order)
    keyed = meta.with_row_index("r").sort("iso3", "topic", "r")
    order = keyed["r"].to_numpy()
    groups = keyed.group_by("iso3", "topic", maintain_order=True).agg(
        n=pl.len(), score=pl.col("score").mean(),
        source=pl.col("source").filter(pl.col("source") != "none").unique().sort().str.join("+"))
    sizes = groups["n"].to_numpy().astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    topic_delta = np.add.reduceat(delta[order], starts, axis=0) / sizes[:, None]
    draws = pl.DataFrame({
        "iso3": np.repeat(groups["iso3"].to_numpy(), n_draws),
        "topic": np.repeat(groups["topic"].to_numpy(), n_draws),
        "draw": np.tile(np.arange(n_draws, dtype=np.int32), groups.height),
        "delta": topic_delta.reshape(-1),
    }, schema=DRAW_SCHEMA)
    q = np.quantile(topic_delta, INTERVAL, axis=1)
    intervals = groups.select(
        "iso3", "topic", "score", q_low=pl.Series(q[0]), q_high=pl.Series(q[1]),
        sd=pl.Series(topic_delta.std(axis=1)),
        source=pl.when(pl.col("source") == "").then(pl.lit("none")).otherwise(pl.col("source")))
    return draws, intervals


def compute(con, edition: int, *, seed: int = SEED, n_draws: int = N_DRAWS, root: Path | None = None,
            reported: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the edition's indicator scores and the stated errors, simulate; rows ready to store
    (edition, seed, n_draws added; the reported topic score from `reported` (iso3, topic, score),
    default the stored country_topic_risk)."""
    scores = con.execute("select indicator_id, iso3, value, score, method, imputed_from from indicator_scores "
                         "where edition = $e", {"e": edition}).pl()
    registry = con.sql("select indicator_id, topic, direction, clip_min::double as clip_min, "
                       "clip_max::double as clip_max from indicator_registry").pl()
    universe = {r[0] for r in con.execute("select iso3 from edition_countries where edition = $e",
                                          {"e": edition}).fetchall()}
    se = standard_errors(con, edition, universe, root)
    draws, intervals = simulate(scores, registry, se, seed=seed, n_draws=n_draws)
    if reported is None:
        reported = con.execute("select iso3, topic, score from country_topic_risk where edition = $e",
                               {"e": edition}).pl()
    reported = reported.select("iso3", "topic", pl.col("score").alias("reported"))
    # the interval: the reported score plus the 5 % and 95 % quantiles of the draws' deltas
    intervals = (intervals.join(reported, on=["iso3", "topic"], how="inner")
                 .select(pl.lit(edition, pl.Int32).alias("edition"), "iso3", "topic",
                         pl.col("reported").alias("score"),
                         (pl.col("reported") + pl.col("q_low")).clip(1.0, 6.0).alias("low"),
                         (pl.col("reported") + pl.col("q_high")).clip(1.0, 6.0).alias("high"), "sd", "source",
                         pl.lit(n_draws, pl.Int32).alias("n_draws"), pl.lit(seed, pl.Int64).alias("seed")))
    draws = draws.select(pl.lit(edition, pl.Int32).alias("edition"), pl.all())
    return draws, intervals
