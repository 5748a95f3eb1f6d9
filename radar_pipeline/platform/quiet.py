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



# For processes started from here (`radar ui` -> dagster dev -> webserver, daemon, code
# server), which read PYTHONWARNINGS at start. It cannot name Dagster's warning classes
# (interpreters parse it before site-packages are importable), so it matches message starts.
# The code server is quiet through definitions.py; this is `dagster dev`'s own "use dg dev",
# which `radar ui` runs on the user's behalf.
CHILD_FILTERS = ("ignore:Function `dev_command` is superseded",)


def quiet_child_processes() -> None:
    import os

    current = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join([*([current] if current else []), *CHILD_FILTERS])
