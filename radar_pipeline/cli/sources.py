"""`radar sources check [--live]`: download (to a temp folder), sniff and parse every catalogue entry."""
from __future__ import annotations

import argparse
from pathlib import Path

from radar_pipeline.platform import settings
from radar_pipeline.sources.check import run_check


def cmd_check(args: argparse.Namespace) -> int:
    mirror = None
    if not args.live:
        mirror = Path(args.mirror) if args.mirror else settings.sources_mirror() or settings.SAMPLE_MIRROR_DIR
    user_dir = settings.user_files_dir()
    results = run_check(live=args.live, mirror=Path(mirror) if mirror else None,
                        user_dir=user_dir if user_dir.is_dir() else None,
                        sources=args.source or None, timeout=args.timeout, retries=args.retries)
    return 1 if any(r.status == "FAIL" for r in results) else 0


def register(sub) -> None:
    p = sub.add_parser("sources", help="publisher sources: `radar sources check [--live]`")
    ssub = p.add_subparsers(dest="sources_command", required=True)
    c = ssub.add_parser("check", help="download (to a temp folder), sniff and parse every catalogue entry; "
                                      "one line per source file. Offline unless --live")
    c.add_argument("--live", action="store_true", help="reach the publishers' live URLs")
    c.add_argument("--mirror", help="offline: mirror folder (default $RADAR_SOURCES_MIRROR, else the "
                                    "packaged synthetic sample)")
    c.add_argument("--source", action="append", help="only this source (repeatable)")
    c.add_argument("--timeout", type=float, default=60.0, help="read timeout per request, seconds")
    c.add_argument("--retries", type=int, default=2, help="retries per request (backoff between)")
    c.set_defaults(func=cmd_check)
