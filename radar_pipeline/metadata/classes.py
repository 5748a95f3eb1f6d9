"""Field and Table: one declaration per column and per table, and what is generated from it.

A `Field` is a column's name, DuckDB type, description and constraints. A `Table` lists its
fields (in column order), its primary key and what one row is. From a Table come:

  * `ddl()`           CREATE TABLE IF NOT EXISTS (+ the ALTERs that bring older warehouses up
                      to date); `ddl(keys=False)` for DuckLake, which has no primary keys;
  * `pandera()`       the pandera (polars) schema: dtype, nullable, unique, checks, primary key
                      as `unique=[...]`, descriptions;
  * `dagster_schema()` the `dagster/column_schema` metadata (types, descriptions, constraints);
  * `dictionary_rows()` the published data dictionary rows (radar_pipeline/publish/build.py).

Constraints are plain data (regex, isin, range, ge, finite) so each generator renders them its
own way; the DDL keeps only NOT NULL and the primary key (checks run in pandera, where a
failure names the column and value instead of aborting an INSERT).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

# DuckDB type (as written in the DDL) -> polars dtype for pandera. The DuckDB name upper-cased
# is what information_schema.columns.data_type reports, which the Dagster metadata shows.
POLARS_TYPES = {
    "varchar": "Utf8", "integer": "Int32", "bigint": "Int64", "tinyint": "Int8", "smallint": "Int16",
    "double": "Float64", "boolean": "Boolean", "date": "Date", "timestamp": "Datetime",
}


@dataclass(frozen=True)
class Field:
    """One column: declared once in radar_pipeline/metadata/fields.py (or inline in a table
    when only that table has it); a table may adjust it with `.but(...)`."""

    name: str
    type: str                       # DuckDB type, lower case: varchar, integer, double, ...
    description: str = ""
    nullable: bool = True
    unique: bool = False
    regex: str | None = None        # the whole value must match
    isin: tuple | None = None       # allowed values
    range: tuple[float, float] | None = None  # inclusive min, max
    ge: float | None = None         # minimum (inclusive)
    finite: bool = False            # no NaN / inf

    def __post_init__(self) -> None:
        if self.type not in POLARS_TYPES:
            raise ValueError(f"field {self.name}: type {self.type!r} is not one of {sorted(POLARS_TYPES)}")

    def but(self, **changes) -> Field:
        """This field with some attributes changed (a table-specific description, say)."""
        return replace(self, **changes)

    @property
    def duckdb_type(self) -> str:
        """As information_schema.columns.data_type reports it."""
        return self.type.upper()

    def constraint_texts(self) -> list[str]:
        out = []
        if self.regex:
            out.append(f"matches {self.regex}")
        if self.isin is not None:
            out.append("one of " + ", ".join(map(str, self.isin)))
        if self.range:
            out.append(f"between {self.range[0]} and {self.range[1]}")
        if self.ge is not None:
            out.append(f">= {self.ge}")
        if self.finite:
            out.append("finite")
        return out


@dataclass(frozen=True)
class Table:
    """One table (or view). `columns` is a sequence of Fields, or a function returning one when
    the columns come from a rule file (read when the DDL is generated)."""

    name: str
    description: str
    columns: Sequence[Field] | Callable[[], Sequence[Field]]
    primary_key: tuple[str, ...] = ()
    # False: the key holds by construction (the writer deletes a slice and re-inserts it in one
    # transaction) and is checked, documented and NOT NULL, but the DDL creates no PRIMARY KEY:
    # DuckDB's key index made deleting and re-inserting the rows of rescored sites the main cost
    # of scoring them (bench/README.md); older warehouses lose the index at connect
    # (warehouse._drop_retired_primary_keys)
    key_indexed: bool = True
    # columns added after the table first shipped, in the order they were added: warehouses
    # created before get them with ALTER TABLE ... ADD COLUMN IF NOT EXISTS (their rows stay
    # null until their slice is rebuilt)
    added_later: tuple[str, ...] = ()
    view_sql: str | None = None     # a view: its SELECT (the columns describe its output)
    # METHODOLOGY §8c: every table's rows carry `methodology_version`, or the table says here why
    # no rule produces them (a site's own answers, a publisher's values as read, a run log)
    unversioned: str = ""

    def fields(self) -> list[Field]:
        cols = list(self.columns() if callable(self.columns) else self.columns)
        names = [c.name for c in cols]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"table {self.name}: columns {dup} declared twice")
        unknown = [k for k in (*self.primary_key, *self.added_later) if k not in names]
        if unknown:
            raise ValueError(f"table {self.name}: primary key / added_later name unknown columns {unknown}")
        return cols

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.fields()]

    # --- DDL -------------------------------------------------------------------------------

    def ddl(self, *, keys: bool = True, if_not_exists: bool = True, qualified: str | None = None,
            comments: bool = False) -> str:
        """CREATE statement(s) for DuckDB. keys=False leaves the primary key out (DuckLake, and
        the published copies, which are built with CREATE TABLE AS); its columns stay NOT NULL."""
        name = qualified or self.name
        exists = " if not exists" if if_not_exists else ""
        head = ""
        if comments:
            head = f"-- {self.description}\n" if self.description else ""
        if self.view_sql is not None:
            return f"{head}create view{exists} {name} as\n{self.view_sql.strip()};\n"
        fields = self.fields()
        entries = [(f"{f.name} {f.type}" + (" not null" if not f.nullable or f.name in self.primary_key else ""),
                    f.description) for f in fields]
        if keys and self.primary_key and self.key_indexed:
            entries.append((f"primary key ({', '.join(self.primary_key)})", ""))
        body = "\n".join(f"    {text}{',' if i < len(entries) - 1 else ''}"
                         + (f"  -- {desc}" if comments and desc else "") for i, (text, desc) in enumerate(entries))
        out = f"{head}create table{exists} {name} (\n{body}\n);\n"
        types = {f.name: f.type for f in fields}
        out += "".join(f"alter table {name} add column if not exists {c} {types[c]};\n" for c in self.added_later)
        return out

    # --- pandera ---------------------------------------------------------------------------

    def pandera(self, *, strict: bool = False, exclude: Iterable[str] = (), unique: bool = True):
        """The pandera (polars) schema of the table's rows. `exclude`: columns the validated frame
        does not carry yet (methodology_version is stamped after validation). `unique`: check the
        primary key as a unique combination."""
        import pandera.polars as pa
        import polars as pl

        exclude = set(exclude)
        cols = {}
        for f in self.fields():
            if f.name in exclude:
                continue
            dtype = pl.Datetime("us") if f.type == "timestamp" else getattr(pl, POLARS_TYPES[f.type])
            cols[f.name] = pa.Column(dtype, _pandera_checks(f), nullable=f.nullable, unique=f.unique,
                                     description=f.description or None)
        key = [k for k in self.primary_key if k not in exclude]
        return pa.DataFrameSchema(cols, name=self.name, strict=strict,
                                  unique=key if (unique and key) else None,
                                  description=self.description or None)

    # --- Dagster ---------------------------------------------------------------------------

    def dagster_schema(self):
        """`dagster/column_schema` metadata: each column's DuckDB type, description, nullability,
        uniqueness and checks, and the primary key."""
        import dagster as dg

        cols = [dg.TableColumn(f.name, f.duckdb_type, description=f.description or None,
                               constraints=dg.TableColumnConstraints(
                                   nullable=f.nullable and f.name not in self.primary_key,
                                   unique=f.unique or tuple(self.primary_key) == (f.name,),
                                   other=f.constraint_texts() or None))
                for f in self.fields()]
        key = f"primary key ({', '.join(self.primary_key)})"
        if not self.key_indexed:
            key += ": unique by construction, not indexed"
        constraints = dg.TableConstraints(other=[key]) if self.primary_key else None
        return dg.TableSchema(columns=cols, constraints=constraints)

    # --- data dictionary -------------------------------------------------------------------

    def dictionary_rows(self, types: Sequence[tuple[str, int, str]]) -> tuple[list[dict], list[str]]:
        """Data dictionary rows of a built table from its (column_name, ordinal_position,
        data_type) as the database reports them, described by this declaration; second item:
        problems (a column built but not declared, or declared but not built)."""
        declared = {f.name: f for f in self.fields()}
        actual = [c for c, _, _ in types]
        problems = []
        if actual != list(declared):
            problems.append(f"{self.name}: columns {actual} differ from the declaration in "
                            f"radar_pipeline/metadata {list(declared)}")
        rows = []
        for column, position, data_type in types:
            f = declared.get(column)
            rows.append({"table_name": self.name, "table_description": self.description,
                         "ordinal_position": int(position), "column_name": column, "data_type": data_type,
                         "nullable": bool(f.nullable) if f else True,
                         "description": (f.description if f else None) or ""})
        return rows, problems


def _pandera_checks(f: Field) -> list:
    import pandera.polars as pa
    import polars as pl

    checks = []
    if f.regex:
        checks.append(pa.Check.str_matches(f.regex))
    if f.isin is not None:
        checks.append(pa.Check.isin(f.isin))
    if f.range:
        checks.append(pa.Check.in_range(*f.range))
    if f.ge is not None:
        checks.append(pa.Check.ge(f.ge))
    if f.finite:
        checks.append(pa.Check(lambda d: d.lazyframe.select(pl.col(d.key).is_finite()),
                               error=f"{f.name} must be finite"))
    return checks


def ddl_script(tables: Iterable[Table], *, keys: bool = True, comments: bool = False) -> str:
    """The DDL of several tables, in order (a view after the tables it reads)."""
    return "\n".join(t.ddl(keys=keys, comments=comments) for t in tables)
