"""The one Dagster entry point (workspace.yaml, pyproject's [tool.dagster]/[tool.dg] and `radar`
all load this)."""
from __future__ import annotations

from radar_pipeline.platform import collector

# Everything below builds what lives as long as the process: no cyclic collection while it is
# built, and none of it walked by later ones (platform/collector.py, bench/README.md "Ninth session")
with collector.loading():
    from radar_pipeline.platform.quiet import silence_dagster_maturity_warnings

    silence_dagster_maturity_warnings()  # before the asset modules below raise them at definition time

    import os

    import dagster as dg

    # Each site partition costs Dagster event rows. These two (read by Dagster at write time) make a
    # scoring run write one planned event for the whole range instead of one per site, and store
    # events in batches: on the sqlite instance a 2000-site inbox -> published run took half the time
    # (bench/bench_inbox_to_published.py). Set here so every process that loads the code location
    # (daemon-launched run workers, the CLI) has them; an explicit environment value wins.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")

    from radar_pipeline import automation
    from radar_pipeline.country_risk import assets as country_risk
    from radar_pipeline.country_risk import benchmarks, coverage
    from radar_pipeline.pictures import assets as pictures
    from radar_pipeline.pictures.serve import serve_from_code_server
    from radar_pipeline.platform import run_settings
    from radar_pipeline.publish import assets as publish
    from radar_pipeline.sectors import assets as sectors
    from radar_pipeline.sites import assets as sites

    # Owner shown in the UI for every asset that does not name one itself (see map_asset_specs below).
    OWNER = "team:radar"

    reference_assets = [country_risk.countries, country_risk.indicator_registry, *sectors.reference_assets]
    edition_assets = [*country_risk.source_assets, country_risk.indicator_scores, country_risk.country_topic_risk,
                      coverage.coverage_report, benchmarks.benchmark_agreement, *sectors.edition_assets]
    asset_checks = [country_risk.country_topic_risk_complete, *sectors.checks]

    # The main job: everything an edition needs, in one run. In-process: the
    # steps share one machine and one DuckDB file, so separate processes would only
    # queue on the write lock (and pay ~2 s of imports each).
    refresh_edition_job = dg.define_asset_job(
        "refresh_edition",
        selection=dg.AssetSelection.assets(*reference_assets, *edition_assets),
        executor_def=dg.in_process_executor,
        # a retried run re-executes every step: its first step (countries) then restores the failed
        # attempt's edition before keeping its own copy (country_risk/edition_backup.py), where a
        # from-failure retry would rewrite only the failed steps on top of the restored rows
        tags={"dagster/retry_strategy": "ALL_STEPS"},
        description="Fetch (or read the mirror), parse, validate and score one methodology edition: "
                    "country risk -> sector weights, high-risk goods -> inherent risk. Sites are rescored "
                    "and the BI snapshot republished afterwards by the assets' automation conditions.",
    )


    def _spec(spec: dg.AssetSpec) -> dg.AssetSpec:
        spec = automation.with_automation(spec)
        return spec if spec.owners else spec.replace_attributes(owners=[OWNER])


    defs = dg.Definitions(
        assets=[*reference_assets, *edition_assets, sites.site_register, sites.site_scores,
                *pictures.picture_assets, *publish.assets],
        asset_checks=asset_checks,
        jobs=[refresh_edition_job, sites.score_sites_job, sites.score_and_publish_job, *publish.jobs],
        schedules=[automation.build_annual_schedule(refresh_edition_job)],
        sensors=[sites.site_inbox_sensor, sites.overrides_sensor, *publish.sensors, automation.automation_sensor,
                 automation.build_vintage_sensor(refresh_edition_job),
                 automation.build_methodology_sensor(refresh_edition_job),
                 *automation.build_refresh_outcome_sensors(refresh_edition_job)],
        # the warehouse file + the run settings (source, topics allowed missing, publish target),
        # editable per run in the launchpad under resources.warehouse.config
        resources={"warehouse": run_settings.default_warehouse()},
    ).map_asset_specs(func=_spec)

    # The pictures' inline links point at one fixed address (RADAR_PICTURES_URL), so they survive a
    # restart and work under `dagster dev` too: the code-location server process serves the folder
    # there (a no-op in every other process that loads these definitions). pictures/serve.py says why.
    serve_from_code_server(pictures.pictures_dir())
