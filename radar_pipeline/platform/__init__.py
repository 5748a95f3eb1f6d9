"""The machine under the domains: settings, the DuckDB warehouse and DuckLake, the Dagster
instance storage and partitions, run settings, processes, progress, safe paths, text input."""
