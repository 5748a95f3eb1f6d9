"""Environment-driven settings. Every path a user can change is read here, once."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SQL_DIR = REPO_DIR / "sql"
RULES_DIR = PACKAGE_DIR / "rules"
SAMPLE_MIRROR_DIR = PACKAGE_DIR / "sample_mirror"


def warehouse_path() -> Path:
    return Path(os.environ.get("RADAR_WAREHOUSE", "data/radar.duckdb"))


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
    return Path(value) if value else RULES_DIR / "sources.csv"


def worldbank_api_base() -> str:
    return os.environ.get("RADAR_WORLDBANK_API", "https://api.worldbank.org/v2")
