"""Run configuration a user edits in the Dagster launchpad, with defaults from the environment
and the settings file (radar.toml).

Precedence for every default: environment variable > settings file > built-in default.
The settings file is RADAR_SETTINGS, else ./radar.toml (the repository root when `radar ui`,
`dagster dev` or `dg dev` are started there); it also holds the annual schedule's date.

Why the run settings ride on the `warehouse` resource: every asset already requires it, so the
launchpad shows the fields for any selection (asset graph, backfill, job) under
`resources.warehouse.config`, without each asset declaring one more resource. The source
adapters and `publish` read their paths from the environment (radar_pipeline/platform/settings.py), so
the resource applies its fields to the run's environment for the duration of the run and
restores it afterwards (daemon runs each have their own process; in-process runs get it back).
"""
from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from radar_pipeline.platform import settings
from radar_pipeline.platform.warehouse import DuckDBWarehouse
from radar_pipeline.rules.methodology import TOPICS

SOURCES = ("live", "mirror", "sample")
# Where a failure hint sends a UI user (the launchpad's config editor path of each field).
UI_FIELD = "resources.warehouse.config.{}"
# Run tag read by Dagster's run retries (dagster.yaml run_retries) when the run fails.
MAX_RETRIES_TAG = "dagster/max_retries"


class RunSettingsError(ValueError):
    """A run setting that cannot work (launchpad `resources.warehouse.config`, radar.toml, the
    environment): the run fails once, with this message as its failure (RunSettingsFailure)."""


class RunSettingsFailure(dg.DagsterResourceFunctionError):
    """How a RunSettingsError leaves the warehouse resource. Dagster wraps anything else raised
    there as "Error executing resource_fn on ResourceDefinition warehouse", which became the
    run's failure headline with the project's message only as its cause; an error of Dagster's
    own resource-failure class passes its boundary as it is, so the failure shown is the
    project's message, for a run in one process and for a step in its own process alike.
    The run is tagged dagster/max_retries 0 first: dagster.yaml retries a failed run (for a
    worker that died), and the same settings would fail the same way again."""


def settings_file() -> Path:
    value = os.environ.get("RADAR_SETTINGS")
    return Path(value) if value else Path("radar.toml")


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def file_settings() -> dict[str, Any]:
    """The settings file as a dict ({} when there is none). A malformed file fails with its path."""
    path = settings_file()
    if not path.is_file():
        return {}
    try:
        return _read(str(path.resolve()), path.stat().st_mtime_ns)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc


def setting(section: str, key: str, default):
    return file_settings().get(section, {}).get(key, default)


def first_edition() -> int:
    """First edition offered (partition set). 2022: the first edition every topic has data for in
    the packaged sample (older ones fail on missing topics); lower it in radar.toml when a mirror
    or the live sources cover earlier years."""
    return int(os.environ.get("RADAR_FIRST_EDITION") or setting("editions", "first", 2022))


def annual_refresh_date() -> tuple[int, int, int]:
    """(month, day, hour) of the annual refresh of the current edition. Default 1 April 06:00:
    after the main publishers' spring releases (CPI February, FSI/FIW/ITUC by March)."""
    month_day = str(os.environ.get("RADAR_ANNUAL_REFRESH") or setting("schedule", "annual_refresh", "04-01"))
    try:
        month, day = (int(p) for p in month_day.split("-"))
        if not (1 <= month <= 12 and 1 <= day <= 28):
            raise ValueError
    except ValueError:
        raise ValueError(f"{settings_file()}: [schedule] annual_refresh must be MM-DD with a day "
                         f"1-28 (every year has it), got {month_day!r}") from None
    return month, day, int(setting("schedule", "hour", 6))


def default_source() -> tuple[str, str]:
    """(source, mirror path) from the environment, else the settings file, else live."""
    mirror = os.environ.get("RADAR_SOURCES_MIRROR")
    if mirror:
        same = Path(mirror).resolve() == settings.SAMPLE_MIRROR_DIR.resolve()
        return ("sample", "") if same else ("mirror", mirror)
    return str(setting("sources", "source", "live")), str(setting("sources", "mirror", ""))


class RadarWarehouse(DuckDBWarehouse):
    """The warehouse file plus the run's settings (editable per run in the launchpad)."""

    source: str = Field(default="live", description="Where publisher files come from: 'live' (download "
                        "from the publishers), 'mirror' (a folder <source>/<vintage>/<file>, see "
                        "mirror_path) or 'sample' (the packaged synthetic sample; offline demo). "
                        "CLI: --sample / --mirror.")
    mirror_path: str = Field(default="", description="Folder of publisher files when source = 'mirror' "
                             "(RADAR_SOURCES_MIRROR). CLI: --mirror.")
    allow_missing_topics: list[str] = Field(default=[], description="Topics that may have no data in "
                                            "the edition (left out of every mean). CLI: "
                                            "--allow-missing-topics.")
    published_path: str = Field(default="data/published/radar.duckdb", description="The BI snapshot "
                                "file publish writes (RADAR_PUBLISHED); Parquet and buyer files go beside it.")
    keep_snapshots: int = Field(default=2, description="Parquet snapshots kept per scope "
                                "(RADAR_KEEP_SNAPSHOTS).")

    def run_environment(self) -> dict[str, str | None]:
        """The environment this run's settings mean (None = variable unset)."""
        if self.source not in SOURCES:
            raise RunSettingsError(f"{UI_FIELD.format('source')} = {self.source!r}: must be one of {SOURCES}")
        if self.source == "mirror":
            if not self.mirror_path or not Path(self.mirror_path).is_dir():
                raise RunSettingsError(f"{UI_FIELD.format('mirror_path')} = {self.mirror_path!r} is not a folder; "
                                       "set it to the mirror folder (CLI: --mirror DIR) or choose source 'sample'")
            mirror: str | None = str(Path(self.mirror_path).resolve())
        else:
            mirror = str(settings.SAMPLE_MIRROR_DIR) if self.source == "sample" else None
        unknown = unknown_topics(self.allow_missing_topics)
        if unknown:
            raise RunSettingsError(f"{UI_FIELD.format('allow_missing_topics')} names unknown topics {unknown}; "
                                   f"topics are {list(TOPICS)}")
        return {"RADAR_SOURCES_MIRROR": mirror, "RADAR_PUBLISHED": self.published_path,
                "RADAR_KEEP_SNAPSHOTS": str(self.keep_snapshots),
                "RADAR_ALLOW_MISSING_TOPICS": ",".join(self.allow_missing_topics) or None}

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[RadarWarehouse]:
        try:
            env = self.run_environment()
        except RunSettingsError as exc:
            no_run_retry(context)
            raise RunSettingsFailure(str(exc), user_exception=exc, original_exc_info=sys.exc_info()) from None
        if context.log:
            mirror = f" ({self.mirror_path})" if self.source == "mirror" else ""
            context.log.info(f"run settings: source={self.source}{mirror}, allow_missing_topics="
                             f"{self.allow_missing_topics or 'none'}, publish to {self.published_path}")
        with environment(env), super().yield_for_execution(context) as resource:  # DuckDBWarehouse's too
            yield resource


def _apply(env: dict[str, str | None]) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def default_warehouse() -> RadarWarehouse:
    """The Definitions' warehouse resource: defaults from the environment and radar.toml."""
    source, mirror = default_source()
    allowed = os.environ.get("RADAR_ALLOW_MISSING_TOPICS")
    return RadarWarehouse(
        database=str(settings.warehouse_path()), source=source, mirror_path=mirror,
        allow_missing_topics=[t.strip() for t in allowed.split(",") if t.strip()] if allowed is not None
        else list(setting("sources", "allow_missing_topics", [])),
        published_path=os.environ.get("RADAR_PUBLISHED") or str(setting("publish", "target",
                                                                       str(settings.published_path()))),
        keep_snapshots=int(os.environ.get("RADAR_KEEP_SNAPSHOTS") or setting("publish", "keep_snapshots", 2)))


def instance_yaml(source: Path | None = None, home: Path | None = None) -> str:
    """dagster.yaml for a DAGSTER_HOME of its own (`home`; default: whatever $DAGSTER_HOME is
    when the instance loads): the project's file with its storage folder set to that home and
    without `local_artifact_storage`. The project's file pins the
    storage to data/dagster_home for `dagster dev` / `dg dev` in the repository root; a copy
    keeping that would store every other instance (a test's, a bench's) in the working
    directory's data/dagster_home instead of its own home. The storage class is kept (the
    batching sqlite storage, radar_pipeline/platform/instance_storage.py)."""
    import yaml

    source = source or settings.project_path("dagster.yaml")
    config = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    config.pop("local_artifact_storage", None)
    custom = (config.get("storage") or {}).get("custom")
    if custom and isinstance(custom.get("config"), dict) and "base_dir" in custom["config"]:
        custom["config"]["base_dir"] = str(Path(home).resolve()) if home else {"env": "DAGSTER_HOME"}
    elif (config.get("storage") or {}).get("sqlite"):
        config.pop("storage")  # Dagster's default: sqlite under DAGSTER_HOME
    return yaml.safe_dump(config, sort_keys=False)


def no_run_retry(context: dg.InitResourceContext | dg.AssetExecutionContext) -> None:
    """Tag the context's run so that dagster.yaml's run retries do not re-run it: for failures
    of the run's settings, which the same settings would repeat (two failed runs per bad launch)."""
    run = context.run
    if context.instance is not None and run is not None:
        context.instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})


def unknown_topics(topics: list[str]) -> list[str]:
    return sorted(set(topics) - set(TOPICS))


@contextmanager
def environment(env: dict[str, str | None]) -> Iterator[None]:
    """These environment variables (None = unset) for the duration of the block."""
    saved = {k: os.environ.get(k) for k in env}
    _apply(env)
    try:
        yield
    finally:
        _apply(saved)


def allowed_missing_topics() -> list[str]:
    """Topics the current run allows to be missing (set by RadarWarehouse or the CLI)."""
    return [t.strip() for t in os.environ.get("RADAR_ALLOW_MISSING_TOPICS", "").split(",") if t.strip()]
