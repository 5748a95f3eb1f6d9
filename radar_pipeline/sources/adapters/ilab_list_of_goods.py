"""US DOL ILAB List of Goods Produced by Child Labor or Forced Labor (METHODOLOGY §4).

File: ILAB's own "Sweat & Toil" app data, `goods_<year>.xml`:

    <Goods><Good><Good_Name/><Good_Sector/>
      <Countries><Country><Country_Name/><Country_Region/>
        <Child_Labor>Yes|No</Child_Labor><Forced_Labor>Yes|No</Forced_Labor>
        <Forced_Child_Labor>Yes|No</Forced_Child_Labor>
        <Derived_Labor_Exploitation>Yes|No</Derived_Labor_Exploitation>
        <Derived_Country>No|<country of the listed input></Derived_Country>
      </Country>...</Countries></Good>...</Goods>

One row per (good, country). A "derived" row is a downstream good that ILAB
lists because it is made with a listed input (e.g. lithium-ion batteries from
China made with cobalt from the DRC). ILAB sets the child/forced flags of such
a row to "No"; §4 says it counts for the producing country (`Country_Name`)
only, so the row is kept, flagged `derived`, and the input's country is kept
in `derived_country`/`derived_iso3` for `sectors.hrg` to resolve the risk type.
"""
from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.sources.reference.countries import names_to_iso3
from radar_pipeline.sources.toolkit import LandedFile, SourceError, check_content

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

SOURCE = "ilab_list_of_goods"
FILE_PATTERNS = ("*.xml",)


# polars dtypes, built on first use: the definitions load without polars (issue 24 item 3)
@functools.cache
def goods_schema() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "good": pl.String,
        "good_sector": pl.String,
        "country": pl.String,             # Country_Name as in the file
        "iso3": pl.String,
        "child_labor": pl.Boolean,
        "forced_labor": pl.Boolean,
        "forced_child_labor": pl.Boolean,
        "derived": pl.Boolean,            # downstream good made with a listed input
        "derived_country": pl.String,     # Derived_Country as in the file (null when not derived)
        "derived_iso3": pl.String,
        "vintage": pl.String,
        "file": pl.String,
        "row_ref": pl.String,             # "Good 12 'Cocoa', Country 3"
    }


__getattr__ = lazy_attributes(__name__, GOODS_SCHEMA=goods_schema)

_FLAGS = {"Child_Labor": "child_labor", "Forced_Labor": "forced_labor",
          "Forced_Child_Labor": "forced_child_labor", "Derived_Labor_Exploitation": "derived"}

@functools.cache
def goods_check() -> pa.DataFrameSchema:
    # built on first use: pandera and pandas under it cost every definitions import ~0.5 s (issue 24)
    import pandera.polars as pa
    import polars as pl

    return pa.DataFrameSchema(
        {
            "good": pa.Column(str, pa.Check.str_length(min_value=1)),
            "country": pa.Column(str),
            "iso3": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}$")),
            "child_labor": pa.Column(bool),
            "forced_labor": pa.Column(bool),
            "forced_child_labor": pa.Column(bool),
            "derived": pa.Column(bool),
            "derived_iso3": pa.Column(str, pa.Check.str_matches(r"^[A-Z]{3}$"), nullable=True),
            "vintage": pa.Column(str),
            "file": pa.Column(str),
        },
        unique=["vintage", "good", "iso3"],
        # a listed row says why it is listed: a labour flag or a derived input
        checks=[pa.Check(lambda d: d.lazyframe.select(
            pl.any_horizontal("child_labor", "forced_labor", "forced_child_labor", "derived")),
            name="row_has_a_reason")],
    )


def _yes_no(value: str | None, file: LandedFile, row: str, tag: str) -> bool:
    v = (value or "").strip().lower()
    if v in ("yes", "no"):
        return v == "yes"
    raise SourceError(SOURCE, f"expected Yes/No, got {value!r}", file=file.name, row=row, field=tag)


def _parse_one(file: LandedFile) -> list[dict]:
    data = check_content(file, "xml")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SourceError(SOURCE, f"not well-formed XML: {exc}", file=file.name) from exc
    if root.tag != "Goods":
        raise SourceError(SOURCE, f"root element is <{root.tag}>, expected <Goods>", file=file.name)
    rows: list[dict] = []
    for gi, good in enumerate(root.findall("Good"), start=1):
        name = (good.findtext("Good_Name") or "").strip()
        if not name:
            raise SourceError(SOURCE, "good without a name", file=file.name, row=f"Good {gi}",
                              field="Good_Name")
        sector = (good.findtext("Good_Sector") or "").strip() or None
        countries = good.findall("Countries/Country")
        if not countries:
            raise SourceError(SOURCE, "good lists no country", file=file.name,
                              row=f"Good {gi} '{name}'", field="Countries")
        for ci, c in enumerate(countries, start=1):
            ref = f"Good {gi} '{name}', Country {ci}"
            country = (c.findtext("Country_Name") or "").strip()
            if not country:
                raise SourceError(SOURCE, "country without a name", file=file.name, row=ref,
                                  field="Country_Name")
            row = {"good": name, "good_sector": sector, "country": country,
                   "vintage": file.vintage, "file": file.name, "row_ref": ref}
            for tag, col in _FLAGS.items():
                # Derived_Labor_Exploitation is absent from older vintages → No
                text = c.findtext(tag)
                row[col] = False if (text is None and tag == "Derived_Labor_Exploitation") \
                    else _yes_no(text, file, ref, tag)
            dc = (c.findtext("Derived_Country") or "").strip()
            row["derived_country"] = None if dc.lower() in ("", "no") else dc
            rows.append(row)
    return rows


def parse_goods(files: list[LandedFile]) -> pl.DataFrame:
    """Parse ILAB goods XML files into one row per (vintage, good, country)."""
    import polars as pl

    rows = [r for f in files for r in _parse_one(f)]
    df = pl.DataFrame(rows, schema={k: v for k, v in goods_schema().items()
                                    if k not in ("iso3", "derived_iso3")})
    if df.is_empty():
        return pl.DataFrame(schema=goods_schema())

    names = sorted(set(df.get_column("country").to_list())
                   | set(df.get_column("derived_country").drop_nulls().to_list()))
    mapped = names_to_iso3(names)
    # names_to_iso3 hands back the input when country_converter finds nothing;
    # an ILAB name is never itself an ISO3 code, so "unchanged" means unmapped.
    lookup = pl.DataFrame(
        {"name": names, "code": [mapped.get(n) if mapped.get(n) not in (None, n) else None for n in names]},
        schema={"name": pl.String, "code": pl.String})
    df = (df.join(lookup.rename({"name": "country", "code": "iso3"}), on="country", how="left")
            .join(lookup.rename({"name": "derived_country", "code": "derived_iso3"}),
                  on="derived_country", how="left"))

    bad = df.filter(pl.col("iso3").is_null()
                    | (pl.col("derived_country").is_not_null() & pl.col("derived_iso3").is_null()))
    if bad.height:
        r = bad.row(0, named=True)
        value = r["country"] if r["iso3"] is None else r["derived_country"]
        others = sorted(set(bad.filter(pl.col("iso3").is_null()).get_column("country").to_list())
                        | set(bad.filter(pl.col("iso3").is_not_null()).get_column("derived_country").to_list()))
        raise SourceError(SOURCE, f"country name {value!r} does not map to ISO3 "
                          f"(all unmapped: {others})", file=r["file"], row=r["row_ref"],
                          field="Country_Name" if r["iso3"] is None else "Derived_Country")

    df = df.select(list(goods_schema())).cast(goods_schema())
    import pandera.polars as pa

    try:
        goods_check().validate(df, lazy=True)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise SourceError(SOURCE, f"parsed goods fail validation: {exc}",
                          file=", ".join(sorted({f.name for f in files}))) from exc
    return df


def summary(files: list[LandedFile]) -> str:
    """`radar sources check`'s line for a vintage folder (ListsSummary)."""
    df = parse_goods(files)
    return f"{df.height} good-country rows, {df['good'].n_unique()} goods, {df['iso3'].n_unique()} countries"
