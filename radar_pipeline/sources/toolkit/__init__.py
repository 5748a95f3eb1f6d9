"""The shared toolkit every adapter builds on: the typed contract (`contract`), table reading
(`tables`), downloads and mirrors (`fetch`) and curated country ratings (`curated`).

The contract's names are re-exported here; adapters import them from `radar_pipeline.sources.toolkit`.
"""
from radar_pipeline.sources.toolkit.contract import (
    RAW_OBSERVATION_SCHEMA,
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
    specs_for,
)

__all__ = [
    "RAW_OBSERVATION_SCHEMA", "Adapter", "DownloadsItself", "FlagsAggregates", "IndicatorSpec", "LandedFile",
    "ListsSummary", "ObservationAdapter", "SourceError", "check_content", "conform", "empty_observations",
    "load_indicator_specs", "specs_for",
]
