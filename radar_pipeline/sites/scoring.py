"""Site scoring (METHODOLOGY §6–§9) over DuckDB tables; the SQL lives in sql/sites/.

Tables read: sites, site_saq (one row per site, one typed column per question of
rules/saq_fields.csv: radar_pipeline/metadata/saq_table.py), site_controls,
site_nonconformities (latest state), inherent_risk_overall, isic, and the rule tables
saq_factors / controls_catalogue that `load_rules` creates from the CSVs in
radar_pipeline/rules/.

`score_sites` and `factor_rows` only read: they fill the temp table score_scope, resolve the
factor bands (sql/sites/saq_bands.sql, a few dozen rows) and create the per-site parts as temp
views. The scores read the site tables through the views scoped_sites / scoped_saq /
scoped_controls / scoped_nonconformities (the tables themselves when every site is scored, the
scope's rows otherwise). Three views read site_saq's columns and are rendered here from the bands
and the control catalogue, because DuckDB cannot address a column by a name held in a row:
site_answer_summary (one row per site with a questionnaire: raw points, answered factors and
one bit per conditional control that applies — plain integer sums over one row per site, the
scores' only view of the answers), site_answer_bands (one column per factor: its band and
answer text, for the explanation rows) and site_control_conditions (one column per conditional
control: its points where it applies, for the explanation rows). The rest is SQL
(site_conditional_controls, site_factor_points, site_control_points: computed only when read).
The scores (sql/sites/site_scores.sql: one row per site joined to one aggregate row per site of
each sparse input, no grid, no ordered aggregate) are computed once into Arrow, ordered by
site_id in polars, returned, and registered on the caller's connection as scored_sites (not
site_scores, the warehouse table they are published to) for the explanation rows and
store.score_and_store: nothing is materialised in DuckDB. Bench: bench/bench_site_scoring.py,
beside a DuckDB floor and a polars peer (bench/peer_polars.py, tested equal).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from radar_pipeline.metadata import saq_table
from radar_pipeline.platform.settings import SQL_DIR, rules_dir
from radar_pipeline.rules import check as rules_check
from radar_pipeline.rules import rule_sql

SITES_SQL = SQL_DIR / "sites"
LEVEL_POINTS = {1: 1, 2: 2, 3: 3, 4: 7}  # §7 control level -> points
FACTOR_KINDS = {"number", "boolean", "enum", "ratio", "ratio_zero_denominator"}


def _sql(name: str) -> str:
    return (SITES_SQL / f"{name}.sql").read_text(encoding="utf-8")


def read_saq_factors(factors_path: Path | None = None, levels_path: Path | None = None) -> pl.DataFrame:
    """saq_factors.csv joined to saq_levels.csv (level -> points), checked for typos."""
    factors = pl.read_csv(
        factors_path or rules_dir() / "saq_factors.csv",
        schema_overrides={"band_min": pl.Float64, "band_max": pl.Float64, "match_value": pl.Utf8,
                          "denominator_field": pl.Utf8, "min_inclusive": pl.Boolean,
                          "max_inclusive": pl.Boolean, "note": pl.Utf8},
    )
    levels = pl.read_csv(levels_path or rules_dir() / "saq_levels.csv",
                         schema_overrides={"points": pl.Float64})
    unknown_levels = factors.join(levels, on="level", how="anti")["level"].unique().to_list()
    if unknown_levels:
        raise ValueError(f"saq_factors: levels not in saq_levels: {unknown_levels}")
    bad_kinds = set(factors["kind"].unique().to_list()) - FACTOR_KINDS
    if bad_kinds:
        raise ValueError(f"saq_factors: unknown kind(s) {sorted(bad_kinds)}")
    # a numeric band needs its inclusivity flag wherever it has a bound
    banded = factors.filter(pl.col("kind").is_in(["number", "ratio", "ratio_zero_denominator"]))
    missing_flag = banded.filter(
        (pl.col("band_min").is_not_null() & pl.col("min_inclusive").is_null())
        | (pl.col("band_max").is_not_null() & pl.col("max_inclusive").is_null()))
    if missing_flag.height:
        raise ValueError(f"saq_factors: bound without inclusive flag in factors "
                         f"{missing_flag['factor'].unique().to_list()}")
    return factors.join(levels.select("level", "points"), on="level", how="left")


CONDITION_TESTS = ("is", "is_not")  # §7 applicability: the SAQ answer equals / differs from the value


def read_controls(path: Path | None = None, fields_path: Path | None = None) -> pl.DataFrame:
    """controls.csv, checked. A control applies to every site unless it names a condition:
    `applies_when_field` (a yes/no or choice question of saq_fields.csv), `applies_when_test`
    (is | is_not) and `applies_when_value` (true/false, or one of the question's choices).
    The condition is checked here against the SAQ definition so that a typo in the rule
    table fails loudly instead of silently switching a control off for every site."""
    path = path or rules_dir() / "controls.csv"
    controls = pl.read_csv(path, schema_overrides={"points": pl.Float64, "applies_when_field": pl.Utf8,
                                                   "applies_when_test": pl.Utf8, "applies_when_value": pl.Utf8})
    missing = {"applies_when_field", "applies_when_test", "applies_when_value"} - set(controls.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)} (control applicability, METHODOLOGY §7)")
    controls = controls.with_columns(
        pl.col(c).str.strip_chars().replace("", None)
        for c in ("applies_when_field", "applies_when_test", "applies_when_value"))
    wrong = controls.filter(pl.col("points") != pl.col("level").replace_strict(LEVEL_POINTS, default=None))
    if wrong.height:
        raise ValueError(f"controls: points do not match level for {wrong['control_id'].to_list()}")
    if controls["control_id"].is_duplicated().any():
        raise ValueError("controls: duplicate control_id")
    fields = {r["field"]: r for r in pl.read_csv(fields_path or rules_dir() / "saq_fields.csv",
                                                 infer_schema=False).iter_rows(named=True)}
    problems = []
    for line, r in enumerate(controls.iter_rows(named=True), start=2):
        field, test, value = r["applies_when_field"], r["applies_when_test"], r["applies_when_value"]
        if field is None and test is None and value is None:
            continue
        where = f"{path.name} line {line} ({r['control_id']})"
        if None in (field, test, value):
            problems.append(f"{where}: applies_when_field, applies_when_test and applies_when_value "
                            "must be given together")
        elif field not in fields or fields[field]["type"] not in ("boolean", "enum"):
            problems.append(f"{where}: applies_when_field {field!r} is not a yes/no or choice question "
                            "of saq_fields.csv")
        elif test not in CONDITION_TESTS:
            problems.append(f"{where}: applies_when_test {test!r} is not one of {list(CONDITION_TESTS)}")
        else:
            allowed = (["true", "false"] if fields[field]["type"] == "boolean"
                       else (fields[field]["allowed_values"] or "").split("|"))
            if value not in allowed:
                problems.append(f"{where}: applies_when_value {value!r} is not an answer of {field} {allowed}")
    if problems:
        raise ValueError("controls: " + "; ".join(problems))
    return controls


def total_available(factors: pl.DataFrame) -> float:
    """Sum over factors of their highest points (the §6 denominator)."""
    return float(factors.group_by("factor").agg(pl.col("points").max())["points"].sum())


def load_rules(con: duckdb.DuckDBPyConnection, *, factors_path: Path | None = None,
               levels_path: Path | None = None, controls_path: Path | None = None,
               temp: bool = False) -> None:
    """(Re)create saq_factors and controls_catalogue from the rule CSVs — after checking the whole
    rules folder (rules_check, once per content): a broken table fails here naming file and line,
    before any site is scored, on every scoring path (`radar score` included)."""
    rules_check.check()
    rule_sql.create_from_frame(con, "saq_factors", read_saq_factors(factors_path, levels_path), temp=temp)
    rule_sql.create_from_frame(con, "controls_catalogue", read_controls(controls_path), temp=temp)


SCOPED_VIEWS = {  # view -> (table, columns the scoring reads)
    # site_row: the site's place in the table, to order the scores by (see _prepare)
    "scoped_sites": ("sites", "sites.rowid as site_row, site_id, iso3, isic_code, isic_level, isic_class"),
    "scoped_saq": ("site_saq", "*"),
    "scoped_controls": ("site_controls", "site_id, control_id"),
    "scoped_nonconformities": ("site_nonconformities", "site_id, severity, status"),
}
MAX_CONDITIONAL_CONTROLS = 62  # one bit each in a BIGINT mask (site_answer_summary.applies_mask)
ANSWERED = 1 << 16  # site_answer_summary: what an answered factor adds to its site's packed sum


def _prepare(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
             methodology_version: str, overrides: pl.DataFrame | None = None,
             to_file: Path | None = None) -> pl.DataFrame | None:
    # score_scope(site_key, site_id): the explanation views join and group on the integer site_key
    if site_ids is None:
        # sites.site_id is the primary key: already distinct
        con.execute("create or replace temp table score_scope as "
                    "select (row_number() over ())::integer as site_key, site_id from sites")
    else:
        scope = (pl.DataFrame({"site_id": list(site_ids)}, schema={"site_id": pl.Utf8}).unique()
                 .with_row_index("site_key", offset=1).with_columns(pl.col("site_key").cast(pl.Int32)))
        rule_sql.create_from_frame(con, "score_scope", scope, temp=True)
    _load_overrides(con, overrides)
    rule_sql.install(con)  # round_score, score_category and score_categories (sql/sites/score_rules.sql)
    # The per-site parts are views: the scores read one row per site, and the site x factor /
    # site x control grids are computed only when the explanation rows (or a caller) read them.
    con.execute("create or replace temp table saq_bands as " + _sql("saq_bands"))
    _conditional_bits(con)
    views = answer_views(con)  # first: it checks site_saq's layout
    # the scores read the site tables through these views: the tables themselves when every site
    # is scored (no join to score_scope), the scope's rows otherwise
    for view, (table, cols) in SCOPED_VIEWS.items():
        scoped = "" if site_ids is None else " semi join score_scope using (site_id)"
        con.execute(f"create or replace temp view {view} as select {cols} from {table}{scoped}")
    for view, sql in views.items():
        con.execute(f"create or replace temp view {view} as {sql}")
    for view in ("site_conditional_controls", "site_factor_points", "site_control_points"):
        con.execute(f"create or replace temp view {view} as " + _sql(view))
    if to_file is not None:  # score_sites_to: the scores streamed to a file by DuckDB, nothing returned
        # (_text, not warehouse.sql_literal: importing the warehouse module imports dagster, ~1 s)
        query = _with_params(_sql("site_scores"), edition, methodology_version)
        con.execute(f"copy (select * exclude (site_row) from ({query}) order by site_id) "
                    f"to {_text(str(to_file))} (format parquet, compression snappy)")
        return None
    # The scores are computed once, into Arrow, ordered by site_id in polars (cheaper than an ORDER
    # BY in the query) for the caller, and the Arrow result is handed back to DuckDB as
    # scored_sites (zero copy, in the query's order) for the explanation rows and
    # store.score_and_store: no temp table is materialised.
    result = con.execute(_with_params(_sql("site_scores"), edition, methodology_version)).to_arrow_table()
    if con.execute("select 1 from duckdb_tables() where table_name = 'scored_sites' and temporary").fetchall():
        con.execute("drop table temp.scored_sites")  # the temp table earlier versions left behind
    scores = pl.from_arrow(result)
    # registered as a polars frame: registering an Arrow table (or binding a view to one) makes
    # duckdb import pandas, ~0.5-1 s of a cold process
    con.register("scored_sites", scores.drop("site_row"))
    return scores


def order_by_site_id(scores: pl.DataFrame) -> pl.DataFrame:
    """The scores ordered by site_id. The query's hash joins shuffle the rows by blocks; put back in
    the sites table's order (an integer sort), they are usually already in site_id order (the
    intake stores a file's lines in order, and files are mostly written sorted): checked, and
    sorted by site_id (a string sort, several times dearer) only when they are not."""
    if scores.height > 1:
        scores = scores.sort("site_row")
        if not scores["site_id"].is_sorted():
            scores = scores.sort("site_id")
    return scores.drop("site_row")


def _with_params(sql: str, edition: int, methodology_version: str) -> str:
    """$edition and $methodology_version as literals: binding a Python parameter makes duckdb import
    pandas (~1 s of a cold process, e.g. `radar score`), and these two are an int and a text."""
    return (sql.replace("$edition", str(int(edition)))
            .replace("$methodology_version", _text(str(methodology_version))))


def _saq_columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """saq_table.table_columns(con) without a bound parameter (see _with_params)."""
    return dict(con.execute(
        f"select column_name, data_type from information_schema.columns where table_name = {_text(saq_table.TABLE)} "
        "and table_catalog = current_database() and table_schema = current_schema() "
        "order by ordinal_position").fetchall())


def _conditional_bits(con: duckdb.DuckDBPyConnection) -> None:
    """temp table conditional_control_bits(control_id, bit) and the macro conditional_points(mask):
    one bit per conditional control (§7), in control_id order, the same as site_answer_summary's
    applies_mask."""
    rows = con.sql("select control_id, points from controls_catalogue where applies_when_field is not null "
                   "order by control_id").fetchall()
    if len(rows) > MAX_CONDITIONAL_CONTROLS:
        raise ValueError(f"controls: {len(rows)} controls with a condition; at most {MAX_CONDITIONAL_CONTROLS}")
    bits = pl.DataFrame({"control_id": [r[0] for r in rows], "bit": [1 << i for i in range(len(rows))]},
                        schema={"control_id": pl.Utf8, "bit": pl.Int64})
    rule_sql.create_from_frame(con, "conditional_control_bits", bits, temp=True)
    terms = [f"case when (m & {1 << i}) <> 0 then {_double(float(r[1]))} else 0::double end"
             for i, r in enumerate(rows)] or ["0::double"]
    con.execute("create or replace temp macro conditional_points(m) as (" + " + ".join(terms) + ")")


# ---------------------------------------------------------------- views over site_saq's columns

_NUMERIC = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT",
            "UTINYINT", "DOUBLE", "FLOAT", "REAL"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _dicts(relation: duckdb.DuckDBPyRelation) -> list[dict]:
    """A small query's rows as dicts, from fetchall: .pl() hands a frame over through pyarrow, whose
    import (~0.2 s) a cold `radar score` or engine process would otherwise pay for two rule tables."""
    names = relation.columns
    return [dict(zip(names, row)) for row in relation.fetchall()]


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _double(x: float) -> str:
    # repr() of a float reads back as the same double
    return "'infinity'::double" if x == float("inf") else "'-infinity'::double" if x == float("-inf") \
        else f"{x!r}::double"


def _in_band(x: str, band: dict) -> str:
    """lo <= x < hi, leaving out an infinite bound (saq_bands: every numeric band half-open)."""
    tests = ([f"{x} >= {_double(band['lo'])}"] if band["lo"] != float("-inf") else []) \
        + ([f"{x} < {_double(band['hi'])}"] if band["hi"] != float("inf") else [])
    return " and ".join(tests) or "true"


def _factor_case(bands: list[dict], types: dict[str, str], then, unanswered: str = "null") -> str:
    """One factor's answer -> then(band) for the band it falls in, then(None) for an answer in
    no band (level none, 0 points), null when unanswered — as sql/sites/saq_bands.sql describes:
    a yes/no answer reads the factor's boolean bands, a choice its enum bands, a number its
    number bands; a ratio factor needs both shares (numbers) and reads its ratio bands when the
    denominator share is > 0 (the ratio rounded to 9 decimals, so 45/15 lands on an edge) and
    its ratio_zero_denominator bands (the numerator share) when it is 0."""
    field, den = bands[0]["field"], bands[0]["denominator_field"]
    bands = [b for b in bands if b["kind"] is not None]
    of_kind = lambda kind: [b for b in bands if b["kind"] == kind]  # noqa: E731
    none = then(None)
    col = _ident(field)
    ftype = types.get(field)
    if den is not None:
        if ftype not in _NUMERIC or types.get(den) not in _NUMERIC:
            return unanswered  # a ratio reads two numeric answers: anything else is never answered
        num, dcol = f"{col}::double", f"{_ident(den)}::double"
        ratio = f"round({num} / {dcol}, 9)"
        on_ratio = "".join(f" when {_in_band(ratio, b)} then {then(b)}" for b in of_kind("ratio"))
        on_zero = "".join(f" when {_in_band(num, b)} then {then(b)}" for b in of_kind("ratio_zero_denominator"))
        return (f"case when {col} is null or {_ident(den)} is null then {unanswered}"
                f" when {dcol} > 0 then (case{on_ratio} else {none} end)"
                f" when {dcol} = 0 then (case{on_zero} else {none} end) else {none} end")
    if ftype is None:
        return unanswered  # no such column: never answered
    if ftype == "BOOLEAN":
        yes = next((then(b) for b in of_kind("boolean") if b["match_text"] == "true"), none)
        no = next((then(b) for b in of_kind("boolean") if b["match_text"] == "false"), none)
        tail = "" if unanswered == "null" else f" else {unanswered}"
        return f"case when {col} then {yes} when not {col} then {no}{tail} end"
    if ftype in _NUMERIC:
        whens = "".join(f" when {_in_band(col + '::double', b)} then {then(b)}" for b in of_kind("number"))
    else:
        whens = "".join(f" when {col} = {_text(b['match_text'])} then {then(b)}" for b in of_kind("enum"))
    return f"case when {col} is null then {unanswered}{whens} else {none} end"


def _answer_text(bands: list[dict], types: dict[str, str]) -> str:
    """The answer as the explanation rows show it: a number as a double (1250.0), yes/no as
    true/false, a choice as given; a ratio factor as `field=w, denominator=d (ratio r)`."""
    field, den = bands[0]["field"], bands[0]["denominator_field"]
    ftype = types.get(field)

    def shown(name: str, kind: str | None) -> str:
        return f"{_ident(name)}::double::varchar" if kind in _NUMERIC else f"{_ident(name)}::varchar"

    if ftype is None:
        return "null::varchar"
    if den is not None:
        if ftype not in _NUMERIC or types.get(den) not in _NUMERIC:
            return "null::varchar"
        ratio = f"round({_ident(field)}::double / {_ident(den)}::double, 9)"
        return (f"{_text(field + '=')} || {shown(field, ftype)} || {_text(', ' + den + '=')} || "
                f"{shown(den, types[den])} || coalesce(' (ratio ' || round(case when {_ident(den)} > 0 then "
                f"{ratio} end, 3)::varchar || ')', '')")
    return shown(field, ftype)


def _condition(control: dict, types: dict[str, str]) -> str:
    """The control's points where the site's answer passes its condition (§7), null otherwise
    (an unanswered condition leaves the control out)."""
    field, test, value = control["applies_when_field"], control["applies_when_test"], control["applies_when_value"]
    ftype = types.get(field)
    if ftype is None or ftype in _NUMERIC:
        return "null::double"  # only yes/no and choice answers are conditions (read_controls)
    answer = f"lower({_ident(field)}::varchar)" if ftype == "BOOLEAN" else _ident(field)
    op = {"is": "=", "is_not": "<>"}[test]
    return f"case when {answer} {op} {_text(value)} then {_double(control['points'])} end"


def _condition_test(control: dict, types: dict[str, str]) -> str:
    """_condition's test alone (true where the control applies, else false or null); a yes/no
    answer is tested as a boolean, not as its text: the same outcome without a string per row."""
    field, test, value = control["applies_when_field"], control["applies_when_test"], control["applies_when_value"]
    if types.get(field) != "BOOLEAN":
        return f"({_condition(control, types)}) is not null"
    wanted = (value.lower() == "true") == (test == "is")  # read_controls: value is true or false
    return _ident(field) if wanted else f"not {_ident(field)}"


def answer_views(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """SELECTs of the temp views site_answer_points, site_answer_bands and site_control_conditions
    over site_saq for the sites in score_scope, rendered from the temp table saq_bands and the
    controls_catalogue (see the module docstring). Names are quoted, values are SQL literals."""
    types = _saq_columns(con)
    if not types:
        raise RuntimeError("no site_saq table: open the warehouse for writing once (radar_pipeline.platform.warehouse."
                           "connect creates it from rules/saq_fields.csv)")
    if "field" in types and "value_num" in types:
        raise RuntimeError("site_saq is still in the long layout of earlier versions: open the warehouse for "
                           "writing once (e.g. `radar sites ingest` or `radar refresh`) to convert it")
    by_factor: dict[int, list[dict]] = {}
    for band in _dicts(con.sql("select * from saq_bands order by factor_id, band_id")):
        by_factor.setdefault(band["factor_id"], []).append(band)
    def band_points(band: dict | None) -> str:
        return _double(band["points"]) if band else "0::double"

    def band_id(band: dict | None) -> str:
        return str(band["band_id"]) if band else "0"

    points, explained = [], []
    for factor_id, bands in by_factor.items():
        name = _ident(bands[0]["factor"])
        points.append(f"({_factor_case(bands, types, band_points)}) as p{factor_id}")
        band = _factor_case(bands, types, band_id)
        explained.append(f"{{'factor_id': {factor_id}, 'band_id': ({band}), "
                         f"'answer': {_answer_text(bands, types)}}} as {name}")
    # Whole, non-negative points (the default levels: 0, 1, 2, 4, 7) are summed as one integer per
    # site: each answered factor adds ANSWERED + its points, an unanswered one 0, so the sum holds
    # n_answered (sum // ANSWERED) and raw_points (sum % ANSWERED) — one CASE and one addition per
    # factor instead of nullable double sums and a separate count. Other points: the plain sums.
    all_points = [b["points"] for bands in by_factor.values() for b in bands if b["points"] is not None]
    packed = all(p >= 0 and float(p).is_integer() for p in all_points) \
        and sum(max(all_points, default=0) for _ in by_factor) < ANSWERED
    if packed:
        def packed_points(band: dict | None) -> str:
            return str(ANSWERED + (int(band["points"]) if band else 0))
        points_sum = [f"({_factor_case(bands, types, packed_points, '0')})" for bands in by_factor.values()]
    else:
        points_sum = [f"p{factor_id}" for factor_id in by_factor]
    controls = _dicts(con.sql(
        "select control_id, points, applies_when_field, applies_when_test, applies_when_value from controls_catalogue "
        "where applies_when_field is not null order by control_id"))
    conditions = [f"{_condition(c, types)} as {_ident(c['control_id'])}" for c in controls]
    # UNPIVOT needs a column: a catalogue without conditional controls gets one that is never true
    conditions = conditions or ["null::double as _no_conditional_control"]
    scoped = "from site_saq as q inner join score_scope as sc using (site_id)"

    def select(cols: list[str]) -> str:
        return "select sc.site_key" + "".join(f",\n    {c}" for c in cols) + f"\n{scoped}"

    # the scores' one row per site: sums over plain columns (the bits as conditional_control_bits)
    mask = " + ".join(f"(case when {_condition_test(c, types)} then {1 << i}::bigint else 0 end)"
                      for i, c in enumerate(controls)) or "0::bigint"
    if packed:
        total = " + ".join(points_sum) or "0"
        summary = (f"select site_id, (s % {ANSWERED})::double as raw_points, s // {ANSWERED} as n_answered, "
                   f"applies_mask\nfrom (\n    select q.site_id,\n    ({total}) as s,\n"
                   f"    ({mask}) as applies_mask\n    from scoped_saq as q\n)")
    else:
        raw = " + ".join(f"coalesce({p}, 0::double)" for p in points_sum) or "0::double"
        answered = " + ".join(f"({p} is not null)::integer" for p in points_sum) or "0"
        summary = ("select site_id, (" + raw + ")::double as raw_points, (" + answered + ") as n_answered, "
                   "applies_mask\nfrom (\n    select q.site_id" + "".join(f",\n    {c}" for c in points)
                   + f",\n    ({mask}) as applies_mask\n    from scoped_saq as q\n)")
    return {"site_answer_summary": summary, "site_answer_bands": select(explained),
            "site_control_conditions": select(conditions)}


def _load_overrides(con: duckdb.DuckDBPyConnection, overrides: pl.DataFrame | None) -> None:
    """temp tables site_overrides_in_force (one per site, §8b), site_override_rows (every valid
    row, with file and line) and site_override_rejects. `overrides` None: read RADAR_OVERRIDES
    as of today, so every scoring path (CLI, sensor, rescoring) applies the same overrides; a
    frame (site_id, category, reason, author) is used as given."""
    from radar_pipeline.sites.overrides import OVERRIDE_SCHEMA, REJECT_SCHEMA, read_overrides

    if overrides is None:
        read = read_overrides()
        rows, in_force, rejects = read.valid, read.in_force(), read.rejects
    else:
        rows, in_force, rejects = pl.DataFrame(schema=OVERRIDE_SCHEMA), overrides, pl.DataFrame(schema=REJECT_SCHEMA)
    rule_sql.create_from_frame(con, "site_overrides_in_force",
                               in_force.select("site_id", "category", "reason", "author"), temp=True)
    rule_sql.create_from_frame(con, "site_override_rows", rows, temp=True)
    rule_sql.create_from_frame(con, "site_override_rejects", rejects, temp=True)


def score_sites(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                methodology_version: str | None = None, overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """site_scores rows for the given sites (all sites when None). Writes no permanent table.
    methodology_version defaults to the fingerprint of the site stage (METHODOLOGY §8c)."""
    return order_by_site_id(_prepare(con, edition, site_ids, methodology_version or site_version(), overrides))


def score_sites_unordered(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                          methodology_version: str | None = None,
                          overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """score_sites' rows in the query's order, with the extra column site_row: for a caller that
    frees the connection's memory before ordering them (`order_by_site_id`), as `radar score` does."""
    return _prepare(con, edition, site_ids, methodology_version or site_version(), overrides)


def score_sites_to(con: duckdb.DuckDBPyConnection, edition: int, out: Path, site_ids: list[str] | None = None,
                   methodology_version: str | None = None, overrides: pl.DataFrame | None = None) -> None:
    """score_sites' rows (the same columns, ordered by site_id) written by DuckDB to the Parquet file
    `out`, never held in Python: the query streams into the file and its sort spills under the
    connection's memory_limit, so the memory does not grow with the number of sites (3M sites
    returned as a frame peaked at 4.4 GiB, 1.4 GiB this way with a 1GB limit). Leaves no
    scored_sites view (no explanation rows)."""
    _prepare(con, edition, site_ids, methodology_version or site_version(), overrides, to_file=Path(out))


def site_version() -> str:
    from radar_pipeline.rules import fingerprint

    return fingerprint.version("site")


def factor_rows(con: duckdb.DuckDBPyConnection, edition: int, site_ids: list[str] | None,
                methodology_version: str | None = None, overrides: pl.DataFrame | None = None) -> pl.DataFrame:
    """site_score_factors rows (the explanation of each score) for the given sites."""
    version = methodology_version or site_version()
    _prepare(con, edition, site_ids, version, overrides)
    return con.sql(f"select * from ({_sql('site_score_factors')}) order by site_id, kind, item",
                   params={"edition": edition, "methodology_version": version}).pl()
