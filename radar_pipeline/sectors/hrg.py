"""High-risk goods (METHODOLOGY §4): which (country, ISIC class) pairs carry a listed risk.

Inputs are the parsed lists (ILAB goods, EU CAHRAs), the rule tables in
`rules/` (goods → ISIC classes, EUDR commodities → classes, EUDR low-risk
countries) and the country universe. Output rows are facts with their source;
the topic uplift itself is computed in SQL (`sql/sectors/hrg_uplift.sql`).

Decisions (all data, editable in `rules/`):
- ILAB child labour or forced child labour → `child_labour`; forced labour or
  forced child labour → `forced_labour`.
- An ILAB "derived" row (downstream good made with a listed input) counts for
  the producing country only and inherits the risk types of its input good as
  ILAB lists it in the input's country (`rules/ilab_derived_inputs.csv`).
- CAHRA: every listed country (whole or regional) → `conflict_minerals` on
  ISIC 0729 and 2420.
- Deforestation: a user file (e.g. licensed Forest 500: iso3, good,
  isic_class) replaces the default; the default is every EUDR commodity class
  in every country not benchmarked low risk.
- A good without an ISIC mapping is returned in the unmapped frame, never
  silently dropped.
- Lists are point-in-time snapshots: an edition uses the newest vintage released
  by the edition, else the oldest one (recorded in `source` and in edition_sources).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.platform.settings import rules_dir
from radar_pipeline.sources.adapters.eu_cahra import cahra_schema
from radar_pipeline.sources.adapters.ilab_list_of_goods import goods_schema

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

RISK_TYPES = ("child_labour", "forced_labour", "deforestation", "conflict_minerals")
CONFLICT_MINERAL_CLASSES = ("0729", "2420")  # §4: tin, tantalum, tungsten, gold ores and smelting
CONFLICT_MINERALS_GOOD = "tin, tantalum, tungsten, gold (3TG)"


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def hrg_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "edition": pl.Int32, "iso3": pl.String, "isic_class": pl.String, "good": pl.String,
        "risk_type": pl.String, "source": pl.String,
    }


@functools.cache
def unmapped_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {"good": pl.String, "reason": pl.String}


__getattr__ = lazy_attributes(__name__, HRG_SCHEMA=hrg_schema, UNMAPPED_SCHEMA=unmapped_schema)


@functools.cache
def hrg_check() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "edition": pa.Column(pl.Int32),
            "iso3": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}$")),
            "isic_class": pa.Column(str, pa.Check.str_matches(r"^\d{4}$")),
            "good": pa.Column(str),
            "risk_type": pa.Column(str, pa.Check.isin(RISK_TYPES)),
            "source": pa.Column(str),
        },
        unique=["edition", "iso3", "isic_class", "good", "risk_type", "source"],
    )


def _key(col: str) -> pl.Expr:
    import polars as pl

    return pl.col(col).str.strip_chars().str.normalize("NFC")


def load_rule(name: str) -> pl.DataFrame:
    """A rule CSV from rules/, every column as text (ISIC codes keep leading zeros)."""
    import polars as pl

    return pl.read_csv(rules_dir() / f"{name}.csv", infer_schema=False)


def _check_classes(df: pl.DataFrame, what: str) -> None:
    import polars as pl

    bad = df.filter(~pl.col("isic_class").str.contains(r"^\d{4}$"))
    if bad.height:
        raise ValueError(f"{what}: isic_class must be a 4-digit ISIC Rev.4 class, got "
                         f"{bad.get_column('isic_class').unique().to_list()[:10]}")


def select_vintage(df: pl.DataFrame, edition: int, source: str = "list") -> pl.DataFrame:
    """Rows of the newest vintage released by the edition, else of the oldest vintage — the
    as-of rule every source follows (sources.registry.choose_list_vintage, METHODOLOGY §1)."""
    import polars as pl

    from radar_pipeline.sources.registry import choose_list_vintage

    if df.is_empty():
        return df
    vintage, _, _ = choose_list_vintage(source, df["vintage"].unique().sort().to_list(), edition)
    return df.filter(pl.col("vintage") == vintage)


def _ilab_rows(goods: pl.DataFrame, derived_inputs: pl.DataFrame) -> pl.DataFrame:
    """(iso3, good, risk_type, source) from ILAB goods, derived rows resolved to their input."""
    import polars as pl

    flags = goods.with_columns(
        child=pl.col("child_labor") | pl.col("forced_child_labor"),
        forced=pl.col("forced_labor") | pl.col("forced_child_labor"),
        source=pl.format("ilab_list_of_goods:{}", pl.col("vintage")),
    )
    # Derived rows: ILAB leaves their flags at No; take the input good's flags in the input country.
    inputs = flags.filter(~pl.col("derived")).select(
        input_good="good", derived_iso3="iso3", in_child="child", in_forced="forced")
    derived = (flags.filter(pl.col("derived"))
                    .join(derived_inputs.select("good", "input_good"), on="good", how="left")
                    .join(inputs, on=["input_good", "derived_iso3"], how="left")
                    .with_columns(child=pl.col("child") | pl.col("in_child").fill_null(False),
                                  forced=pl.col("forced") | pl.col("in_forced").fill_null(False),
                                  source=pl.format("{} (derived: input {} from {})", pl.col("source"),
                                                   pl.col("input_good"), pl.col("derived_iso3"))))
    cols = ["iso3", "good", "child", "forced", "source"]
    both = pl.concat([flags.filter(~pl.col("derived")).select(cols), derived.select(cols)])
    return pl.concat([
        both.filter(pl.col("child")).select("iso3", "good", pl.lit("child_labour").alias("risk_type"), "source"),
        both.filter(pl.col("forced")).select("iso3", "good", pl.lit("forced_labour").alias("risk_type"), "source"),
    ])


def _derived_unresolved(goods: pl.DataFrame, derived_inputs: pl.DataFrame) -> pl.DataFrame:
    """Derived ILAB rows whose input good is unknown or not listed for the input country."""
    import polars as pl

    listed = goods.filter(~pl.col("derived")).select(input_good="good", derived_iso3="iso3")
    d = (goods.filter(pl.col("derived") & ~pl.col("child_labor") & ~pl.col("forced_labor")
                      & ~pl.col("forced_child_labor"))
              .join(derived_inputs.select("good", "input_good"), on="good", how="left"))
    no_rule = d.filter(pl.col("input_good").is_null()).select(
        "good", reason=pl.format("ILAB derived good in {}: no input good in rules/ilab_derived_inputs.csv",
                                 pl.col("iso3")))
    not_listed = (d.filter(pl.col("input_good").is_not_null())
                   .join(listed, on=["input_good", "derived_iso3"], how="anti")
                   .select("good", reason=pl.format("ILAB derived good in {}: input '{}' is not listed for {}",
                                                    pl.col("iso3"), pl.col("input_good"), pl.col("derived_iso3"))))
    return pl.concat([no_rule, not_listed])


def build_high_risk_goods(
    edition: int,
    goods: pl.DataFrame,
    cahra: pl.DataFrame,
    goods_isic: pl.DataFrame,
    deforestation: pl.DataFrame,
    low_risk: pl.DataFrame,
    countries: pl.DataFrame,
    *,
    user_deforestation: pl.DataFrame | None = None,
    derived_inputs: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (high_risk_goods, unmapped goods).

    goods: `parse_goods` output; cahra: `parse_cahra` output; goods_isic:
    good, isic_class[, note]; deforestation: commodity, isic_class[, note];
    low_risk: iso3[, note]; countries: iso3[, ...] (the universe);
    user_deforestation: iso3, good, isic_class (replaces the EUDR default);
    derived_inputs: good, input_good (default rules/ilab_derived_inputs.csv).
    """
    import polars as pl

    if derived_inputs is None:
        derived_inputs = load_rule("ilab_derived_inputs")
    # Good names are join keys: compare them trimmed and in Unicode NFC (ILAB's
    # XML writes "Açaí" decomposed, a hand-edited CSV usually composed).
    goods_isic = goods_isic.select(_key("good"), pl.col("isic_class").str.strip_chars())
    derived_inputs = derived_inputs.select(_key("good"), _key("input_good"))
    # frames built by hand (tests, user code) may carry all-null columns: fix the dtypes
    goods = goods.cast({k: v for k, v in goods_schema().items() if k in goods.columns}).with_columns(_key("good"))
    cahra = cahra.cast({k: v for k, v in cahra_schema().items() if k in cahra.columns})
    _check_classes(goods_isic, "goods_isic")
    _check_classes(deforestation, "deforestation")

    goods = select_vintage(goods, edition, "ilab_list_of_goods")
    cahra = select_vintage(cahra, edition, "eu_cahra")

    # ILAB child / forced labour, mapped good → classes
    ilab = _ilab_rows(goods, derived_inputs)
    ilab_mapped = ilab.join(goods_isic, on="good", how="inner")
    unmapped = [
        goods.select("good").unique().join(goods_isic, on="good", how="anti")
             .select("good", reason=pl.lit("ILAB good has no row in rules/goods_isic.csv")),
        _derived_unresolved(goods, derived_inputs),
    ]

    # CAHRA conflict minerals: any listed area, whole or regional (§4)
    cm = (cahra.select("iso3", source=pl.format("eu_cahra:{}", pl.col("vintage")))
               .join(pl.DataFrame({"isic_class": list(CONFLICT_MINERAL_CLASSES)}), how="cross")
               .with_columns(good=pl.lit(CONFLICT_MINERALS_GOOD), risk_type=pl.lit("conflict_minerals")))

    # Deforestation: user file (licensed list) replaces the EUDR default
    if user_deforestation is not None:
        ud = user_deforestation.select(
            pl.col("iso3").str.strip_chars().str.to_uppercase(), _key("good"),
            pl.col("isic_class").cast(pl.String).str.strip_chars())
        # a row without a class falls back to the goods mapping; neither → reported
        ud = (ud.join(goods_isic.rename({"isic_class": "mapped_class"}), on="good", how="left")
                .with_columns(isic_class=pl.coalesce(pl.col("isic_class").replace("", None),
                                                     pl.col("mapped_class"))))
        unmapped.append(ud.filter(pl.col("isic_class").is_null()).select(
            "good", reason=pl.lit("user deforestation good without isic_class and not in rules/goods_isic.csv")))
        defo = (ud.filter(pl.col("isic_class").is_not_null()).select("iso3", "isic_class", "good").unique()
                  .with_columns(source=pl.lit("user_deforestation")))
        _check_classes(defo, "user deforestation file")
    else:
        in_scope = countries.select("iso3").unique().join(low_risk.select("iso3"), on="iso3", how="anti")
        defo = (in_scope.join(deforestation.select(good="commodity", isic_class="isic_class"), how="cross")
                        .with_columns(source=pl.lit("eudr_default (Regulation (EU) 2023/1115)")))
    defo = defo.with_columns(risk_type=pl.lit("deforestation"))

    cols = ["iso3", "isic_class", "good", "risk_type", "source"]
    hrg = (pl.concat([ilab_mapped.select(cols), cm.select(cols), defo.select(cols)])
             .with_columns(edition=pl.lit(edition, pl.Int32))
             .select(list(hrg_schema())).cast(hrg_schema())
             .unique().sort("iso3", "isic_class", "risk_type", "good"))
    hrg_check().validate(hrg, lazy=True)
    unmapped_df = (pl.concat([u.select("good", "reason") for u in unmapped])
                     .cast(unmapped_schema()).unique().sort("good", "reason"))
    return hrg, unmapped_df
