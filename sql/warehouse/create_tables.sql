-- Warehouse tables that are not declared in radar_pipeline/metadata yet. Every other table is
-- declared there once (columns, types, descriptions, constraints, primary key) and created
-- from that declaration by radar_pipeline/warehouse.py before this file runs
-- (`python -m radar_pipeline.metadata` prints that DDL).

create table if not exists site_saq (
    site_id varchar not null,
    field varchar not null,
    value_num double,
    value_bool boolean,
    value_text varchar
);
