"""The shared toolkit every adapter builds on: the typed contract (`contract`), table reading
(`tables`), downloads and mirrors (`fetch`) and curated country ratings (`curated`).

The contract's names are re-exported here; adapters import them from `radar_pipeline.sources.toolkit`.
"""
from radar_pipeline.platform.lazy import lazy_attributes
from radar_pipeline.sources.toolkit.contract import (
    Adapter,
    DownloadsItself,
    FlagsAggregates,
    IndicatorSpec,
    LandedFile,
    ListsSummary,
    ObservationAdapter,
    SourceError,
    check_content,
    conform,
    empty_observations,
    load_indicator_specs,
    raw_observation_schema,
    specs_for,
)

__all__ = [
    "RAW_OBSERVATION_SCHEMA", "Adapter", "DownloadsItself", "FlagsAggregates", "IndicatorSpec", "LandedFile",
    "ListsSummary", "ObservationAdapter", "SourceError", "check_content", "conform", "empty_observations",
    "load_indicator_specs", "specs_for",
]

# RAW_OBSERVATION_SCHEMA (polars dtypes): built on first use, see contract.py
__getattr__ = lazy_attributes(__name__, RAW_OBSERVATION_SCHEMA=raw_observation_schema)
