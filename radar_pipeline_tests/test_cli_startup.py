"""Start-up behaviour users rely on (timings are in bench/bench_startup.py, not here):
`radar --help` imports none of the heavy libraries, every command stays reachable, and
Dagster's beta/preview warnings never reach a user."""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

from radar_pipeline import cli

HEAVY = ("dagster", "pandas", "pandera", "matplotlib", "polars", "duckdb", "pyarrow")
MATURITY_WARNINGS = ("BetaWarning", "PreviewWarning", "ExperimentalWarning")


def python(code: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def loaded_after(code: str) -> tuple[list[str], str]:
    out = python(code + f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_help_imports_no_heavy_library():
    loaded, _ = loaded_after("from radar_pipeline.cli import main\ntry:\n    main(['--help'])\n"
                             "except SystemExit:\n    pass")
    assert loaded == []


def test_every_command_is_listed_and_parses():
    """A command a module registers but LAZY_COMMANDS does not list would be missing from `radar --help`."""
    registered = argparse.ArgumentParser().add_subparsers()
    for module in dict.fromkeys(m for m, _ in cli.LAZY_COMMANDS.values()):
        importlib.import_module(module).register(registered)
    assert set(registered.choices) == set(cli.LAZY_COMMANDS)
    # each lazily registered command gets its real parser when named
    for name in cli.LAZY_COMMANDS:
        try:
            cli.main([name, "--help"])
        except SystemExit as stop:
            assert stop.code == 0


def test_definitions_load_without_matplotlib_or_maturity_warnings():
    loaded, stderr = loaded_after("import radar_pipeline.definitions")
    assert "dagster" in loaded and "matplotlib" not in loaded
    assert not [w for w in MATURITY_WARNINGS if w in stderr], stderr[-2000:]
