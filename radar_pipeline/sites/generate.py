"""Synthetic supplier sites for demos, tests and benchmarks (clearly labelled SYNTHETIC).

Vectorised with numpy/polars and streamed: sites are built and written in blocks of
CHUNK_SITES, so a million sites take seconds and memory does not grow with N (`radar sites
generate`: 756 MiB peak at 1M and 3M sites, was 4.2 GiB at 1M; bench/README.md).
Distributions are plausible, not empirical: sourcing-heavy countries and
labour-intensive sectors are over-weighted, answers are correlated with site size only
loosely.

Same seed, same file, whatever the block size: the generator used to draw every random
column for all N sites at once, one draw after the other. Each of those draws now has its
own numpy Generator, positioned (by a first pass that draws and discards) where that draw
started in the one-stream sequence; a block takes the next values of every draw. numpy's
`random`, `uniform`, `lognormal`, `integers`, `poisson` and `choice(p=...)` consume the bit
stream value by value, so drawing k then k' values gives the same numbers as drawing k + k'.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from radar_pipeline.sites.scoring import read_controls

SOURCING_HUBS = ("CHN", "IND", "BGD", "VNM", "TUR", "IDN", "PAK", "KHM", "MMR", "THA", "MEX", "BRA",
                 "CIV", "GHA", "ETH", "KEN", "PER", "COL", "MAR", "EGY")
SEVERITIES = np.array(["business_critical", "critical", "major", "minor", "observation"])
SEVERITY_P = np.array([0.01, 0.04, 0.25, 0.45, 0.25])
CHUNK_SITES = 50_000  # sites per block: ~60 MB of JSON, ~300 MB of peak memory over the imports

Draw = Callable[[np.random.Generator, int], np.ndarray]
# what the size of a draw counts: one value per site, per control of a site, per nonconformity
SITE, CONTROL, NC = "site", "control", "nc"


def _flag(p: float) -> Draw:
    return lambda rng, k: rng.random(k) < p


def _pct(lo: float, hi: float) -> Draw:
    return lambda rng, k: rng.uniform(lo, hi, k).round(1)


def _pick(values, p) -> Draw:
    values = np.asarray(values)
    return lambda rng, k: values[rng.choice(len(values), k, p=p)]


# SAQ answers in column order. One draw: the value; two (a flag, a percentage): 0 when the
# flag is set, else the percentage; none: a value drawn before the questionnaire.
SAQ: tuple[tuple[str, tuple[Draw, ...]], ...] = (
    ("workers_total", ()),
    ("labour_intensive", (_flag(0.5),)),
    ("social_legal_form", (_flag(0.05),)),
    ("community_impact", (_flag(0.1),)),
    ("prison_labour", (_flag(0.002),)),
    ("labour_providers", (_flag(0.3),)),
    ("temp_seasonal_guest_programmes", (_flag(0.1),)),
    ("migrant_pct", (_flag(0.6), _pct(0, 60))),
    ("multi_tier_recruitment", (_flag(0.05),)),
    ("low_skilled_migrants", (_flag(0.15),)),
    ("migrants_from_high_risk_countries", (_flag(0.05),)),
    ("worker_representation", (_pick(["union", "committee", "none"], [0.3, 0.4, 0.3]),)),
    ("industrial_action_2y", (_flag(0.05),)),
    ("children_in_accommodation", (_flag(0.01),)),
    ("apprentice_pct", (_pct(0, 25),)),
    ("workers_under_15", (_flag(0.003),)),
    ("piece_rate", (_flag(0.25),)),
    ("pay_in_kind_pct", (_flag(0.8), _pct(0, 50))),
    ("permanent_pct", (_pct(30, 100),)),
    ("women_workers_pct", ()),
    ("women_managers_pct", (_pct(0, 60),)),
    ("women_supervisors_pct", (_pct(0, 70),)),
    ("subcontracts_production", (_flag(0.3),)),
    ("informal_workers", (_flag(0.05),)),
    ("heavy_machinery", (_flag(0.4),)),
    ("hazardous_materials", (_flag(0.3),)),
    ("provides_accommodation", (_flag(0.2),)),
    ("young_workers_pct", (_pct(0, 50),)),
    ("regular_hours_over_48", (_flag(0.15),)),
    ("total_hours_over_60", (_flag(0.05),)),
)
DRAWN_BEFORE = {"workers_total": "workers", "women_workers_pct": "women_workers"}


def _draws(countries: np.ndarray, classes: np.ndarray, n_controls: int) -> list[tuple[str, Draw, str]]:
    """Every random draw of a site, in the order of the one-stream sequence (see the module
    docstring): (name, draw, unit of its size)."""
    w = np.where(np.isin(countries, SOURCING_HUBS), 12.0, 1.0)
    cw = np.select([np.char.startswith(classes, p) for p in ("13", "14", "15", "01", "10", "26", "41", "43")],
                   [8, 10, 6, 6, 4, 4, 2, 2], 1.0)
    draws = [("workers", lambda rng, k: np.clip(rng.lognormal(5.0, 1.2, k), 3, 20000).astype(np.int64), SITE),
             ("women_workers", _pct(5, 90), SITE)]
    for column, column_draws in SAQ:
        draws += [(f"{column}.{i}", d, SITE) for i, d in enumerate(column_draws)]
        # a few unanswered questions per site, as real questionnaires have
        draws.append((f"{column}.missing", _flag(0.05), SITE))
    return [*draws,
            ("no_saq", _flag(0.05), SITE),  # ~5 % of sites sent no questionnaire (inherent-only scores)
            ("n_controls", lambda rng, k: rng.integers(0, min(20, n_controls), k), SITE),
            ("control", lambda rng, k: rng.integers(0, n_controls, k), CONTROL),
            ("n_nc", lambda rng, k: rng.poisson(0.8, k), SITE),
            ("raised", lambda rng, k: rng.integers(0, 600, k), NC),
            ("closed", _flag(0.6), NC),
            ("severity", _pick(SEVERITIES, SEVERITY_P), NC),
            ("country", _pick(countries, w / w.sum()), SITE),
            ("isic", _pick(classes, cw / cw.sum()), SITE)]


def _block_sizes(total: int, chunk: int) -> Iterator[int]:
    for lo in range(0, total, chunk):
        yield min(chunk, total - lo)


def _positioned(seed: int, draws: list[tuple[str, Draw, str]], n: int, chunk: int) -> dict[str, np.random.Generator]:
    """One Generator per draw, at the state where that draw starts in the one-stream sequence:
    each draw is made once over all N sites, in blocks, and discarded (memory of one block)."""
    rng = np.random.default_rng(seed)
    totals = {SITE: n, CONTROL: 0, NC: 0}
    positioned = {}
    for name, draw, unit in draws:
        positioned[name] = np.random.Generator(type(rng.bit_generator)())
        positioned[name].bit_generator.state = rng.bit_generator.state
        for k in _block_sizes(totals[unit], chunk):
            values = draw(rng, k)
            if name == "n_controls":
                totals[CONTROL] += int(values.sum())
            elif name == "n_nc":
                totals[NC] += int(values.sum())
    return positioned


def iter_sites(n: int, seed: int, countries: list[str], isic_classes: list[str], *,
               chunk: int = CHUNK_SITES) -> Iterator[pl.DataFrame]:
    """N synthetic sites as blocks of at most `chunk` rows; the concatenation does not depend
    on `chunk`."""
    countries_arr = np.array(sorted(countries))
    classes = np.array(sorted(isic_classes))
    control_ids = np.array(read_controls()["control_id"].to_list())
    draws = _draws(countries_arr, classes, len(control_ids))
    rngs = _positioned(seed, draws, n, chunk)
    first_nc = 0  # nonconformity ids number the whole file
    for lo in range(0, n or 1, chunk):  # n = 0: one empty block (an empty frame, an empty file)
        k = max(0, min(chunk, n - lo))
        v: dict[str, np.ndarray] = {}
        for name, draw, unit in draws:
            size = k if unit == SITE else int(v["n_controls" if unit == CONTROL else "n_nc"].sum())
            v[name] = draw(rngs[name], size)
        yield _block(v, np.arange(lo, lo + k), seed, first_nc, control_ids)
        first_nc += len(v["raised"])


def _block(v: dict[str, np.ndarray], idx: np.ndarray, seed: int, first_nc: int,
           control_ids: np.ndarray) -> pl.DataFrame:
    """The sites `idx` from their drawn values `v`."""
    columns = {}
    for column, column_draws in SAQ:
        if not column_draws:
            value = v[DRAWN_BEFORE[column]]
        elif len(column_draws) == 1:
            value = v[f"{column}.0"]
        else:
            value = np.where(v[f"{column}.0"], 0.0, v[f"{column}.1"])
        columns[column] = pl.Series(value).scatter(np.flatnonzero(v[f"{column}.missing"]), None)
    saq = pl.DataFrame(columns)

    controls = (pl.DataFrame({"i": np.repeat(idx, v["n_controls"]), "c": control_ids[v["control"]]})
                .unique().group_by("i").agg(pl.col("c").sort()))

    raised = np.datetime64("2023-01-01") + v["raised"].astype("timedelta64[D]")
    closed_mask = v["closed"]
    audits = (pl.DataFrame({
        "i": np.repeat(idx, v["n_nc"]),
        "nc_id": "NC-" + pl.Series(np.arange(first_nc, first_nc + len(raised))).cast(pl.String),
        "severity": v["severity"],
        "status": np.where(closed_mask, "closed", "open"),
        "raised_on": raised.astype(str),
        "closed_on": (raised + 30).astype(str),
        "closed": closed_mask,
    }).with_columns(closed_on=pl.when(pl.col("closed")).then(pl.col("closed_on")))
      .group_by("i").agg(pl.struct("nc_id", "severity", "status", "raised_on", "closed_on").alias("audits")))

    ids = pl.Series("i", idx).cast(pl.String).str.zfill(7)
    base = pl.DataFrame({
        "i": idx,
        "site_id": f"SYN-{seed}-" + ids,
        "site_name": "SYNTHETIC site " + ids,
        "country": v["country"],
        "isic": v["isic"],
    })
    saq_struct = saq.select(pl.struct(pl.all()).alias("saq")).with_columns(
        pl.when(pl.Series(v["no_saq"])).then(None).otherwise(pl.col("saq")).alias("saq"))
    return (pl.concat([base, saq_struct], how="horizontal")
              .join(controls.rename({"c": "controls"}), on="i", how="left")
              .join(audits, on="i", how="left")
              .sort("i").drop("i"))


def generate_sites(n: int, seed: int, countries: list[str], isic_classes: list[str]) -> pl.DataFrame:
    """N synthetic sites in one frame (tests, small demos); `iter_sites` + `write_sites` for large N."""
    return pl.concat(list(iter_sites(n, seed, countries, isic_classes)))


def write_sites(sites: pl.DataFrame | Iterable[pl.DataFrame], path: Path) -> int:
    """Write a frame or a stream of blocks as JSON Lines; returns the number of sites. The file
    is written under a temporary name (not `*.jsonl`, so the inbox sensor never picks up a
    half-written file) and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    written = 0
    try:
        with open(tmp, "wb") as fh:
            for block in [sites] if isinstance(sites, pl.DataFrame) else sites:
                block.write_ndjson(fh)
                written += block.height
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
