"""Rank scatter per benchmark pair (issue 25 item 1): the country topic score's rank against the
benchmark's rank read as risk, one panel per (topic, benchmark), the countries of largest rank gap
labelled. Drawn by the benchmark_agreement asset (radar_pipeline/country_risk/benchmarks.py), which
attaches it to its materialization as the other pictures do (pictures/assets.py)."""
from __future__ import annotations

import math
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from radar_pipeline.pictures.render import COMPACT_WIDTH_IN, _save, _wrap

LABELLED = 5  # countries named per panel: the largest rank gaps


def rank_scatter_figure(pairs: list[tuple[str, str, str, float | None, pl.DataFrame]], edition: int,
                        compact: bool = False) -> Figure:
    """pairs: (benchmark, topic, direction, rho, ranked) with ranked = iso3, score_rank, benchmark_rank,
    rank_gap sorted by |rank_gap| descending. On the diagonal the two agree. `compact`: one panel
    per row, COMPACT_WIDTH_IN wide (the UI's metadata column)."""
    cols = 1 if compact else min(3, max(1, len(pairs)))
    rows = math.ceil(len(pairs) / cols)
    fig = Figure(figsize=(COMPACT_WIDTH_IN, 3.9 * rows + 0.4) if compact else (4.6 * cols, 4.4 * rows))
    for k, (benchmark, topic, direction, rho, ranked) in enumerate(pairs, start=1):
        ax = fig.add_subplot(rows, cols, k)
        n = ranked.height
        ax.plot([1, max(n, 1)], [1, max(n, 1)], color="#999999", lw=0.8, ls="--", zorder=1)
        gap = ranked["rank_gap"].abs().to_numpy() if n else []
        ax.scatter(ranked["benchmark_rank"].to_list(), ranked["score_rank"].to_list(), s=14,
                   c=gap, cmap="YlOrRd", edgecolors="#555555", linewidths=0.3, zorder=2)
        for r in ranked.head(LABELLED).iter_rows(named=True):
            ax.annotate(r["iso3"], (r["benchmark_rank"], r["score_rank"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        rho_text = "rho n/a" if rho is None else f"rho {rho:+.2f}"
        ax.set_title(f"{topic} vs {benchmark}\n{rho_text}, n {n}, expected {direction}", fontsize=9, loc="left")
        ax.set_xlabel("benchmark rank as risk (1 = lowest)", fontsize=8)
        ax.set_ylabel("topic score rank (1 = lowest risk)", fontsize=8)
        ax.tick_params(labelsize=7)
    title = f"Benchmark agreement, edition {edition}: ranks (diagonal = full agreement)"
    fig.suptitle(_wrap(title, 60) if compact else title, fontsize=10 if compact else 11)
    fig.tight_layout()
    return fig


def write_rank_scatter(pairs: list[tuple[str, str, str, float | None, pl.DataFrame]], out_dir: Path,
                       edition: int) -> tuple[Path, Figure]:
    fig = rank_scatter_figure(pairs, edition)
    return _save(fig, out_dir / f"benchmark_agreement_{edition}.png"), fig
