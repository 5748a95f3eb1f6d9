"""Keep Dagster's API-maturity warnings away from users.

The project uses a few Dagster APIs marked beta/preview (BackfillPolicy, map_asset_specs,
...) on purpose, pinned to one Dagster release; the warnings say nothing a `radar` user
or a UI user can act on. Called by the CLI entry point and by the definitions module (so
the code server, run workers and `dagster dev` are quiet too). Cheap: it imports only
dagster_shared's warnings module, not dagster.
"""
from __future__ import annotations

import warnings

# ExperimentalWarning: the name older Dagster releases used for what is now BetaWarning/PreviewWarning
CATEGORIES = ("PreviewWarning", "BetaWarning", "ExperimentalWarning")


def silence_dagster_maturity_warnings() -> None:
    try:
        from dagster_shared.utils import warnings as dagster_warnings
    except ImportError:  # pragma: no cover - dagster always brings dagster_shared
        return
    for name in CATEGORIES:
        category = getattr(dagster_warnings, name, None)
        if category is not None:
            warnings.filterwarnings("ignore", category=category)
