"""Print the warehouse DDL generated from radar_pipeline/metadata (for review; the pipeline
creates the tables from the declarations at connect time)."""
from radar_pipeline.metadata import warehouse_ddl

print(warehouse_ddl(comments=True))
