-- Warehouse tables that are not declared in radar_pipeline/metadata yet. Every other table is
-- declared there once (columns, types, descriptions, constraints, primary key) and created
-- from that declaration by radar_pipeline/platform/warehouse.py before this file runs
-- (`python -m radar_pipeline.metadata` prints that DDL).

-- site_saq (one row per site, one typed column per question of rules/saq_fields.csv) is created
-- from that CSV by radar_pipeline/metadata/saq_table.py (ensure), which also converts the long
-- table of earlier versions.
