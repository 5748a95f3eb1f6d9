"""Environment-driven settings. Every path a user can change is read here, once."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # radar_pipeline/
REPO_DIR = PACKAGE_DIR.parent
# Where a wheel carries the project's top-level runtime files (setup.py copies them there).
PACKAGED_PROJECT_DIR = PACKAGE_DIR / "_project"


def project_path(name: str) -> Path:
    """A runtime file or folder kept at the repository's top level (`sql`, `dagster.yaml`,
    `dagster-postgres.yaml`, `workspace.yaml`). The one locator for them: an installed wheel
    has them under radar_pipeline/_project/ (copied by setup.py's build hook, the checkout keeps
    its layout); a checkout or editable install reads them in place."""
    packaged = PACKAGED_PROJECT_DIR / name
    return packaged if packaged.exists() else REPO_DIR / name


SQL_DIR = project_path("sql")
RULES_DIR = PACKAGE_DIR / "rules"  # the packaged rule tables; read them through rules_dir()


def rules_dir() -> Path:
    """Folder of the rule tables (CSV). RADAR_RULES_DIR points at an edited copy (a what-if
    run, a client's own weights); read at call time so a run follows the environment it is
    started in. The methodology version (radar_pipeline/rules/fingerprint.py) hashes this folder."""
    value = os.environ.get("RADAR_RULES_DIR")
    return Path(value) if value else RULES_DIR


def overrides_dir() -> Path:
    """Folder of analyst category overrides (*.csv, METHODOLOGY §8b); `radar override` appends to it."""
    return Path(os.environ.get("RADAR_OVERRIDES", "data/overrides"))
SAMPLE_MIRROR_DIR = PACKAGE_DIR / "sample_mirror"


# A mirror may declare itself a small world in <mirror>/mirror.toml ([coverage]
# min_countries_cap): the synthetic sample describes 30 countries, so no indicator in it could
# reach the coverage rule's real thresholds (min_countries 100, METHODOLOGY §2). Runs on such a
# mirror (or a copy of it) apply the cap, and say so (indicator_coverage.min_countries, the run
# metadata). A real mirror has no such file.
MIRROR_SETTINGS = "mirror.toml"


def min_countries_cap() -> int | None:
    """A cap on every indicator's min_countries for this run: RADAR_MIN_COUNTRIES_CAP, else the
    mirror's own declaration (MIRROR_SETTINGS), else none."""
    import tomllib

    value = os.environ.get("RADAR_MIN_COUNTRIES_CAP")
    source = "RADAR_MIN_COUNTRIES_CAP"
    if not value:
        mirror = sources_mirror()
        path = mirror / MIRROR_SETTINGS if mirror is not None else None
        if path is None or not path.is_file():
            return None
        try:
            value = str(tomllib.loads(path.read_text(encoding="utf-8")).get("coverage", {})
                        .get("min_countries_cap", ""))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from exc
        if not value:
            return None
        source = f"{path} [coverage] min_countries_cap"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{source} = {value!r}: must be a whole number >= 1")
    return int(value)


def pictures_dir() -> Path:
    """Folder the pictures are drawn into (RADAR_PICTURES), served to the UI by the code server."""
    return Path(os.environ.get("RADAR_PICTURES", "data/pictures"))


def warehouse_path() -> Path:
    return Path(os.environ.get("RADAR_WAREHOUSE", "data/radar.duckdb"))


_SIZE_UNITS = {"b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def memory_limit() -> str:
    """DuckDB memory_limit for the pipeline's own in-memory work connections (publish, `radar
    score`, the buyer load). DuckDB's default is 80 % of RAM, and a publish of 1M sites took 16.8
    GiB of it as buffer cache; with a limit it spills to disk instead (RADAR_MEMORY_LIMIT, e.g.
    "4GB"). Checked here, the one reader: a value DuckDB would not take is a ValueError naming it."""
    value = os.environ.get("RADAR_MEMORY_LIMIT", "1GB").strip()
    memory_limit_bytes(value)
    return value


def memory_limit_bytes(value: str | None = None) -> int:
    """RADAR_MEMORY_LIMIT (or `value`) in bytes, read as DuckDB reads it (KB = 1000, KiB = 1024)."""
    import re

    text = memory_limit() if value is None else value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b|bytes)\s*", text, re.IGNORECASE)  # a unit, as DuckDB wants
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"RADAR_MEMORY_LIMIT {text!r} is not a size such as 1GB or 512MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def published_path() -> Path:
    """The BI-facing snapshot file (read-only for BI tools; replaced atomically by `publish`)."""
    return Path(os.environ.get("RADAR_PUBLISHED", "data/published/radar.duckdb"))


def buyers_inbox() -> Path:
    """Folder of buyer -> site lists (*.csv / *.jsonl with buyer_id, site_id)."""
    return Path(os.environ.get("RADAR_BUYERS_INBOX", "data/buyers"))


def landing_dir() -> Path:
    return Path(os.environ.get("RADAR_LANDING", "data/landing"))


def sources_mirror() -> Path | None:
    value = os.environ.get("RADAR_SOURCES_MIRROR")
    return Path(value) if value else None


def user_files_dir() -> Path:
    """Folder of user-supplied files: ITUC curated CSV, licensed indicators (long format)."""
    return Path(os.environ.get("RADAR_USER_FILES", "data/user"))


def sources_catalogue() -> Path:
    """Download catalogue (source, vintage, file, url). Override to point at a test server."""
    value = os.environ.get("RADAR_SOURCES_CATALOGUE")
    return Path(value) if value else rules_dir() / "sources.csv"


def worldbank_api_base() -> str:
    return os.environ.get("RADAR_WORLDBANK_API", "https://api.worldbank.org/v2")
