"""Synthetic supplier sites for demos, tests and benchmarks (clearly labelled SYNTHETIC).

Vectorised with numpy/polars: a million sites take seconds. Distributions are
plausible, not empirical: sourcing-heavy countries and labour-intensive
sectors are over-weighted, answers are correlated with site size only loosely.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from radar_pipeline.sites.scoring import read_controls

SOURCING_HUBS = ("CHN", "IND", "BGD", "VNM", "TUR", "IDN", "PAK", "KHM", "MMR", "THA", "MEX", "BRA",
                 "CIV", "GHA", "ETH", "KEN", "PER", "COL", "MAR", "EGY")
SEVERITIES = np.array(["business_critical", "critical", "major", "minor", "observation"])
SEVERITY_P = np.array([0.01, 0.04, 0.25, 0.45, 0.25])


def generate_sites(n: int, seed: int, countries: list[str], isic_classes: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    countries_arr = np.array(sorted(countries))
    w = np.where(np.isin(countries_arr, SOURCING_HUBS), 12.0, 1.0)
    classes = np.array(sorted(isic_classes))
    cw = np.select([np.char.startswith(classes, p) for p in ("13", "14", "15", "01", "10", "26", "41", "43")],
                   [8, 10, 6, 6, 4, 4, 2, 2], 1.0)
    idx = np.arange(n)
    ids = pl.Series("i", idx).cast(pl.String).str.zfill(7)
    workers = np.clip(rng.lognormal(5.0, 1.2, n), 3, 20000).astype(np.int64)
    women_workers = rng.uniform(5, 90, n).round(1)

    def flag(p):
        return rng.random(n) < p

    def maybe(values, p_missing=0.05):
        # a few unanswered questions per site, as real questionnaires have
        return pl.Series(values).scatter(np.flatnonzero(rng.random(n) < p_missing), None)

    saq = pl.DataFrame({
        "workers_total": maybe(workers),
        "labour_intensive": maybe(flag(0.5)),
        "social_legal_form": maybe(flag(0.05)),
        "community_impact": maybe(flag(0.1)),
        "prison_labour": maybe(flag(0.002)),
        "labour_providers": maybe(flag(0.3)),
        "temp_seasonal_guest_programmes": maybe(flag(0.1)),
        "migrant_pct": maybe(np.where(flag(0.6), 0.0, rng.uniform(0, 60, n).round(1))),
        "multi_tier_recruitment": maybe(flag(0.05)),
        "low_skilled_migrants": maybe(flag(0.15)),
        "migrants_from_high_risk_countries": maybe(flag(0.05)),
        "worker_representation": maybe(rng.choice(["union", "committee", "none"], n, p=[0.3, 0.4, 0.3])),
        "industrial_action_2y": maybe(flag(0.05)),
        "children_in_accommodation": maybe(flag(0.01)),
        "apprentice_pct": maybe(rng.uniform(0, 25, n).round(1)),
        "workers_under_15": maybe(flag(0.003)),
        "piece_rate": maybe(flag(0.25)),
        "pay_in_kind_pct": maybe(np.where(flag(0.8), 0.0, rng.uniform(0, 50, n).round(1))),
        "permanent_pct": maybe(rng.uniform(30, 100, n).round(1)),
        "women_workers_pct": maybe(women_workers),
        "women_managers_pct": maybe(rng.uniform(0, 60, n).round(1)),
        "women_supervisors_pct": maybe(rng.uniform(0, 70, n).round(1)),
        "subcontracts_production": maybe(flag(0.3)),
        "informal_workers": maybe(flag(0.05)),
        "heavy_machinery": maybe(flag(0.4)),
        "hazardous_materials": maybe(flag(0.3)),
        "provides_accommodation": maybe(flag(0.2)),
        "young_workers_pct": maybe(rng.uniform(0, 50, n).round(1)),
        "regular_hours_over_48": maybe(flag(0.15)),
        "total_hours_over_60": maybe(flag(0.05)),
    })
    # ~5 % of sites sent no questionnaire at all (inherent-only scores)
    no_saq = rng.random(n) < 0.05

    control_ids = np.array(read_controls()["control_id"].to_list())
    n_ctl = rng.integers(0, min(20, len(control_ids)), n)
    ctl_site = np.repeat(idx, n_ctl)
    ctl_id = control_ids[rng.integers(0, len(control_ids), len(ctl_site))]
    controls = (pl.DataFrame({"i": ctl_site, "c": ctl_id}).unique().group_by("i").agg(pl.col("c").sort()))

    n_nc = rng.poisson(0.8, n)
    nc_site = np.repeat(idx, n_nc)
    m = len(nc_site)
    raised = np.datetime64("2023-01-01") + rng.integers(0, 600, m).astype("timedelta64[D]")
    closed_mask = rng.random(m) < 0.6
    audits = (pl.DataFrame({
        "i": nc_site,
        "nc_id": "NC-" + pl.Series(np.arange(m)).cast(pl.String),
        "severity": SEVERITIES[rng.choice(len(SEVERITIES), m, p=SEVERITY_P)],
        "status": np.where(closed_mask, "closed", "open"),
        "raised_on": raised.astype(str),
        "closed_on": (raised + 30).astype(str),
        "closed": closed_mask,
    }).with_columns(closed_on=pl.when(pl.col("closed")).then(pl.col("closed_on")))
      .group_by("i").agg(pl.struct("nc_id", "severity", "status", "raised_on", "closed_on").alias("audits")))

    base = pl.DataFrame({
        "i": idx,
        "site_id": f"SYN-{seed}-" + ids,
        "site_name": "SYNTHETIC site " + ids,
        "country": countries_arr[rng.choice(len(countries_arr), n, p=w / w.sum())],
        "isic": classes[rng.choice(len(classes), n, p=cw / cw.sum())],
    })
    saq_struct = saq.select(pl.struct(pl.all()).alias("saq")).with_columns(
        pl.when(pl.Series(no_saq)).then(None).otherwise(pl.col("saq")).alias("saq"))
    return (pl.concat([base, saq_struct], how="horizontal")
              .join(controls.rename({"c": "controls"}), on="i", how="left")
              .join(audits, on="i", how="left")
              .sort("i").drop("i"))


def write_sites(df: pl.DataFrame, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_ndjson(path)
