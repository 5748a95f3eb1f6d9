"""Peak memory of `store.ingest` (intake + store) on a hostile file and on a 1M-site file, and of
reading the three side files (issue 22 item 3: <= 300 MiB for 100 MB files).

    python bench/bench_ingest_memory.py [--hostile-mb 50] [--sites 1000000] [--side-mb 100]
    python bench/bench_ingest_memory.py --side-only --side-mb 100     # the side files alone

Target (issue 11): peak RSS <= 2 GiB for any input. Two files, built once in
$RADAR_BENCH_CACHE:

* hostile (~50 MB, SYNTHETIC): lines over the 1 MiB cap, ~1 MB lines of `"controls":[0,0,...]`
  (over the per-site size cap), thousands of ~1 KB lines each breaking a rule 400 times,
  lone surrogates, 1e400, 5000-deep nesting, 40 unknown keys, plus valid sites between them;
* N generated sites (`radar_pipeline.sites.generate`, SYNTHETIC).

Side files (SYNTHETIC, --side-mb each): an overrides CSV (sites.overrides.read_overrides), a
user indicator CSV (sources.adapters.user.parse as a refresh of edition 2024 calls it: every row
validated, the edition's window kept; 3-letter codes x registry indicators x years, values in
range) and a buyer list CSV (the streamed reader; with --buyers-load also publish.buyers.load
into a new warehouse file), a few bad rows in each (too many fields, bad values, repeats), which
are quarantined.
Each is read in its own child process (`--side-worker`), twice: the second read shows the
unchanged-content cache (only the hash is computed). Overrides and user files are then read by
a second child process, as the next Dagster run does: from the parse cache the first one wrote
(platform/parse_cache.py; RADAR_CACHE is a folder of the bench's, emptied at the start).

Each ingest runs in its own child process (bench/bench_intake.py), so each figure is that
process's own ru_maxrss.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

GOOD = {"site_id": None, "site_name": "Plant", "country": "BGD", "isic": "1410",
        "saq": {"workers_total": 120, "migrant_pct": 12.5, "worker_representation": "committee"},
        "controls": ["ppe_enforced"],
        "audits": [{"nc_id": "NC-1", "severity": "major", "status": "open", "raised_on": "2024-03-02"}]}


def hostile_file(path: Path, target_mb: int) -> Path:
    if path.exists():
        return path
    rng = random.Random(11)
    target = target_mb << 20
    size = 0
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        def put(line: str) -> None:
            nonlocal size, n
            fh.write(line + "\n")
            size += len(line.encode("utf-8")) + 1
            n += 1

        def good() -> None:
            put(json.dumps({**GOOD, "site_id": f"OK-{n}"}))

        for i in range(8):  # over the 1 MiB line cap: rejected unparsed
            put(f'{{"site_id": "BIG-{i}", "controls": [{",".join("0" * ((1 << 20) // 2 + 10))}]}}')
        for i in range(16):  # just under the cap, ~500k list elements: over the per-site size cap
            put(f'{{"site_id": "LIST-{i}", "controls": [{",".join("0" * 520_000)}]}}')
        kinds = [
            lambda i: json.dumps({**GOOD, "site_id": f"MANY-{i}", "controls": [0] * 400}),
            lambda i: json.dumps({**GOOD, "site_id": f"SUR-{i}", "site_name": "x\ud800"}),
            lambda i: json.dumps({**GOOD, "site_id": f"INF-{i}"}).replace('"workers_total": 120',
                                                                          '"workers_total": 1e400'),
            lambda i: f'{{"site_id": "DEEP-{i}", "saq": {"[" * 5000}{"]" * 5000}}}',
            lambda i: json.dumps({**GOOD, "site_id": f"KEYS-{i}", **{f"k{j}": j for j in range(40)}}),
            lambda i: json.dumps({**GOOD, "site_id": f"AUD-{i}", "audits": [{"nc_id": 1}] * 300}),
        ]
        while size < target:
            if rng.random() < 0.3:
                good()
            else:
                put(rng.choice(kinds)(n))
    return path


def sites_file(path: Path, n: int) -> Path:
    if path.exists():
        return path
    wh = C.sample_warehouse(2024)
    subprocess.run([C.PYTHON, "-m", "radar_pipeline.cli", "sites", "generate", "--n", str(n), "--out", str(path),
                    "--warehouse", str(wh)], check=True, cwd=C.REPO)
    return path


def side_file(kind: str, path: Path, target_mb: int) -> Path:
    """A synthetic side file of about `target_mb` MB (built once)."""
    if path.exists():
        return path
    target = target_mb << 20
    rng = random.Random(22)
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        if kind == "overrides":
            fh.write("site_id,category,reason,author,created_on,expires_on\n")
            cats = ["Low", "Medium", "High", "Severe"]  # Severe: a rejected row now and then
            i = 0
            while fh.tell() < target:
                block = [f"S-{i + j:08d},{cats[rng.randrange(4) if (i + j) % 997 == 0 else (i + j) % 3]},"
                         f"agreed at the supplier review {i + j} (audit follow-up),analyst{(i + j) % 50},"
                         f"2026-0{1 + (i + j) % 9}-1{(i + j) % 10},{'' if (i + j) % 2 else '2099-12-31'}"
                         f"{',extra' if (i + j) % 99_991 == 7 else ''}\n"  # now and then too many fields
                         for j in range(10_000)]
                fh.write("".join(block))
                i += 10_000
        elif kind == "user":
            sys.path.insert(0, str(C.REPO))
            from radar_pipeline.sources.toolkit import load_indicator_specs

            specs = {}
            for s in load_indicator_specs():  # one value inside each indicator's plausible range
                lo = float(s.valid_min) if getattr(s, "valid_min", "") else 0.0
                hi = float(s.valid_max) if getattr(s, "valid_max", "") else lo + 100
                specs.setdefault(s.indicator_id, (lo + hi) / 2)
            ids = sorted(specs)
            fh.write("iso3,indicator_id,year,value\n")
            letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            codes = [a + b + c for a in letters for b in letters for c in letters]
            year = 1900
            while fh.tell() < target:
                fh.write("".join(f"{code},{ind},{year},{specs[ind]:.3f}\n" for code in codes for ind in ids))
                # bad rows, quarantined: a repeat, not a number, a bad year, too many fields
                fh.write(f"AAA,{ids[0]},{year},1\nAAB,{ids[0]},{year},abc\nAAC,{ids[0]},19x,1\n"
                         f"AAD,{ids[0]},{year},1,extra\n")
                year += 1
        else:
            fh.write("buyer_id,site_id\n")
            i = 0
            while fh.tell() < target:
                fh.write("".join(f"buyer-{(i + j) % 40},S-{i + j:08d}\n" if (i + j) % 5000
                                 else "bad id!,S-1\n" if (i + j) % 100_000 else "buyer-1,S-1,extra\n"
                                 for j in range(10_000)))
                i += 10_000
    tmp.rename(path)
    return path


def side_worker(kind: str, path: Path, load: bool = False) -> None:
    """Read one side file twice in this process; print JSON with seconds, rows and peak RSS.
    Buyers with `load`: `buyers.load` into a new warehouse file, then again as a new process
    would (only the hash recorded in side_input_loads), instead of the reader alone."""
    import time

    sys.path.insert(0, str(C.REPO))
    folder = path.parent
    out: dict = {"kind": kind}
    for attempt in ("first", "again"):
        t = time.perf_counter()
        if kind == "overrides":
            from radar_pipeline.sites.overrides import read_overrides

            r = read_overrides(folder)
            rows, bad = r.valid.height, r.rejects.height
        elif kind == "user":
            from radar_pipeline.sources.adapters import user
            from radar_pipeline.sources.registry import max_ages
            from radar_pipeline.sources.toolkit import LandedFile

            # as a refresh reads it (registry.parse_all): validated whole, the 2024 window kept
            files = [LandedFile("user", "2024", path)]
            obs = user.parse(files, [], edition=2024, max_ages=max_ages())
            rows, bad = obs.height, user.quarantined(files).height
        else:
            from radar_pipeline.publish import buyers

            if not load:  # the reader alone: every block checked, nothing kept
                files: list[str] = []
                counts = [(r.height, j.height) for r, j in buyers._folder_blocks(folder, files)]
                rows, bad = sum(c[0] for c in counts), sum(c[1] for c in counts)
            elif attempt == "first":  # buyers.load as the buyer_sites asset runs it, into a new warehouse
                import duckdb

                from radar_pipeline.platform.warehouse import ensure_schema

                db = C.CACHE / "side_buyers.duckdb"
                db.unlink(missing_ok=True)
                con = duckdb.connect(str(db))
                ensure_schema(con)  # its imports (pandas, pyarrow: DuckDB's) are in any warehouse process
                t = time.perf_counter()
                r = buyers.load(con, folder)
                rows, bad = r.n_rows, r.rejects.height
            else:  # as the next process (a new Dagster run) sees it: only the hash recorded in the warehouse
                buyers._LOADED.clear()
                assert buyers.load(con, folder).n_rows == rows
                out["peak_rss_mib"] = round(C.peak_rss_mib())
                # checked after the peak is taken (an unbounded query): one row per pair
                out["distinct_pairs"] = con.sql("select count(*) from (select distinct buyer_id, site_id "
                                                "from buyer_sites)").fetchall()[0][0]
                con.close()
        out[f"{attempt}_s"] = round(time.perf_counter() - t, 2)
    out.update(rows=rows, rejects=bad, peak_rss_mib=out.get("peak_rss_mib", round(C.peak_rss_mib())))
    print(json.dumps(out))


PARSE_CACHE = C.CACHE / "side-parse-cache"


def run_side(kind: str, path: Path, load: bool = False) -> dict:
    import os

    proc = subprocess.run([C.PYTHON, str(Path(__file__).resolve()), "--side-worker", kind, str(path),
                           *(["--buyers-load"] if load else [])],
                          capture_output=True, text=True, cwd=C.REPO,
                          env={**os.environ, "RADAR_CACHE": str(PARSE_CACHE)})
    if proc.returncode:
        raise SystemExit(f"reading {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")))


def run(path: Path) -> dict:
    proc = subprocess.run([C.PYTHON, str(C.REPO / "bench" / "bench_intake.py"), str(path)],
                          capture_output=True, text=True, cwd=C.REPO)
    if proc.returncode:
        raise SystemExit(f"ingest of {path} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{"))
    return json.loads(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostile-mb", type=int, default=50)
    ap.add_argument("--sites", type=int, default=1_000_000)
    ap.add_argument("--side-mb", type=int, default=100)
    ap.add_argument("--side-only", action="store_true")
    ap.add_argument("--buyers-load", action="store_true",
                    help="also time buyers.load into a new warehouse file (the load as the buyer_sites asset runs it)")
    ap.add_argument("--side-kinds", nargs="+", default=["overrides", "user", "buyers"],
                    choices=["overrides", "user", "buyers"], help="which side files to measure")
    ap.add_argument("--side-worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side_worker:
        return side_worker(args.side_worker[0], Path(args.side_worker[1]), args.buyers_load)
    C.CACHE.mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.rmtree(PARSE_CACHE, ignore_errors=True)  # the first child parses; the next one reads its cache
    side = []
    for kind in args.side_kinds:
        # one file per folder (readers take folders); v2: with lines of too many fields
        folder = C.CACHE / f"side_{kind}_{args.side_mb}mb_v2"
        folder.mkdir(exist_ok=True)
        path = side_file(kind, folder / f"{kind}.csv", args.side_mb)
        side.append((kind, path, run_side(kind, path)))
        if kind in ("overrides", "user"):  # the next process (a new Dagster run): the parse cache
            side.append((f"{kind}, next process", path, run_side(kind, path)))
        if kind == "buyers" and args.buyers_load:  # the load in a process of its own
            side.append(("buyers.load", path, run_side(kind, path, True)))
    print(f"\nmachine: {C.machine()}")
    print("| side file | size | rows read / rejects | first read s | unchanged re-read s | peak RSS MiB | <= 300 MiB |")
    print("|---|---|---|---|---|---|---|")
    for kind, path, r in side:
        kept = f" ({r['distinct_pairs']} distinct pairs)" if "distinct_pairs" in r else ""
        print(f"| {kind} | {path.stat().st_size / 2**20:.0f} MiB | {r['rows']}{kept} / {r['rejects']} | "
              f"{r['first_s']} | {r['again_s']} | {r['peak_rss_mib']} | "
              f"{'yes' if r['peak_rss_mib'] <= 300 else 'NO'} |")
    if args.side_only:
        return
    rows = []
    hostile = hostile_file(C.CACHE / f"hostile_{args.hostile_mb}mb.jsonl", args.hostile_mb)
    rows.append(("hostile", hostile, run(hostile)))
    generated = sites_file(C.CACHE / f"sites_{args.sites}.jsonl", args.sites)
    rows.append(("generated", generated, run(generated)))
    print(f"\nmachine: {C.machine()}")
    print("| file | size | lines valid / rejected | reject rows | ingest s | peak RSS MiB | <= 2 GiB |")
    print("|---|---|---|---|---|---|---|")
    for name, path, r in rows:
        valid = r["new"] + r["changed"] + r["unchanged"]
        print(f"| {name} {path.name} | {path.stat().st_size / 2**20:.0f} MiB | {valid} / {r['rejected']} | "
              f"{r['rows'].get('site_rejects')} | {r['ingest_s']} | {r['peak_rss_mib']} | "
              f"{'yes' if r['peak_rss_mib'] <= 2048 else 'NO'} |")


if __name__ == "__main__":
    main()
