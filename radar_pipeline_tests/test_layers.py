"""The package's floors import downward only (issue 14: "the CLI and job runners in one place with
no back-arrows"). Every `import` is read from the source with ast, including the ones inside
functions that the CLI and the runners use to stay light, so a lazy back-arrow is caught too.

Floors, top to bottom:
  cli      radar_pipeline.cli (argparse commands + in-process job runners)
  wiring   radar_pipeline.definitions, radar_pipeline.automation (what the daemon runs): the only
           modules at the package root
  domain   sources, country_risk, sectors, sites, publish, pictures
  base     platform (settings, warehouse, lake, partitions, ...), rules (rule tables and the code
           reading them), metadata
and inside sources/: toolkit <- adapters, reference <- registry, check.
"""
from __future__ import annotations

import ast
from pathlib import Path

import radar_pipeline

PACKAGE = Path(radar_pipeline.__file__).parent
DOMAIN = ("sources", "country_risk", "sectors", "sites", "publish", "pictures")
FLOOR = {"base": 0, "domain": 1, "wiring": 2, "cli": 3}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """radar_pipeline modules a file imports anywhere in it (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("radar_pipeline"):
                # `from radar_pipeline.cli import runs` names the submodule too
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("radar_pipeline")}
    return found


def floor(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top == "cli":
        return "cli"
    if top in ("definitions", "automation"):
        return "wiring"
    return "domain" if top in DOMAIN else "base"


def test_the_package_root_holds_only_the_wiring():
    """Issue 23 item 9: the tree shows the architecture; a new module goes into its folder."""
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "automation.py", "definitions.py"]
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"cli", *DOMAIN, "platform", "rules", "metadata", "sample_mirror"}


def modules() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_floor_above_its_own():
    graph = modules()
    assert "radar_pipeline.cli.runs" in graph and "radar_pipeline.sources.registry" in graph
    back = sorted(f"{m} ({floor(m)}) imports {d} ({floor(d)})" for m, deps in graph.items() for d in deps
                  if d in graph and FLOOR[floor(d)] > FLOOR[floor(m)])
    assert back == []


def test_domain_packages_never_import_the_cli_layer():
    """The check the issue names, spelled out: nothing under the domain packages reaches the
    commands or the job runners (they run Dagster jobs over the domain, never the reverse)."""
    graph = modules()
    domain = {m: deps for m, deps in graph.items() if floor(m) == "domain"}
    assert len(domain) > 30  # the walk really saw the packages
    offenders = {m: sorted(d for d in deps if floor(d) in ("cli", "wiring")) for m, deps in domain.items()}
    assert {m: d for m, d in offenders.items() if d} == {}


SOURCES_FLOOR = {"toolkit": 0, "reference": 1, "adapters": 2, "registry": 3, "check": 4}


def test_sources_toolkit_adapters_registry_import_downward():
    """Inside sources/: the toolkit knows no adapter, an adapter knows no registry (adapters are
    found by name, so adding one never means editing the registry)."""
    graph = modules()

    def part(module: str) -> str | None:
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "sources" and parts[2] in SOURCES_FLOOR else None

    back = sorted(f"{m} imports {d}" for m, deps in graph.items() for d in deps
                  if part(m) and part(d) and SOURCES_FLOOR[part(d)] > SOURCES_FLOOR[part(m)])
    assert back == []


def test_every_source_has_an_adapter_satisfying_the_contract():
    from radar_pipeline.sources import registry
    from radar_pipeline.sources.toolkit import Adapter, ObservationAdapter

    for source in registry.indicator_sources():
        module = registry.adapter(source)
        assert isinstance(module, ObservationAdapter) and module.SOURCE == source
    for source in ("un_m49", "unsd_isic", "worldbank_class", "eu_cahra", "ilab_list_of_goods"):
        assert isinstance(registry.adapter(source), Adapter)
    # `radar sources check` finds the lists by their `summary`, M49 (the universe) first
    assert registry.list_sources() == ("un_m49", "unsd_isic", "worldbank_class", "eu_cahra", "ilab_list_of_goods")
    assert set(registry.api_sources()) == {"worldbank_wdi", "worldbank_wgi"}
    # curated files of report-only publishers (ITUC, TIP, WEF) and licensed user data: never downloaded
    assert set(registry.user_sources()) == {"ituc", "tip", "user", "wef_ggg"}


def test_floor_rule_catches_a_back_arrow(tmp_path):
    """The walk sees a lazy import inside a function (how the old runners reached back up)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from radar_pipeline.cli.runs import score_sites\n    return score_sites\n")
    assert "radar_pipeline.cli.runs" in imports(bad)
    assert FLOOR[floor("radar_pipeline.cli.runs")] > FLOOR[floor("radar_pipeline.sites.assets")]
