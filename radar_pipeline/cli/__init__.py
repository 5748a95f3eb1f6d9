"""`radar` — the command line for people who don't live in the Dagster UI.

Every command runs the same Dagster assets the UI shows, on a persistent
instance under DAGSTER_HOME (default data/dagster_home), so runs from the CLI
appear in the UI's history.

This package is the top floor: the argparse commands (here, `sites.py`, `sources.py`) and the
in-process job runners (`runs.py`). It imports downward only; nothing in the domain packages
imports it (radar_pipeline_tests/test_layers.py). This module stays light: `radar --help` must
not import dagster, polars or duckdb (bench/bench_startup.py), so commands import on use.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from radar_pipeline.platform import settings

_GENERATED = "# Written by radar from the project's dagster.yaml; radar rewrites it when that file changes. " \
             "Delete this line to keep your own edits.\n"


def dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or Path("data/dagster_home").resolve())
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    source = settings.project_path("dagster.yaml")
    if source.exists():
        # the instance stores under this DAGSTER_HOME, not the repo-root folder the project's
        # file names for `dagster dev` in the repo root
        from radar_pipeline.platform.run_settings import instance_yaml

        wanted = _GENERATED + instance_yaml(source, home)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current is None or (current != wanted and _written_by_radar(current, source)):
            target.write_text(wanted, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _written_by_radar(text: str, source: Path) -> bool:
    """A copy radar wrote (its first line), or one written before that line existed: the
    project's file minus `storage` and `local_artifact_storage`, as radar wrote it then."""
    if text.startswith(_GENERATED):
        return True
    import yaml

    config = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    for key in ("storage", "local_artifact_storage"):
        config.pop(key, None)
    return text == yaml.safe_dump(config, sort_keys=False)


def cmd_refresh(args: argparse.Namespace) -> int:
    if args.sample:
        os.environ["RADAR_SOURCES_MIRROR"] = str(settings.SAMPLE_MIRROR_DIR)
        print(f"Using the packaged SAMPLE mirror (synthetic values): {settings.SAMPLE_MIRROR_DIR}")
    elif args.mirror:
        os.environ["RADAR_SOURCES_MIRROR"] = str(Path(args.mirror).resolve())
    if args.warehouse:
        os.environ["RADAR_WAREHOUSE"] = args.warehouse
    dagster_home()
    from radar_pipeline.platform.partitions import editions

    offered = editions.get_partition_keys()
    if str(args.edition) not in offered:  # one line, not Dagster's unknown-partition traceback
        print(f"edition {args.edition} is not offered: editions {offered[0]}-{offered[-1]} (the first edition "
              "the data supports: [editions] first in radar.toml or RADAR_FIRST_EDITION)", file=sys.stderr)
        return 2
    import dagster as dg

    from radar_pipeline.cli.runs import refresh_edition

    allowed = [t.strip() for t in (args.allow_missing_topics or "").split(",") if t.strip()]
    mirror = os.environ.get("RADAR_SOURCES_MIRROR")
    print(f"Refreshing edition {args.edition} from {'mirror ' + mirror if mirror else 'the live publishers'} "
          f"into {settings.warehouse_path()}")
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        outcome = refresh_edition(args.edition, allow_missing_topics=allowed, instance=instance)
        elapsed = time.perf_counter() - started
        if not outcome.success:
            for step, message in outcome.failures.items():
                print(f"FAILED {step}: {message}", file=sys.stderr)
            print(f"Refresh of edition {args.edition} failed after {elapsed:.1f}s; the warehouse keeps its "
                  "previous tables.", file=sys.stderr)
            return 1
        print(f"Edition {args.edition} refreshed in {elapsed:.1f}s -> {settings.warehouse_path()}")
        from radar_pipeline.cli.runs import (
            refresh_stale_editions,
            rescore_all,
            rescore_stale_sites,
            still_stale,
        )

        # a rule edit leaves every other edition's rows on the old rules: found by version and
        # recomputed, as the daemon's methodology_sensor does (METHODOLOGY §8c)
        problems = refresh_stale_editions(instance, warehouse=settings.warehouse_path())
        # what site_scores' automation condition does under the daemon: every registered site
        # is rescored on the latest edition, so the scores never mix editions
        if not rescore_all(instance, warehouse=settings.warehouse_path()):
            return 1
        # and the site scores of the other editions computed before their inputs or rules changed
        problems += rescore_stale_sites(instance, warehouse=settings.warehouse_path())
        left = still_stale(settings.warehouse_path())
        for line in problems + left:
            print(f"NOT CURRENT {line}", file=sys.stderr)
        if left:
            print("Some stored rows still disagree with the rules in force (above; `radar methodology --stale`); "
                  "the published edition_status table says which editions are current.", file=sys.stderr)
        if args.no_publish:
            return 0
        # as publish's automation condition does under the daemon: without `radar ui` running a BI
        # tool would otherwise never see the new edition
        from radar_pipeline.cli.runs import publish_cli

        return publish_cli(warehouse=settings.warehouse_path(), instance=instance)


DEMO_SITES_FILE = Path("data/demo/sample_sites.jsonl")


def cmd_demo(args: argparse.Namespace) -> int:
    """A newcomer's first command: something to look at, offline, in about a minute."""
    if args.warehouse:
        os.environ["RADAR_WAREHOUSE"] = args.warehouse
    sites_file = Path(args.sites_file)
    steps = [
        # the sample edition (published once, after the sites are scored)
        ["refresh", "--edition", str(args.edition), "--sample", "--no-publish"],
        ["sites", "generate", "--n", str(args.sites), "--seed", "1", "--out", str(sites_file)],
        # stores and scores them in one Dagster run, then publishes the BI snapshot
        ["sites", "ingest", str(sites_file), "--edition", str(args.edition)],
    ]
    for step in steps:
        print(f"\n$ radar {' '.join(step)}", flush=True)
        code = main(step)
        if code:
            print(f"radar demo stopped: `radar {' '.join(step)}` exited {code}", file=sys.stderr)
            return code
    import json

    from radar_pipeline.cli.runs import open_hint

    with open(sites_file, encoding="utf-8") as fh:
        site_id = json.loads(fh.readline())["site_id"]
    published = settings.published_path()
    print(f"""
Demo ready (all values SYNTHETIC):
  warehouse     {settings.warehouse_path()}   (edition {args.edition}, {args.sites} sample sites scored)
  BI snapshot   {published}   (+ {published.parent / 'parquet'}/*.parquet)

Look at it:
  radar explain {site_id}             # why this site got its score
{open_hint(published)}
  radar ui                             # the Dagster UI on http://127.0.0.1:3000 (assets, runs, pictures)""")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    if args.warehouse:
        os.environ["RADAR_WAREHOUSE"] = args.warehouse
    existing_warehouse(settings.warehouse_path())  # publish never creates one
    dagster_home()
    import dagster as dg

    from radar_pipeline.cli.runs import publish_cli

    with dg.DagsterInstance.get() as instance:
        return publish_cli(warehouse=settings.warehouse_path(), instance=instance)


def cmd_methodology(args: argparse.Namespace) -> int:
    from radar_pipeline.rules import fingerprint

    if not args.stale:
        print(fingerprint.describe())
        return 0
    # the rows a rule edit left behind, per table and edition (METHODOLOGY §8c)
    from radar_pipeline.platform.warehouse import connect, exists
    from radar_pipeline.rules import staleness

    path = Path(args.warehouse) if args.warehouse else settings.warehouse_path()
    if not exists(path):
        print(f"{path}: no warehouse (run `radar refresh --edition Y` first)", file=sys.stderr)
        return 2
    con = connect(path, read_only=True)
    try:
        stale = staleness.stale_rows(con)
    finally:
        con.close()
    versions = ", ".join(f"{s} {v}" for s, v in fingerprint.versions().items())
    if stale.is_empty():
        print(f"{path}: every stored row is current (rules in force: {versions})")
        return 0
    print(f"{path}: rows that disagree with the rules in force ({versions}):")
    for line in staleness.describe(stale):
        print("  " + line)
    print("`radar refresh --edition Y` (any edition) recomputes them all; the daemon's methodology_sensor "
          "does it by itself.")
    return 1


def cmd_ui(args: argparse.Namespace) -> int:
    dagster_home()
    from radar_pipeline.platform.quiet import quiet_child_processes

    quiet_child_processes()
    # the daemon creates the runs sensors request in its own process, which never imports
    # definitions.py: it needs the code location's event settings too (see .env)
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    import subprocess

    from radar_pipeline.pictures.serve import pictures_url

    # the code server that dagster dev starts serves the pictures folder at this fixed address,
    # so the pictures' links survive restarts (pictures/serve.py)
    print(f"Pictures served at {pictures_url() or '(off: RADAR_PICTURES_URL is empty)'} "
          "(shown in the pictures assets' metadata)", flush=True)
    # -m, not workspace.yaml: the code location's working directory stays the user's
    # (relative data/ paths), wherever the package is installed
    proc = subprocess.Popen(["dagster", "dev", "-m", "radar_pipeline.definitions",
                             "-h", args.host, "-p", str(args.port)], preexec_fn=_default_sigint)

    def stop(signum, frame):
        # `kill`, systemd, a container stop: dagster dev shuts its webserver, daemon and
        # code server down on SIGINT, not on SIGTERM; without this they outlive `radar ui`
        proc.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached dagster dev too: let it shut down
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _default_sigint() -> None:
    """In the child before exec: a shell starting `radar ui &` leaves SIGINT ignored, and an
    ignored signal stays ignored across exec, so dagster dev could not be stopped with it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Commands defined in other modules: name -> (module with `register(sub)`, help line shown by
# `radar --help`). A module is imported only when the command line names one of its commands:
# they import polars, duckdb, pandera, dagster (~2 s), which `radar --help` must not pay.
# A command a module registers must be listed here (test_cli_startup checks it).
LAZY_COMMANDS = {
    "sites": ("radar_pipeline.cli.sites", "site files: generate synthetic sites, ingest a JSON Lines file"),
    "score": ("radar_pipeline.cli.sites", "score a JSON Lines file against the warehouse (writes csv/parquet only)"),
    "explain": ("radar_pipeline.cli.sites", "readable breakdown of one site's score"),
    "override": ("radar_pipeline.cli.sites", "recategorise a site with a reason (METHODOLOGY §8b); the score "
                                             "is kept, the category replaced while the override is in force"),
    "sources": ("radar_pipeline.cli.sources", "publisher sources: `radar sources check [--live]`"),
}


def _register_lazy(sub, argv: list[str]) -> None:
    import importlib

    wanted = next((a for a in argv if not a.startswith("-")), None)
    if wanted in sub.choices:
        modules = []
    elif wanted in LAZY_COMMANDS:
        modules = [LAZY_COMMANDS[wanted][0]]
    elif wanted is not None:  # not listed: load every module rather than refuse a command that exists
        modules = list(dict.fromkeys(m for m, _ in LAZY_COMMANDS.values()))
    else:
        modules = []
    for module in modules:
        importlib.import_module(module).register(sub)
    for name, (_module, help_line) in LAZY_COMMANDS.items():
        if name not in sub.choices:  # listed in `radar --help`; never parsed (named -> real parser)
            sub.add_parser(name, help=help_line, add_help=False)


class CliError(Exception):
    """A user error a command reports as one line (`radar: <message>`) with exit code `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# commands that create the warehouse they are pointed at; every other command refuses a
# --warehouse that does not exist rather than create an empty file at a mistyped path
CREATES_WAREHOUSE = ("refresh", "demo")


def existing_warehouse(target: str | os.PathLike | None) -> Path:
    """The warehouse `target` (default RADAR_WAREHOUSE / data/radar.duckdb); CliError when it is a
    file that does not exist (a DuckLake target is checked when it is opened)."""
    target = target or settings.warehouse_path()
    if not str(target).startswith("ducklake:") and not Path(target).exists():
        raise CliError(f"no warehouse at {target}: check --warehouse / RADAR_WAREHOUSE, or create it with "
                       f"`radar refresh --edition <year>`")
    return Path(target)


# the warehouse the running command uses: a DuckDB error names no file, the message adds it
_WAREHOUSE: list[str] = []


def _one_line(exc: BaseException) -> str:
    """The error as one line: its message (and notes) joined, the type named (a bare KeyError 'x'
    says little), and for a DuckDB error the warehouse it was about."""
    parts = [str(exc).strip(), *getattr(exc, "__notes__", ())]
    text = "; ".join(line.strip() for part in parts for line in str(part).splitlines() if line.strip())
    if isinstance(exc, CliError):
        return text
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    duckdb = sys.modules.get("duckdb")
    is_duckdb = duckdb is not None and isinstance(exc, duckdb.Error)
    if _WAREHOUSE and _WAREHOUSE[-1] not in text and (is_duckdb or "warehouse" in text.lower()):
        hint = " (never refreshed? `radar refresh --edition <year>`)" \
            if is_duckdb and isinstance(exc, duckdb.CatalogException) else ""
        text = f"warehouse {_WAREHOUSE[-1]}: {text}{hint}"
    return text


def console() -> int:
    """The `radar` console script (and `python -m radar_pipeline.cli`): the collector's first
    threshold raised (platform/collector.py), main(), then the process's objects frozen out of the garbage
    collector, so that exiting does not walk the ~1M objects the imports made (0.2 s on a quiet
    machine, seconds under load: bench/README.md). Not in main(): tests and `radar demo` call main()
    many times in one process, and a test process keeps Python's defaults."""
    import gc

    from radar_pipeline.platform.collector import raise_threshold

    raise_threshold()
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command. Any error is one line on stderr (`radar: ...`, exit 1; a CliError its own
    code); `--debug` (anywhere on the line) or RADAR_DEBUG=1 shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = os.environ.get("RADAR_DEBUG")
    if "--debug" in argv:  # global, wherever it is typed; nested calls (radar demo) inherit it
        argv = [a for a in argv if a != "--debug"]
        os.environ["RADAR_DEBUG"] = "1"
    debug = os.environ.get("RADAR_DEBUG") == "1"
    depth = len(_WAREHOUSE)  # `radar demo` runs commands through main() too
    try:
        return _main(argv)
    except CliError as exc:
        if debug:
            raise
        print(f"radar: {_one_line(exc)}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # a user reads one line, a developer passes --debug
        if debug:
            raise
        print(f"radar: {_one_line(exc)} (radar --debug ... shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("radar: interrupted", file=sys.stderr)
        return 130
    finally:
        del _WAREHOUSE[depth:]
        if previous is None:
            os.environ.pop("RADAR_DEBUG", None)
        else:
            os.environ["RADAR_DEBUG"] = previous


def _main(argv: list[str]) -> int:
    from radar_pipeline.platform.quiet import silence_dagster_maturity_warnings

    silence_dagster_maturity_warnings()
    parser = argparse.ArgumentParser(prog="radar", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (default: one line naming the file)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("refresh", help="materialise one edition: sources -> country risk (-> inherent risk)")
    p.add_argument("--edition", type=int, required=True, help="refresh year Y (uses data years Y-5..Y)")
    p.add_argument("--allow-missing-topics", default="",
                   help="comma list of topics that may have no data (left out of every mean)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sample", action="store_true",
                     help="use the packaged synthetic sample mirror (offline demo)")
    src.add_argument("--mirror", help="read publisher files from this folder (<source>/<vintage>/<file>)")
    p.add_argument("--warehouse", help="DuckDB file (default $RADAR_WAREHOUSE or data/radar.duckdb)")
    p.add_argument("--no-publish", action="store_true",
                   help="do not publish the BI snapshot (RADAR_PUBLISHED) after the refresh")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("demo", help="first run: refresh the sample edition, score a demo set of sample sites, "
                                    "publish the BI snapshot, print how to look at it (offline)")
    p.add_argument("--edition", type=int, default=2024)
    p.add_argument("--sites", type=int, default=500, help="how many SYNTHETIC sample sites to score")
    p.add_argument("--sites-file", default=str(DEMO_SITES_FILE), help="where the sample sites are written")
    p.add_argument("--warehouse", help="DuckDB file (default $RADAR_WAREHOUSE or data/radar.duckdb)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("publish", help="publish the BI snapshot (RADAR_PUBLISHED, + Parquet and buyer files) "
                                       "from the warehouse")
    p.add_argument("--warehouse", help="DuckDB file (default $RADAR_WAREHOUSE or data/radar.duckdb)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("methodology", help="methodology version per stage and the rule/SQL files it covers")
    p.add_argument("--stale", action="store_true",
                   help="list the warehouse rows computed with older rules (or before their inputs changed), "
                        "per table and edition; exit 1 when there are any")
    p.add_argument("--warehouse", help="warehouse file (default RADAR_WAREHOUSE or data/radar.duckdb)")
    p.set_defaults(func=cmd_methodology)

    p = sub.add_parser("ui", help="start the Dagster UI + daemon on this project")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    _register_lazy(sub, argv)
    args = parser.parse_args(argv)
    if getattr(args, "warehouse", None) and args.command not in CREATES_WAREHOUSE:
        existing_warehouse(args.warehouse)
    _WAREHOUSE.append(str(getattr(args, "warehouse", None) or settings.warehouse_path()))
    return args.func(args)
