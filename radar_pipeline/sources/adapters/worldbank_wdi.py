"""World Bank World Development Indicators (WDI).

One vintage folder may hold any mix of three layouts; all parse to the same rows:

a. Bulk CSV (`API_<CODE>_DS2_*.csv`, or renamed copies): a few preamble lines
   ("Data Source", "Last Updated Date"), then
   `Country Name,Country Code,Indicator Name,Indicator Code,1960,...` with one
   column per year and a trailing empty column. The indicator is read from the
   `Indicator Code` column, never from the file name. Aggregates (World, income
   groups, regions) are mixed in; a `Metadata_Country_*.csv` in the folder
   flags them (empty `Region`).
b. ONE Campaign long CSV: `year,entity_code,entity_name,indicator_code,value[,indicator_name]`.
c. API v2 JSON pages as `download_api` stores them: `<CODE>.p<N>.json`, each the
   raw body of `/v2/country/all/indicator/<CODE>?format=json&per_page=..&page=N`
   (`[{page, pages, per_page, total, ...}, [records]]`), plus
   `countries.p<N>.json` (bodies of `/v2/country?format=json`) whose records
   with region id "NA" ("Aggregates") flag aggregates.

Live mode: `download(dest, client, log)` (the adapter contract's DownloadsItself) stores the
country list and every registry code's pages there, through `download_api(get, code, dest)` /
`download_countries(get, dest)`; `get(url, params) -> bytes` is the caller's HTTP function.

Aggregates are dropped when the folder (or the caller, via `aggregates=`)
says which codes they are; otherwise they are kept and the central country
resolver drops codes outside the M49 universe.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from radar_pipeline.platform import settings
from radar_pipeline.sources.toolkit import (
    IndicatorSpec,
    LandedFile,
    SourceError,
    check_content,
    conform,
    empty_observations,
    specs_for,
)
from radar_pipeline.sources.toolkit.fetch import HttpClient, body_hint
from radar_pipeline.sources.toolkit.tables import (
    LINE,
    decode_text,
    first_bad,
    parse_float,
    read_csv_text,
    spec_table,
    with_columns_named,
)

SOURCE = "worldbank_wdi"
FILE_PATTERNS = ("*.csv", "*.json")
API_SOURCE_ID = ""  # the API v2 `source` parameter: empty = WDI, the API's default database

API_BASE_URL = "https://api.worldbank.org/v2"
_PAGE_FILE = re.compile(r"^(?P<stem>.+)\.p(?P<page>\d+)\.json$")
_COUNTRIES_STEM = "countries"
_BULK_HEADER = r'^\ufeff?"?Country Name"?\s*,\s*"?Country Code"?'
_OUT_COLS = ["source", "indicator_id", "vintage", "file", "row_ref", "country", "code",
             "data_year", "value"]

Getter = Callable[[str, dict], bytes]


# --------------------------------------------------------------------------- layout detection

def _first_line(text: str) -> str:
    return text.lstrip("\ufeff").split("\n", 1)[0]


def _csv_kind(file: LandedFile, text: str) -> str:
    head = _first_line(text).replace('"', "").lower()
    cols = [c.strip() for c in head.split(",")]
    if file.name.startswith("Metadata_Indicator_"):
        return "skip"
    if cols[:2] == ["country code", "region"] or file.name.startswith("Metadata_Country_"):
        return "metadata"
    if {"entity_code", "indicator_code", "value", "year"} <= set(cols):
        return "long"
    if re.search(_BULK_HEADER, text[:5000], flags=re.MULTILINE):
        return "bulk"
    raise SourceError(SOURCE, "unrecognised CSV layout (expected a WDI bulk file with a "
                      "'Country Name,Country Code,...' header, a Metadata_Country file or a "
                      f"year,entity_code,indicator_code,value long file); first line {head[:80]!r}",
                      file=file.name)


# --------------------------------------------------------------------------- aggregates

def _metadata_aggregates(file: LandedFile, text: str) -> set[str]:
    df = read_csv_text(file, text)
    df = with_columns_named(file, df, ["Country Code", "Region"])
    return set(df.filter(pl.col("Region").str.strip_chars().fill_null("") == "")
                 ["Country Code"].drop_nulls().to_list())


def _load_json(file: LandedFile) -> object:
    data = check_content(file, "json")
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(file.source, f"not valid JSON: {exc}", file=file.name) from exc
    _raise_api_message(file.source, file.name, body)
    if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], dict)
            and (body[1] is None or isinstance(body[1], list))):
        raise SourceError(file.source, "not a World Bank API v2 page: expected "
                          "[{page, pages, ...}, [records]]", file=file.name)
    for key in ("page", "pages", "total"):
        try:
            int(body[0][key])
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(file.source, f"page header lacks a numeric '{key}'",
                              file=file.name, field=key) from exc
    return body


def _raise_api_message(source: str, name: str, body: object) -> None:
    """The API answers bad requests with HTTP 200 and `[{"message": [{id, key, value}]}]`."""
    if isinstance(body, list) and body and isinstance(body[0], dict) and "message" in body[0]:
        msgs = body[0]["message"]
        msgs = msgs if isinstance(msgs, list) else [msgs]
        text = "; ".join(
            f"{m.get('id', '?')} {m.get('key', '')}: {m.get('value', '')}".strip()
            if isinstance(m, dict) else str(m) for m in msgs)
        raise SourceError(source, f"World Bank API returned an error message instead of data: {text}",
                          file=name)


def _countries_frame(file: LandedFile, body: list) -> pl.DataFrame:
    records = body[1] or []
    return pl.from_dicts(records, schema={
        "id": pl.String, "iso2Code": pl.String, "name": pl.String,
        "region": pl.Struct({"id": pl.String, "value": pl.String})}) if records else pl.DataFrame(
        schema={"id": pl.String, "iso2Code": pl.String, "name": pl.String,
                "region": pl.Struct({"id": pl.String, "value": pl.String})})


def _json_groups(files: list[LandedFile]) -> dict[str, dict[int, LandedFile]]:
    groups: dict[str, dict[int, LandedFile]] = {}
    for f in files:
        m = _PAGE_FILE.match(f.name)
        if m is None:
            raise SourceError(f.source, "JSON file name is not <CODE>.p<N>.json", file=f.name)
        groups.setdefault(m["stem"], {})[int(m["page"])] = f
    return groups


def _complete_pages(stem: str, pages: dict[int, LandedFile]) -> list[tuple[LandedFile, list]]:
    """Load every page of one download, checking that none is missing or extra."""
    if 1 not in pages:
        raise SourceError(SOURCE, f"page 1 of '{stem}' is missing (have pages {sorted(pages)})",
                          file=f"{stem}.p1.json")
    loaded = {n: _load_json(f) for n, f in sorted(pages.items())}
    first = loaded[1][0]
    expected = max(int(first["pages"]), 1)
    missing = sorted(set(range(1, expected + 1)) - set(pages))
    extra = sorted(set(pages) - set(range(1, expected + 1)))
    if missing or extra:
        raise SourceError(SOURCE, f"incomplete download of '{stem}': page 1 says {expected} page(s) "
                          f"but found pages {sorted(pages)}"
                          + (f" (missing {missing})" if missing else "")
                          + (f" (unexpected {extra})" if extra else ""),
                          file=pages[1].name)
    for n, body in loaded.items():
        empty = int(first["pages"]) == 0 and int(first["total"]) == 0  # API answers page 0 of 0
        if (int(body[0]["page"]) != n and not empty) or int(body[0]["pages"]) != int(first["pages"]):
            raise SourceError(SOURCE, f"page header says page {body[0]['page']} of {body[0]['pages']} "
                              f"but the file is page {n} of {first['pages']}", file=pages[n].name)
    n_records = sum(len(b[1] or []) for b in loaded.values())
    if n_records != int(first["total"]):
        raise SourceError(SOURCE, f"'{stem}' pages hold {n_records} records but the API reported "
                          f"total {first['total']}", file=pages[1].name)
    return [(pages[n], loaded[n]) for n in sorted(loaded)]


def aggregate_codes(files: list[LandedFile]) -> set[str]:
    """Codes the World Bank uses for aggregates, from any `Metadata_Country_*.csv`
    (empty Region) and `countries.p<N>.json` pages (region id "NA" / "Aggregates")
    among `files`. For API pages both the 3-letter `id` and the `iso2Code` of each
    aggregate are returned (API data records name the country by its 2-letter id)."""
    codes: set[str] = set()
    for f in files:
        if f.name.lower().endswith(".csv") and f.name.startswith("Metadata_Country_"):
            text = decode_text(f, check_content(f, "csv"))
            codes |= _metadata_aggregates(f, text)
    json_files = [f for f in files if (m := _PAGE_FILE.match(f.name)) and m["stem"] == _COUNTRIES_STEM]
    if json_files:
        for f, body in _complete_pages(_COUNTRIES_STEM, _json_groups(json_files)[_COUNTRIES_STEM]):
            df = _countries_frame(f, body)
            agg = df.filter((pl.col("region").struct.field("id").str.strip_chars() == "NA")
                            | (pl.col("region").struct.field("value").str.strip_chars() == "Aggregates"))
            codes |= set(agg["id"].drop_nulls().to_list()) | set(agg["iso2Code"].drop_nulls().to_list())
    return {c.strip() for c in codes if c and c.strip()}


# --------------------------------------------------------------------------- layouts

def read_wide_csv(file: LandedFile, text: str) -> pl.DataFrame:
    """A World Bank wide CSV (WDI bulk, WGIData): header `Country Name,Country Code,...,
    Indicator Code,<years>` below any preamble -> long rows (__line, country, code, series,
    data_year, value)."""
    df = read_csv_text(file, text, header_pattern=_BULK_HEADER)
    df = with_columns_named(file, df, ["Country Name", "Country Code", "Indicator Code"])
    years = [c for c in df.columns if re.fullmatch(r"\d{4}", c)]
    if not years:
        raise SourceError(file.source, "no year columns (1960, 1961, ...) in the header", file=file.name)
    long = (df.select(pl.col("Country Name").alias("country"), pl.col("Country Code").alias("code"),
                      pl.col("Indicator Code").str.strip_chars().alias("series"), LINE, *years)
              .unpivot(index=["country", "code", "series", LINE], on=years,
                       variable_name="year", value_name="raw"))
    long = parse_float(file, long, "raw", "value", pl.col("year"))
    return long.select(pl.col(LINE), "country", "code", "series",
                       pl.col("year").cast(pl.Int32).alias("data_year"), "value")


def _long(file: LandedFile, text: str) -> pl.DataFrame:
    df = read_csv_text(file, text)
    df = with_columns_named(file, df, ["year", "entity_code", "indicator_code", "value"])
    df = parse_float(file, df, "value", "value_f", "value")
    df = df.with_columns(pl.col("year").str.strip_chars().cast(pl.Int32, strict=False).alias("data_year"))
    first_bad(file, df, pl.col("year").is_not_null() & pl.col("data_year").is_null(), "year", "year",
              "year is not an integer")
    name = pl.col("entity_name") if "entity_name" in df.columns else pl.lit(None, pl.String)
    return df.select(pl.col(LINE), name.alias("country"), pl.col("entity_code").alias("code"),
                     pl.col("indicator_code").str.strip_chars().alias("series"), "data_year",
                     pl.col("value_f").alias("value"))


def _api_pages(stem: str, pages: dict[int, LandedFile]) -> pl.DataFrame:
    frames = []
    for f, body in _complete_pages(stem, pages):
        records = body[1] or []
        if not records:
            continue
        df = pl.from_dicts(records, schema={
            "indicator": pl.Struct({"id": pl.String, "value": pl.String}),
            "country": pl.Struct({"id": pl.String, "value": pl.String}),
            "countryiso3code": pl.String, "date": pl.String, "value": pl.Float64})
        df = df.with_row_index(LINE, offset=1).with_columns(
            pl.col("date").str.strip_chars().cast(pl.Int32, strict=False).alias("data_year"))
        bad = df.filter(pl.col("date").is_not_null() & pl.col("data_year").is_null()).head(1)
        if bad.height:
            raise SourceError(SOURCE, f"date is not a year: {bad['date'].item()!r}", file=f.name,
                              row=f"record {bad[LINE].item()}", field="date")
        frames.append(df.select(
            pl.format("record {}", pl.col(LINE)).alias("row_ref"),
            pl.col("country").struct.field("value").alias("country"),
            pl.col("countryiso3code").str.strip_chars().replace("", None).alias("code"),
            pl.col("country").struct.field("id").alias("api_country_id"),
            pl.col("indicator").struct.field("id").alias("series"),
            "data_year", "value", pl.lit(f.name).alias("file")))
    if not frames:
        return pl.DataFrame(schema={"row_ref": pl.String, "country": pl.String, "code": pl.String,
                                    "api_country_id": pl.String, "series": pl.String,
                                    "data_year": pl.Int32, "value": pl.Float64, "file": pl.String})
    return pl.concat(frames)


# --------------------------------------------------------------------------- entry point

def parse(files: list[LandedFile], specs: list[IndicatorSpec], *,
          aggregates: set[str] | None = None) -> pl.DataFrame:
    """Observation rows (RAW_OBSERVATION_SCHEMA) for every registry spec whose series
    appears in the files. `aggregates`: extra aggregate codes to drop (e.g. from
    `aggregate_codes` on another vintage's metadata); codes flagged by metadata in
    `files` are always dropped."""
    if not files or not specs:
        return empty_observations()
    drop = set(aggregates or ()) | aggregate_codes(files)
    spec_df = spec_table(specs)
    frames: list[pl.DataFrame] = []
    for f in files:
        if not f.name.lower().endswith(".csv"):
            continue
        text = decode_text(f, check_content(f, "csv"))
        kind = _csv_kind(f, text)
        if kind in ("skip", "metadata"):
            continue
        rows = read_wide_csv(f, text) if kind == "bulk" else _long(f, text)
        frames.append(rows.select(pl.format("line {}", pl.col(LINE)).alias("row_ref"), "country",
                                  "code", pl.lit(None, pl.String).alias("api_country_id"), "series",
                                  "data_year", "value", pl.lit(f.name).alias("file")))
    json_files = [f for f in files if f.name.lower().endswith(".json")]
    for stem, pages in _json_groups(json_files).items():
        if stem != _COUNTRIES_STEM:
            frames.append(_api_pages(stem, pages))
    if not frames:
        return empty_observations()
    rows = pl.concat(frames)
    drop_list = sorted(drop)
    rows = rows.filter(~pl.col("code").is_in(drop_list).fill_null(False)
                       & ~pl.col("api_country_id").is_in(drop_list).fill_null(False))
    out = rows.join(spec_df, on="series", how="inner").with_columns(
        pl.lit(SOURCE).alias("source"), pl.lit(files[0].vintage).alias("vintage"))
    return conform(out.select(_OUT_COLS))


# --------------------------------------------------------------------------- live download

def _fetch_pages(get: Getter, url: str, params: dict, stem: str, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)

    def fetch(page: int) -> tuple[bytes, dict]:
        body = get(url, {**params, "page": page})
        name = f"{stem}.p{page}.json"
        try:
            parsed = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(SOURCE, f"response for {url} page {page} is not JSON "
                              f"(starts {body[:60]!r}){body_hint(body)}", file=name) from exc
        _raise_api_message(SOURCE, name, parsed)
        if not (isinstance(parsed, list) and parsed and isinstance(parsed[0], dict)
                and "pages" in parsed[0]):
            raise SourceError(SOURCE, f"response for {url} page {page} is not an API v2 page",
                              file=name)
        if int(parsed[0].get("page") or page) != page and int(parsed[0]["pages"]) > 0:
            raise SourceError(SOURCE, f"asked for page {page} but got page {parsed[0].get('page')}",
                              file=name)
        return body, parsed[0]

    first_body, meta = fetch(1)
    n_pages = max(int(meta["pages"]), 1)
    bodies = [first_body] + [fetch(n)[0] for n in range(2, n_pages + 1)]
    written = []
    for n, body in enumerate(bodies, start=1):
        path = dest / f"{stem}.p{n}.json"
        path.write_bytes(body)
        written.append(path)
    # Pages left over from an earlier, longer download would make the set inconsistent.
    for old in dest.glob(f"{_glob_escape(stem)}.p*.json"):
        m = _PAGE_FILE.match(old.name)
        if m and m["stem"] == stem and int(m["page"]) > n_pages:
            old.unlink()
    return written


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def download_api(get: Getter, code: str, dest: Path, base_url: str = API_BASE_URL,
                 per_page: int = 20000) -> list[Path]:
    """Fetch every page of one indicator from the API v2 into `dest/<CODE>.p<N>.json`.
    `get(url, params) -> bytes` does the HTTP (retries, timeouts, status errors)."""
    if not re.fullmatch(r"[A-Za-z0-9_.]+", code):
        raise SourceError(SOURCE, f"not a World Bank indicator code: {code!r}")
    url = f"{base_url.rstrip('/')}/country/all/indicator/{code}"
    return _fetch_pages(get, url, {"format": "json", "per_page": per_page}, code, Path(dest))


def download_countries(get: Getter, dest: Path, base_url: str = API_BASE_URL,
                       per_page: int = 400) -> list[Path]:
    """Fetch the API v2 country list (aggregates flagged by region) into
    `dest/countries.p<N>.json`."""
    url = f"{base_url.rstrip('/')}/country"
    return _fetch_pages(get, url, {"format": "json", "per_page": per_page}, _COUNTRIES_STEM, Path(dest))


def download(dest: Path, client: HttpClient, log: Callable[[str], None]) -> list[Path]:
    """Live mode (DownloadsItself): every registry code of this source from the API v2."""
    return download_source(SOURCE, API_SOURCE_ID, dest, client, log)


def download_source(source: str, api_source_id: str, dest: Path, client: HttpClient,
                    log: Callable[[str], None]) -> list[Path]:
    """The API v2 country list and every rules/indicators.csv code of `source` (one API
    database, `api_source_id`) into `dest`; the World Bank adapters' `download`."""
    params = {"source": api_source_id} if api_source_id else {}
    base = settings.worldbank_api_base()
    paths = download_countries(client.get, dest, base)
    for code in sorted({s.series for s in specs_for(source)}):
        log(f"[{source}] downloading {code} from the World Bank API v2")
        paths += download_api(lambda url, p=None: client.get(url, {**params, **(p or {})}), code, dest, base)
    return paths
