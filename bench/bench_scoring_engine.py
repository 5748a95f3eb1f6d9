"""The site scoring engine alone (sql/sites/*.sql via radar_pipeline.sites.scoring.score_sites)
vs a straightforward per-site Python loop implementing the same METHODOLOGY §6-§8 rules.

    python bench/bench_scoring_engine.py --n 100000 1000000

Per N, each step in its own child process (so peak RSS is that step's own):
  1. prepare: generate N SYNTHETIC sites (generate_sites) -> JSON Lines -> store.ingest into a
     fresh DuckDB file holding the sample warehouse's reference tables (countries, isic,
     inherent_risk_overall of edition 2024). Generation, file write and ingest are timed
     separately; none of them is part of the scoring figure.
  2. score: scoring.load_rules + scoring.score_sites(con, 2024, None, version) over all N
     sites, --runs times (default 3): median wall seconds, peak RSS of the process.
  3. loop: the per-site Python loop (written below, independent of the SQL: its own band
     logic, hand-written from METHODOLOGY §6-§8) on a SAMPLE of --sample sites (default
     20 000), timed and extrapolated linearly to N; its final scores are compared with the
     engine's for the same sample (must be identical: final_score, category, adjustment).
Target: 1M sites scored in <= 10 s with <= 2 GiB peak RSS (2 cores).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

EDITION = 2024


def engine_db(n: int) -> Path:
    return C.CACHE / f"engine_{n}.duckdb"


# --------------------------------------------------------------------------- prepare

INGEST_MAX = 1_000_000  # chunked intake: 1M sites in ~45 s under 1.6 GiB; beyond, replicate


def worker_replicate(n: int) -> None:
    """Sites beyond INGEST_MAX: replicate the ingested INGEST_MAX-site database k times with
    suffixed site_ids (the intake's per-line validation of 1M lines would need ~30 GiB)."""
    import duckdb

    base = engine_db(INGEST_MAX)
    path = engine_db(n)
    tmp = path.with_suffix(".building.duckdb")
    C.copy_warehouse(base, tmp)
    k = -(-n // INGEST_MAX)
    out: dict = {"copies": k}
    con = duckdb.connect(str(tmp))
    with C.timer(out, "replicate_s"):
        con.execute("create temp table rep as select r from range(1, $k) t(r)", {"k": k})
        sfx = "s.site_id || '-r' || rep.r"
        for table in ("site_saq", "site_controls", "site_nonconformities"):
            cols = [r[0] for r in con.sql(f"select column_name from information_schema.columns "
                                          f"where table_name = '{table}' and column_name <> 'site_id'").fetchall()]
            con.execute(f"insert into {table} (site_id, {', '.join(cols)}) select {sfx}, "
                        f"{', '.join('s.' + c for c in cols)} from {table} s cross join rep")
        cols = [r[0] for r in con.sql("select column_name from information_schema.columns "
                                      "where table_name = 'sites' and column_name <> 'site_id'").fetchall()]
        con.execute(f"insert into sites (site_id, {', '.join(cols)}) select {sfx}, "
                    f"{', '.join('s.' + c for c in cols)} from sites s cross join rep")
        out["sites"] = con.sql("select count(*) from sites").fetchall()[0][0]
    con.close()
    tmp.rename(path)
    out["peak_rss_mib"] = C.peak_rss_mib()
    C.emit(out)


def worker_prepare(n: int) -> None:
    if n > INGEST_MAX:  # guard: never run the intake on more lines than fits in memory
        return worker_replicate(n)
    import duckdb

    from radar_pipeline.platform.warehouse import ensure_schema
    from radar_pipeline.sites import store
    from radar_pipeline.sites.generate import generate_sites, write_sites

    src = C.sample_warehouse(EDITION)
    path = engine_db(n)
    tmp = path.with_suffix(".building.duckdb")
    tmp.unlink(missing_ok=True)
    out: dict = {}
    con = duckdb.connect(str(tmp))
    ensure_schema(con)
    con.execute(f"attach '{src}' as wh (read_only)")
    for table in ("edition_countries", "isic"):
        con.execute(f"insert into {table} select * from wh.{table}")
    con.execute(f"insert into inherent_risk_overall select * from wh.inherent_risk_overall where edition = {EDITION}")
    con.execute("detach wh")
    countries, classes = C.reference_lists(con)
    with C.timer(out, "generate_s"):
        df = generate_sites(n, 1, countries, classes)
    jsonl = C.CACHE / f"engine_{n}.jsonl"
    with C.timer(out, "write_jsonl_s"):
        write_sites(df, jsonl)
    del df
    out["jsonl_mib"] = jsonl.stat().st_size / 2**20
    cpu = time.process_time()
    with C.timer(out, "ingest_s"):
        summary = store.ingest(con, jsonl)
    out["ingest_cpu_s"] = time.process_time() - cpu  # all threads: the figure a shared machine keeps
    out["ingested"] = len(summary.to_score)
    out["rejected"] = summary.rejected
    con.close()
    jsonl.unlink()
    tmp.rename(path)
    out["peak_rss_mib"] = C.peak_rss_mib()
    C.emit(out)


# --------------------------------------------------------------------------- engine

def worker_score(n: int, runs: int) -> None:
    import duckdb

    from radar_pipeline.rules import fingerprint
    from radar_pipeline.sites import scoring

    con = duckdb.connect(str(engine_db(n)))
    times, cpus, rows = [], [], 0
    for _ in range(runs):
        t, cpu = time.perf_counter(), time.process_time()
        scoring.load_rules(con, temp=True)
        scores = scoring.score_sites(con, EDITION, None, fingerprint.version("site"))
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - cpu)
        rows = scores.height
        del scores
    con.close()
    C.emit({"score_s": times, "score_cpu_s": cpus, "rows": rows, "peak_rss_mib": C.peak_rss_mib()})


def worker_store(n: int) -> None:
    """store.score_and_store: what the Dagster asset does (scores + explanation rows, written)."""
    import duckdb

    from radar_pipeline.sites import store

    con = duckdb.connect(str(engine_db(n)))
    t = time.perf_counter()
    store.score_and_store(con, EDITION, None)
    took = time.perf_counter() - t
    factors = con.sql(f"select count(*) from site_score_factors where edition = {EDITION}").fetchall()[0][0]
    con.close()
    C.emit({"store_s": took, "factor_rows": factors, "peak_rss_mib": C.peak_rss_mib()})


# --------------------------------------------------------------------------- the Python loop

POINTS = {"none": 0, "minor": 1, "moderate": 2, "high": 4, "critical": 7}


def _band(x, bands):
    """bands: list of (test, level) tried in order."""
    for test, level in bands:
        if test(x):
            return level
    return "none"


def _ratio_level(w, d):
    if d > 0:
        r = round(w / d, 9)
        return "none" if r <= 1.5 else "minor" if r <= 3 else "moderate"
    return "none" if w < 30 else "moderate"


# factor -> (field, denominator field or None, answer -> level), hand-written from METHODOLOGY §6
FACTORS = {
    "workers_on_site": ("workers_total", None, lambda v: _band(v, [
        (lambda x: x < 50, "none"), (lambda x: x < 250, "minor"), (lambda x: x < 1000, "moderate"),
        (lambda x: True, "high")])),
    "labour_intensive_processes": ("labour_intensive", None, lambda v: "moderate" if v else "none"),
    "not_social_legal_form": ("social_legal_form", None, lambda v: "none" if v else "minor"),
    "community_impact": ("community_impact", None, lambda v: "high" if v else "none"),
    "prison_labour": ("prison_labour", None, lambda v: "critical" if v else "none"),
    "labour_providers": ("labour_providers", None, lambda v: "moderate" if v else "none"),
    "temp_seasonal_guest_programmes": ("temp_seasonal_guest_programmes", None, lambda v: "high" if v else "none"),
    "migrant_workers_pct": ("migrant_pct", None, lambda v: _band(v, [
        (lambda x: x == 0, "none"), (lambda x: 0 < x <= 10, "minor"), (lambda x: 10 < x <= 30, "moderate"),
        (lambda x: x > 30, "high")])),
    "multi_tier_recruitment": ("multi_tier_recruitment", None, lambda v: "high" if v else "none"),
    "low_skilled_migrants": ("low_skilled_migrants", None, lambda v: "high" if v else "none"),
    "migrants_from_high_risk_countries": ("migrants_from_high_risk_countries", None,
                                          lambda v: "critical" if v else "none"),
    "worker_representation": ("worker_representation", None,
                              lambda v: {"union": "none", "committee": "minor", "none": "moderate"}.get(v, "none")),
    "industrial_action_2y": ("industrial_action_2y", None, lambda v: "moderate" if v else "none"),
    "children_in_accommodation": ("children_in_accommodation", None, lambda v: "high" if v else "none"),
    "apprentices_pct": ("apprentice_pct", None, lambda v: _band(v, [
        (lambda x: 0 <= x <= 5, "none"), (lambda x: 5 < x <= 15, "minor"), (lambda x: x > 15, "moderate")])),
    "workers_under_15": ("workers_under_15", None, lambda v: "critical" if v else "none"),
    "piece_rate": ("piece_rate", None, lambda v: "moderate" if v else "none"),
    "pay_in_kind_pct": ("pay_in_kind_pct", None, lambda v: _band(v, [
        (lambda x: x == 0, "none"), (lambda x: 0 < x <= 30, "minor"), (lambda x: x > 30, "moderate")])),
    "permanent_workers_pct": ("permanent_pct", None, lambda v: _band(v, [
        (lambda x: x >= 95, "none"), (lambda x: x >= 80, "minor"), (lambda x: x >= 50, "moderate"),
        (lambda x: True, "high")])),
    "women_managers_ratio": ("women_workers_pct", "women_managers_pct", _ratio_level),
    "women_supervisors_ratio": ("women_workers_pct", "women_supervisors_pct", _ratio_level),
    "subcontracts_production": ("subcontracts_production", None, lambda v: "moderate" if v else "none"),
    "informal_workers": ("informal_workers", None, lambda v: "high" if v else "none"),
    "heavy_machinery": ("heavy_machinery", None, lambda v: "moderate" if v else "none"),
    "hazardous_materials": ("hazardous_materials", None, lambda v: "moderate" if v else "none"),
    "provides_accommodation": ("provides_accommodation", None, lambda v: "minor" if v else "none"),
    "young_workers_pct": ("young_workers_pct", None, lambda v: _band(v, [
        (lambda x: 0 <= x <= 15, "none"), (lambda x: 15 < x <= 30, "minor"), (lambda x: x > 30, "moderate")])),
    "regular_hours_over_48": ("regular_hours_over_48", None, lambda v: "high" if v else "none"),
    "total_hours_over_60": ("total_hours_over_60", None, lambda v: "critical" if v else "none"),
}
MAX_LEVEL = {"workers_on_site": "high", "labour_intensive_processes": "moderate", "not_social_legal_form": "minor",
             "community_impact": "high", "prison_labour": "critical", "labour_providers": "moderate",
             "temp_seasonal_guest_programmes": "high", "migrant_workers_pct": "high",
             "multi_tier_recruitment": "high", "low_skilled_migrants": "high",
             "migrants_from_high_risk_countries": "critical", "worker_representation": "moderate",
             "industrial_action_2y": "moderate", "children_in_accommodation": "high", "apprentices_pct": "moderate",
             "workers_under_15": "critical", "piece_rate": "moderate", "pay_in_kind_pct": "moderate",
             "permanent_workers_pct": "high", "women_managers_ratio": "moderate",
             "women_supervisors_ratio": "moderate", "subcontracts_production": "moderate",
             "informal_workers": "high", "heavy_machinery": "moderate", "hazardous_materials": "moderate",
             "provides_accommodation": "minor", "young_workers_pct": "moderate", "regular_hours_over_48": "high",
             "total_hours_over_60": "critical"}
TOTAL_AVAILABLE = sum(POINTS[lv] for lv in MAX_LEVEL.values())


def round1(x: float) -> float:
    """Half up to one decimal, via 9 decimals first (as the SQL's decimal(18, 9) cast)."""
    d = Decimal(x).quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP)
    return float(d.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def score_one(site: dict, answers: dict, claimed: set, open_ncs: list, inherent: float | None,
              catalogue: list) -> dict:
    has_saq = bool(answers)
    raw = 0
    for field, denom, rule in FACTORS.values():
        v = answers.get(field)
        if denom is not None:
            d = answers.get(denom)
            if v is None or d is None:
                continue
            raw += POINTS[rule(v, d)]
        elif v is not None:
            raw += POINTS[rule(v)]
    chars = 1 + 9 * min(1.0, raw / (0.45 * TOTAL_AVAILABLE)) if has_saq else None
    achieved = available = 0.0
    for control_id, points, field, test, value in catalogue:
        if field:  # §7: the SAQ answer must pass the control's condition; unanswered = left out
            answer = answers.get(field)
            if answer is None:
                continue
            text = str(answer).lower() if isinstance(answer, bool) else str(answer)
            if (text == value) != (test == "is"):
                continue
        available += points
        if control_id in claimed:
            achieved += points
    mc = 5 * achieved / available if available > 0 else None
    mcr = round1(mc) if mc is not None else None
    crit = sum(1 for sev in open_ncs if sev in ("business_critical", "critical"))
    major = sum(1 for sev in open_ncs if sev == "major")
    if inherent is None:
        return {"final_score": None, "category": None, "adjustment": "none"}
    base = inherent if not has_saq else (inherent + chars) / 2
    if crit == 0 and major < 6 and mcr is not None and mcr >= 4.0:
        adj, value = "reduction_0.75", base * 0.75
    elif crit == 0 and major < 6 and mcr is not None and mcr >= 3.0:
        adj, value = "reduction_0.90", base * 0.90
    elif (crit > 0 or major >= 6) and base < 6.0:
        adj, value = "floor_6.0", 6.0
    else:
        adj, value = "none", base
    final = round1(value)
    category = "Low" if final < 4.0 else "Medium" if final < 6.0 else "High"
    return {"final_score": final, "category": category, "adjustment": adj}


def load_sample(con, sample_ids: list[str]):
    """The sample's inputs as plain Python structures (what a per-site loop would read)."""
    import polars as pl

    from radar_pipeline.sites.scoring import read_controls

    con.register("_sample", pl.DataFrame({"site_id": sample_ids}))
    sites = {r[0]: {"iso3": r[1], "isic_code": r[2], "isic_level": r[3]} for r in con.sql(
        "select site_id, iso3, isic_code, isic_level from sites join _sample using (site_id)").fetchall()}
    answers: dict[str, dict] = {s: {} for s in sites}
    # site_saq: one row per site, one column per question (null = unanswered)
    saq = con.sql("select * from site_saq join _sample using (site_id)").pl()
    for row in saq.iter_rows(named=True):
        answers[row["site_id"]] = {k: v for k, v in row.items() if k != "site_id" and v is not None}
    # a site with a site_saq row "has a SAQ" (same as the SQL)
    saq_sites = set(saq["site_id"].to_list())
    claimed: dict[str, set] = {s: set() for s in sites}
    for sid, cid in con.sql("select site_id, control_id from site_controls join _sample using (site_id)").fetchall():
        claimed[sid].add(cid)
    ncs: dict[str, list] = {s: [] for s in sites}
    for sid, sev in con.sql("select site_id, severity from site_nonconformities join _sample using (site_id) "
                            "where status = 'open'").fetchall():
        ncs[sid].append(sev)
    inherent = {(r[0], r[1]): r[2] for r in con.sql(
        f"select iso3, isic_class, score from inherent_risk_overall where edition = {EDITION}").fetchall()}
    classes = con.sql("select code, section, division, grp from isic where level = 'class'").fetchall()
    con.unregister("_sample")
    catalogue = [(r["control_id"], float(r["points"]), r["applies_when_field"], r["applies_when_test"],
                  r["applies_when_value"]) for r in read_controls().iter_rows(named=True)]
    return sites, answers, saq_sites, claimed, ncs, inherent, classes, catalogue


def site_inherent(site, inherent, classes):
    level, code, iso3 = site["isic_level"], site["isic_code"], site["iso3"]
    if level == "class":
        return inherent.get((iso3, code))
    col = {"section": 1, "division": 2, "group": 3}[level]
    vals = [inherent[(iso3, c[0])] for c in classes if c[col] == code and (iso3, c[0]) in inherent]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def worker_loop(n: int, sample: int) -> None:
    import duckdb

    from radar_pipeline.rules import fingerprint
    from radar_pipeline.sites import scoring

    con = duckdb.connect(str(engine_db(n)))
    ids = [r[0] for r in con.sql(f"select site_id from sites using sample reservoir({sample} rows) "
                                 "repeatable (7)").fetchall()]
    out: dict = {"sample": len(ids)}
    with C.timer(out, "load_s"):
        sites, answers, saq_sites, claimed, ncs, inherent, classes, catalogue = load_sample(con, ids)
    results = {}
    with C.timer(out, "loop_s"):
        for sid, site in sites.items():
            ans = answers[sid] if sid in saq_sites else {}
            results[sid] = score_one(site, ans, claimed[sid], ncs[sid], site_inherent(site, inherent, classes),
                                     catalogue)
    # the engine over the same sample (scope = the sample; each site is scored independently)
    scoring.load_rules(con, temp=True)
    eng = scoring.score_sites(con, EDITION, ids, fingerprint.version("site"))
    mism = []
    for row in eng.select("site_id", "final_score", "category", "adjustment").iter_rows(named=True):
        py = results[row["site_id"]]
        if (py["final_score"], py["category"], py["adjustment"]) != (row["final_score"], row["category"],
                                                                     row["adjustment"]):
            mism.append((row["site_id"], row, py))
    out.update(compared=eng.height, mismatches=len(mism), examples=[str(m) for m in mism[:3]],
               peak_rss_mib=C.peak_rss_mib())
    con.close()
    C.emit(out)


# --------------------------------------------------------------------------- driver

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        mode, n = sys.argv[2], int(sys.argv[3])
        if mode == "prepare":
            return worker_prepare(n)
        if mode == "replicate":
            return worker_replicate(n)
        if mode == "store":
            return worker_store(n)
        if mode == "score":
            return worker_score(n, int(sys.argv[4]))
        return worker_loop(n, int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--store-max", type=int, default=100_000,
                    help="also time store.score_and_store (scores + explanation rows written) for N <= this")
    ap.add_argument("--fresh", action="store_true", help="regenerate and re-ingest even if cached")
    args = ap.parse_args()
    print(f"machine: {C.machine()}; load average (1/5/15 min) {os.getloadavg()}", flush=True)
    C.sample_warehouse(EDITION)
    table = []
    for n in args.n:
        if args.fresh:
            engine_db(n).unlink(missing_ok=True)
        if not engine_db(n).exists() and n > INGEST_MAX:
            if not engine_db(INGEST_MAX).exists():
                C.run_worker(Path(__file__), ["prepare", str(INGEST_MAX)])
            p = C.run_worker(Path(__file__), ["replicate", str(n)])
            print(f"n={n:>8}  built by replicating the ingested {INGEST_MAX} sites x{p['copies']} (suffixed ids; "
                  f"the JSONL intake of {n} lines would need ~{n / INGEST_MAX * 3.4:.0f} GiB): "
                  f"{p['replicate_s']:.1f}s, {p['sites']} sites", flush=True)
        elif not engine_db(n).exists():
            p = C.run_worker(Path(__file__), ["prepare", str(n)])
            print(f"n={n:>8}  generate {p['generate_s']:.1f}s  write JSONL {p['write_jsonl_s']:.1f}s "
                  f"({p['jsonl_mib']:.0f} MiB)  ingest {p['ingest_s']:.1f}s, {p['ingest_cpu_s']:.1f}s CPU "
                  f"({p['ingest_s'] / n * 1e6:.1f} us/site, "
                  f"{p['ingested']} stored, {p['rejected']} rejected)  peak RSS {p['peak_rss_mib']:.0f} MiB",
                  flush=True)
        else:
            print(f"n={n:>8}  (cached {engine_db(n)}; use --fresh to re-time generation/ingest)", flush=True)
        s = C.run_worker(Path(__file__), ["score", str(n), str(args.runs)])
        med = C.median(s["score_s"])
        print(f"n={n:>8}  ENGINE score_sites: median {med:.2f}s of {len(s['score_s'])} "
              f"[{', '.join(f'{t:.2f}' for t in s['score_s'])}], CPU (all threads) "
              f"[{', '.join(f'{t:.2f}' for t in s['score_cpu_s'])}]  {med / n * 1e6:.2f} us/site  "
              f"{s['rows']} rows  peak RSS {s['peak_rss_mib']:.0f} MiB", flush=True)
        if n <= args.store_max:
            st = C.run_worker(Path(__file__), ["store", str(n)])
            print(f"n={n:>8}  score_and_store (scores + {st['factor_rows']} explanation rows written, as the "
                  f"Dagster asset does): {st['store_s']:.2f}s  peak RSS {st['peak_rss_mib']:.0f} MiB", flush=True)
        lp = C.run_worker(Path(__file__), ["loop", str(n), str(min(args.sample, n))])
        est = lp["loop_s"] * n / lp["sample"]
        print(f"n={n:>8}  PYTHON LOOP on a sample of {lp['sample']}: {lp['loop_s']:.2f}s "
              f"(+{lp['load_s']:.2f}s reading its inputs) -> extrapolated x{n / lp['sample']:.0f}: {est:.1f}s; "
              f"engine is {est / med:.1f}x faster (loop time only)  | identical final scores: "
              f"{lp['compared'] - lp['mismatches']}/{lp['compared']}"
              + (f"  MISMATCHES e.g. {lp['examples']}" if lp["mismatches"] else ""), flush=True)
        table.append((n, med, s["peak_rss_mib"], est, lp["mismatches"], lp["compared"]))
    print(f"\nload average at the end (1/5/15 min) {os.getloadavg()}")
    print("sites | engine median s | engine peak RSS MiB | Python loop est. s | ratio | mismatches")
    for n, med, rss, est, mm, cmp_ in table:
        print(f"{n} | {med:.2f} | {rss:.0f} | {est:.1f} | {est / med:.1f}x | {mm}/{cmp_}")


if __name__ == "__main__":
    main()
