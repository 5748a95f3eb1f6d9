"""Peak memory of `store.ingest` (intake + store) on a hostile file and on a 1M-site file.

    python bench/bench_ingest_memory.py [--hostile-mb 50] [--sites 1000000]

Target (issue 11): peak RSS <= 2 GiB for any input. Two files, built once in
$RADAR_BENCH_CACHE:

* hostile (~50 MB, SYNTHETIC): lines over the 1 MiB cap, ~1 MB lines of `"controls":[0,0,...]`
  (over the per-site size cap), thousands of ~1 KB lines each breaking a rule 400 times,
  lone surrogates, 1e400, 5000-deep nesting, 40 unknown keys, plus valid sites between them;
* N generated sites (`radar_pipeline.sites.generate`, SYNTHETIC).

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
    args = ap.parse_args()
    C.CACHE.mkdir(parents=True, exist_ok=True)
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
