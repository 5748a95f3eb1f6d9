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
from radar_pipeline.platform.collector import GC_THRESHOLD0

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


# Only asset bodies, checks and commands need these: every process that loads the definitions (code
# server, each run worker, the daemon, `radar`) would pay ~0.8 s for them, and ~0.4 s more for polars
# (issue 24 item 3). polars is imported inside the functions that use it, never behind a lazy-module
# proxy: a proxy would sit in sys.modules, so this plain check fails whenever polars is loaded at all.
NOT_AT_DEFINITIONS = ("matplotlib", "pandera", "pandas", "numpy", "pyarrow", "requests", "urllib3", "polars")


def test_definitions_load_without_body_only_libraries_or_maturity_warnings():
    out = python("import radar_pipeline.definitions\nimport sys, json\n"
                 f"print(json.dumps([m for m in {NOT_AT_DEFINITIONS!r} if m in sys.modules]))")
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert not [w for w in MATURITY_WARNINGS if w in out.stderr], out.stderr[-2000:]


def test_lazily_loaded_modules_work_after_the_definitions_load():
    """The modules the definitions load on first use (platform/lazy.py) are complete modules once
    touched, reachable as attributes of their package like any imported module, and bring their
    heavy library with them."""
    out = python("import sys, radar_pipeline.definitions\n"
                 "import radar_pipeline.metadata.schemas, radar_pipeline.country_risk.uncertainty\n"
                 "print(type(radar_pipeline.metadata.schemas.countries).__module__, "
                 "radar_pipeline.country_risk.uncertainty.N_DRAWS, 'pandera' in sys.modules, 'numpy' in sys.modules)")
    module, n_draws, pandera, numpy = out.stdout.split()
    assert module.startswith("pandera.") and int(n_draws) > 0 and pandera == numpy == "True"


def test_the_console_script_runs_its_command_with_the_tuned_collector_and_freezes_before_exit(monkeypatch):
    """`radar` (cli.console): the command runs with the collector's first threshold raised (a run
    in process holds millions of containers: Python's 700 meant 18 full collections in a 100k-site
    ingest) and the process's objects are frozen out of the collector before the exit walks them."""
    import gc

    seen = {}

    def command() -> int:
        seen["threshold"], seen["frozen"] = gc.get_threshold(), gc.get_freeze_count()
        return 3

    before, frozen = gc.get_threshold(), gc.get_freeze_count()  # the definitions' freeze, if loaded
    monkeypatch.setattr(cli, "main", command)
    try:
        assert cli.console() == 3
        assert seen["threshold"] == (max(before[0], GC_THRESHOLD0), *before[1:])
        # frozen after the command, not before
        assert seen["frozen"] == frozen and gc.get_freeze_count() > frozen
    finally:
        gc.set_threshold(*before)


def test_loading_the_definitions_pauses_the_collector_and_freezes_what_they_built():
    """definitions.py is built under collector.loading(): no cyclic collection while the code
    location's long-lived objects are built (two full collections, 60-75 ms, in every process that
    loads it), and they are frozen out of the later ones (run time, the process's exit)."""
    # a collection may start before the block (importing the package and collector.py allocates
    # too) or after it; none between dagster's import, which happens inside it, and `defs`
    inside = ("'dagster' in sys.modules and not hasattr(sys.modules.get('radar_pipeline.definitions'), "
              "'defs')")
    out = python("import gc, sys\nstarted = []\ngc.callbacks.append(lambda phase, info: started.append("
                 f"{inside}) if phase == 'start' else None)\nimport radar_pipeline.definitions\n"
                 "import json\nprint(json.dumps({'inside': sum(started), 'frozen': gc.get_freeze_count(), "
                 "'enabled': gc.isenabled()}))")
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["inside"] == 0 and seen["enabled"]
    assert seen["frozen"] > 100_000  # dagster's modules and the project's definitions
