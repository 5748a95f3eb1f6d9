"""One declaration per table (after PUDL's metadata/fields + metadata/resources).

  fields.py     columns several tables share: name, DuckDB type, description, constraints
  warehouse.py  the warehouse tables (WAREHOUSE): columns, primary key, description
  published.py  the published BI tables (PUBLISHED)
  classes.py    Field, Table and the generators: DDL, pandera schema, Dagster column
                schema, data dictionary rows
  saq_table.py  site_saq, whose columns come from rules/saq_fields.csv (its own DDL and
                migration for now; a Table with `columns=` a function can take it over)

`python -m radar_pipeline.metadata` prints the warehouse DDL generated from the declarations.
"""
from __future__ import annotations

from radar_pipeline.metadata.classes import Field, Table, ddl_script
from radar_pipeline.metadata.published import PUBLISHED
from radar_pipeline.metadata.warehouse import WAREHOUSE

__all__ = ["PUBLISHED", "WAREHOUSE", "Field", "Table", "ddl_script", "warehouse_ddl"]


def warehouse_ddl(*, keys: bool = True, comments: bool = False) -> str:
    """CREATE ... IF NOT EXISTS for every declared warehouse table and view, in order."""
    return ddl_script(WAREHOUSE.values(), keys=keys, comments=comments)
