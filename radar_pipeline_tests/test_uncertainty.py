"""Issue 25 item 2, "How sure": per country x topic an interval from the publishers' stated
standard errors and the imputation donors' spread (radar_pipeline/country_risk/uncertainty.py),
and per site the share of the draws in each category (sql/sites/site_uncertainty.sql).

The site shares are counted against per-site thresholds on the sorted draws, not by scoring every
draw; `test_site_shares_equal_scoring_every_draw_through_the_engine` scores every draw of a few
hundred sites through the scoring engine itself (the drawn topic scores written into
country_topic_risk, inherent risk recomputed by sql/sectors, the sites scored by scoring.py) and
compares the counts exactly."""
from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from radar_pipeline.country_risk import uncertainty as u
from radar_pipeline.platform.warehouse import connect, read_sql
from radar_pipeline.rules import rule_sql
from radar_pipeline.sites import scoring, store
from radar_pipeline.sites.generate import generate_sites, write_sites

REGISTRY = pl.DataFrame({"indicator_id": ["a", "b", "c"], "topic": ["wages", "wages", "gender"],
                         "direction": ["higher_is_riskier", "lower_is_riskier", "higher_is_riskier"],
                         "clip_min": [None, None, None], "clip_max": [None, None, 100.0]},
                        schema_overrides={"clip_min": pl.Float64, "clip_max": pl.Float64})


def _scores(values: dict[str, dict[str, float | None]], donors: dict[str, str] | None = None) -> pl.DataFrame:
    """indicator_scores rows: observed values min-max normalised as §2.2; None = imputed from
    `donors[iso3]` (the donors' mean, as §2.3)."""
    rows = []
    for ind, by_country in values.items():
        direction = REGISTRY.filter(pl.col("indicator_id") == ind)["direction"][0]
        obs = {c: v for c, v in by_country.items() if v is not None}
        lo, hi = min(obs.values()), max(obs.values())
        norm = {c: 3.5 if hi == lo else 1 + 5 * ((v - lo) if direction == "higher_is_riskier" else (hi - v)) / (hi - lo)
                for c, v in obs.items()}
        for c, v in by_country.items():
            if v is None:
                ds = donors[c].split(",")
                rows.append((ind, c, None, sum(norm[d] for d in ds) / len(ds), "region_mean", donors[c]))
            else:
                rows.append((ind, c, v, norm[c], "direct", None))
    return pl.DataFrame(rows, schema={"indicator_id": pl.String, "iso3": pl.String, "value": pl.Float64,
                                      "score": pl.Float64, "method": pl.String, "imputed_from": pl.String},
                        orient="row")


NO_SE = pl.DataFrame(schema={"indicator_id": pl.String, "iso3": pl.String, "standard_error": pl.Float64})


def test_nothing_uncertain_gives_zero_deltas_and_a_point_interval():
    scores = _scores({"a": {"AAA": 1.0, "BBB": 5.0, "CCC": 9.0}, "b": {"AAA": 3.0, "BBB": 2.0, "CCC": 1.0}})
    draws, iv = u.simulate(scores, REGISTRY, NO_SE)
    assert draws.height == 3 * u.N_DRAWS and u.N_DRAWS >= 200
    assert (draws["delta"] == 0.0).all()
    assert iv["source"].to_list() == ["none"] * 3
    assert (iv["q_low"] == 0).all() and (iv["q_high"] == 0).all() and (iv["sd"] == 0).all()


def test_a_stated_error_moves_its_country_and_through_normalisation_the_others():
    scores = _scores({"a": {"AAA": 1.0, "BBB": 5.0, "CCC": 9.0}})
    se = pl.DataFrame({"indicator_id": ["a"], "iso3": ["CCC"], "standard_error": [2.0]})
    draws, iv = u.simulate(scores, REGISTRY, se)
    src = dict(iv.select("iso3", "source").iter_rows())
    assert src == {"AAA": "normalisation", "BBB": "normalisation", "CCC": "publisher_se"}
    sd = dict(iv.select("iso3", "sd").iter_rows())
    # AAA stays the minimum (score 1) while CCC's draw stays above it: almost no spread; BBB moves
    # with the range; CCC is 6 whenever it stays the maximum (p ~ 0.98), else BBB takes 6
    assert sd["AAA"] < 0.05 and sd["BBB"] > 0.2
    # the drawn scores stay on the scale
    joined = draws.join(scores.select("iso3", "score"), on="iso3")
    assert joined.select(((pl.col("score") + pl.col("delta")).is_between(1.0, 6.0)).all()).item()


def test_an_imputed_value_is_drawn_from_its_donors():
    scores = _scores({"a": {"AAA": 1.0, "BBB": 5.0, "CCC": 9.0, "DDD": None}}, donors={"DDD": "AAA,CCC"})
    draws, iv = u.simulate(scores, REGISTRY, NO_SE)
    ddd = draws.filter(pl.col("iso3") == "DDD").join(scores.select("iso3", "score"), on="iso3")
    drawn = (ddd["score"] + ddd["delta"]).round(9).unique().sort().to_list()
    assert drawn == [1.0, 6.0]  # one donor or the other, never their mean 3.5
    assert 0.3 < ((ddd["score"] + ddd["delta"]) == 6.0).mean() < 0.7
    assert dict(iv.select("iso3", "source").iter_rows())["DDD"] == "donor_spread"


def test_same_seed_same_draws_other_seed_other_draws():
    scores = _scores({"a": {"AAA": 1.0, "BBB": 5.0, "CCC": 9.0, "DDD": None}}, donors={"DDD": "AAA,BBB,CCC"})
    se = pl.DataFrame({"indicator_id": ["a", "a"], "iso3": ["BBB", "CCC"], "standard_error": [1.0, 2.0]})
    one, _ = u.simulate(scores, REGISTRY, se, seed=5)
    again, _ = u.simulate(scores, REGISTRY, se, seed=5)
    other, _ = u.simulate(scores, REGISTRY, se, seed=6)
    assert one.equals(again)
    assert not one.equals(other)


def test_topic_delta_is_the_mean_of_its_indicators():
    scores = _scores({"a": {"AAA": 1.0, "BBB": 5.0, "CCC": 9.0}, "b": {"AAA": 3.0, "BBB": 2.0, "CCC": None}},
                     donors={"CCC": "AAA,BBB"})
    draws, _ = u.simulate(scores, REGISTRY, NO_SE, n_draws=50)
    ccc = draws.filter((pl.col("iso3") == "CCC") & (pl.col("topic") == "wages"))
    b_score = scores.filter((pl.col("indicator_id") == "b") & (pl.col("iso3") == "CCC"))["score"][0]
    # indicator a is certain, b is drawn from AAA (score 1) or BBB (6): topic delta = (donor - mean) / 2
    assert sorted({round(x, 9) for x in ccc["delta"]}) == [round((1 - b_score) / 2, 9), round((6 - b_score) / 2, 9)]


# --- the publishers' stated errors, read from the real files ------------------------------------

def test_cpi_and_wgi_standard_errors_from_the_publishers_files(shared_sources):
    from radar_pipeline.sources.adapters import ti_cpi, worldbank_wgi
    from radar_pipeline.sources.registry import specs_for
    from radar_pipeline.sources.toolkit.fetch import mirror_files

    def se(source, mod, vintage):
        files = mirror_files(shared_sources, source, mod.FILE_PATTERNS)[vintage]
        return mod.standard_errors(files, specs_for(source, vintage))

    cpi = se("ti_cpi", ti_cpi, "2023")
    dnk = cpi.filter((pl.col("code") == "DNK") & (pl.col("data_year") == 2023))
    assert dnk["indicator_id"].to_list() == ["ti_cpi_score"]
    assert dnk["value"][0] == pytest.approx(1.819265, abs=1e-6)  # CPI 2023 sheet: Denmark 90, s.e. 1.819265
    assert cpi.filter(pl.col("data_year") == 2023).height >= 170
    wgi = se("worldbank_wgi", worldbank_wgi, "2023-09")
    afg = wgi.filter((pl.col("code") == "AFG") & (pl.col("data_year") == 2022))
    assert afg["indicator_id"].to_list() == ["wgi_rule_of_law"]
    assert afg["value"][0] == pytest.approx(0.171099364757538)
    # the 2024 long workbook: the stddev column
    wgi24 = se("worldbank_wgi", worldbank_wgi, "2024-09")
    assert wgi24.filter(pl.col("data_year") == 2023).height >= 180
    assert (wgi24["value"] > 0).all() and (wgi24["value"] < 1.5).all()


def test_held_out_countries_fall_inside_the_donor_interval(shared_sources):
    """Held-out comparison on the real CPI 2023: each observed country in turn is treated as
    missing and imputed from the other countries of its TI region (the donors); its 90 %
    interval (5 %-95 % of the draws) must hold its true normalised score about 90 % of the time
    (a draw of the donors' mean alone would hold it far less often)."""
    from radar_pipeline.sources.adapters import ti_cpi
    from radar_pipeline.sources.registry import specs_for
    from radar_pipeline.sources.toolkit import tables as t
    from radar_pipeline.sources.toolkit.fetch import mirror_files

    files = mirror_files(shared_sources, "ti_cpi", ti_cpi.FILE_PATTERNS)["2023"]
    cpi = ti_cpi.parse(files, specs_for("ti_cpi", "2023")).filter(pl.col("data_year") == 2023)
    raw = t.read_sheet_raw(files[0], "CPI 2023")
    head = t.apply_header(raw, t.locate_header(raw, ["ISO3", "Region"], source="ti_cpi", file="x", where="x"))
    region = head.select(pl.col("ISO3").alias("code"), pl.col("Region").alias("region")).drop_nulls()
    obs = cpi.join(region, on="code").select(iso3="code", value="value", region="region")
    lo, hi = obs["value"].min(), obs["value"].max()
    obs = obs.with_columns(score=1 + 5 * (hi - pl.col("value")) / (hi - lo)).sort("iso3")
    inside, n = 0, 0
    for held in obs.iter_rows(named=True):
        donors = obs.filter((pl.col("region") == held["region"]) & (pl.col("iso3") != held["iso3"]))
        rows = pl.concat([
            donors.select("iso3", "value", "score", method=pl.lit("direct"), imputed_from=pl.lit(None, pl.String)),
            pl.DataFrame({"iso3": ["ZZZ"], "value": [None], "score": [donors["score"].mean()],
                          "method": ["region_mean"], "imputed_from": [",".join(donors["iso3"])]},
                         schema_overrides={"value": pl.Float64}),
        ]).with_columns(indicator_id=pl.lit("b"))
        _, iv = u.simulate(rows, REGISTRY, NO_SE)
        z = iv.filter(pl.col("iso3") == "ZZZ").row(0, named=True)
        inside += z["score"] + z["q_low"] - 1e-9 <= held["score"] <= z["score"] + z["q_high"] + 1e-9
        n += 1
    assert n >= 170
    assert 0.8 <= inside / n <= 0.98, f"{inside}/{n} held-out countries inside their 90 % interval"


# --- sites, through the engine ------------------------------------------------------------------

N_TEST_DRAWS = 12
HANDMADE = [
    # section- and division-level codes (mean over classes), capped classes (HRG uplift + weight 4:
    # cocoa in Côte d'Ivoire, garments in Bangladesh), a floored site, an overridden one
    {"site_id": "U-SEC-A", "country": "CIV", "isic": "A"},
    {"site_id": "U-DIV-14", "country": "BGD", "isic": "14"},
    {"site_id": "U-CLS-0127", "country": "CIV", "isic": "0127"},
    {"site_id": "U-CLS-1410", "country": "BGD", "isic": "1410"},
    {"site_id": "U-FLOOR", "country": "DEU", "isic": "2410",
     "audits": [{"nc_id": "N1", "severity": "critical", "raised_on": "2024-01-01", "status": "open"}]},
    {"site_id": "U-ZERO", "country": "DEU", "isic": "2410"},
    {"site_id": "U-OVERRIDE", "country": "BGD", "isic": "1410"},
]


@pytest.fixture(scope="module")
def engine(sample_edition_2024, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uncertainty")
    path = tmp / "w.duckdb"
    shutil.copy(sample_edition_2024, path)
    mp = pytest.MonkeyPatch()
    overrides = tmp / "overrides"
    overrides.mkdir()
    (overrides / "o.csv").write_text("site_id,category,reason,author,created_on,expires_on\n"
                                     "U-OVERRIDE,Low,verified on site,qa,2024-01-01,\n")
    mp.setenv("RADAR_OVERRIDES", str(overrides))
    con = connect(path)
    try:
        refreshed = con.sql("select count(*), min(n_draws), max(n_draws) from country_topic_uncertainty "
                            "where edition = 2024").fetchall()[0]
        # stress draws: deltas large enough to move categories, one country (DEU) certain
        keys = con.sql("select iso3, topic, score from country_topic_risk where edition = 2024 "
                       "order by iso3, topic").pl()
        rng = np.random.default_rng(3)
        deltas = rng.normal(0, 0.8, (keys.height, N_TEST_DRAWS))
        drawn = np.clip(keys["score"].to_numpy()[:, None] + deltas, 1.0, 6.0)
        deltas = drawn - keys["score"].to_numpy()[:, None]
        deltas[(keys["iso3"] == "DEU").to_numpy()] = 0.0
        draws = pl.DataFrame({"edition": 2024, "iso3": np.repeat(keys["iso3"].to_numpy(), N_TEST_DRAWS),
                              "topic": np.repeat(keys["topic"].to_numpy(), N_TEST_DRAWS),
                              "draw": np.tile(np.arange(N_TEST_DRAWS), keys.height), "delta": deltas.reshape(-1)},
                             schema_overrides={"edition": pl.Int32, "draw": pl.Int32})
        con.execute("delete from country_topic_draws where edition = 2024")
        con.execute("insert into country_topic_draws by name select * from draws")
        con.execute("update country_topic_uncertainty set n_draws = $n where edition = 2024", {"n": N_TEST_DRAWS})
        countries = sorted({r[0] for r in con.sql("select distinct iso3 from inherent_risk_overall").fetchall()})
        classes = [r[0] for r in con.sql("select code from isic where level = 'class' order by code").fetchall()]
        write_sites(generate_sites(300, 11, countries, classes), tmp / "sites.jsonl")
        with open(tmp / "sites.jsonl", "a") as fh:
            for s in HANDMADE:
                fh.write(json.dumps(s) + "\n")
        store.ingest(con, tmp / "sites.jsonl")
        scores = store.score_and_store(con, 2024, None)
        unc = con.sql("select * from site_uncertainty where edition = 2024 order by site_id").pl()
        brute = _brute_force(con, draws)
        again_scores = store.score_and_store(con, 2024, None)
        again = con.sql("select * from site_uncertainty where edition = 2024 order by site_id").pl()
    finally:
        con.close()
        mp.undo()
    return {"path": path, "refreshed": refreshed, "scores": scores, "unc": unc, "brute": brute, "again": again,
            "again_scores": again_scores}


def _brute_force(con, draws: pl.DataFrame) -> pl.DataFrame:
    """Every draw through the engine: country_topic_risk := reported + delta, inherent risk
    recomputed by sql/sectors, every site scored by scoring.py; rolled back after each draw."""
    rule_sql.install(con)
    out = []
    for d in range(N_TEST_DRAWS):
        con.execute("begin transaction")
        try:
            con.execute("""update country_topic_risk as r set score = r.score + x.delta
                           from (select iso3, topic, delta from country_topic_draws
                                 where edition = 2024 and draw = $d) as x
                           where r.edition = 2024 and r.iso3 = x.iso3 and r.topic = x.topic""", {"d": d})
            for name in ("inherent_risk", "inherent_risk_overall"):
                con.execute(f"create or replace temp table _new as select * from ({read_sql('sectors/' + name)})",
                            {"edition": 2024})
                con.execute(f"delete from {name} where edition = 2024")
                con.execute(f"insert into {name} by name select * from _new")
            scoring.load_rules(con, temp=True)
            s = scoring.score_sites(con, 2024, None)
            out.append(s.select("site_id", "category_calculated", "final_score", draw=pl.lit(d)))
        finally:
            con.execute("rollback")
    return pl.concat(out)


def test_refresh_stores_the_country_simulation(engine):
    n, lo, hi = engine["refreshed"]
    assert n > 0 and lo == hi == u.N_DRAWS


def test_site_shares_equal_scoring_every_draw_through_the_engine(engine):
    brute = (engine["brute"].group_by("site_id", "category_calculated").len()
             .pivot(on="category_calculated", index="site_id", values="len").fill_null(0))
    unc = engine["unc"]
    assert unc.height == engine["scores"].filter(pl.col("final_score").is_not_null()).height >= 300
    got = unc.select("site_id", *(pl.col(f"p_{c.lower()}").mul(N_TEST_DRAWS).round(6).alias(c)
                                  for c in ("Low", "Medium", "High")))
    want = brute.select("site_id", *(pl.col(c).cast(pl.Float64) if c in brute.columns
                                     else pl.lit(0.0).alias(c) for c in ("Low", "Medium", "High")))
    cmp = got.join(want, on="site_id", suffix="_brute")
    assert cmp.height == unc.height
    bad = cmp.filter((pl.col("Low") != pl.col("Low_brute")) | (pl.col("Medium") != pl.col("Medium_brute"))
                     | (pl.col("High") != pl.col("High_brute")))
    assert bad.height == 0, bad
    # the draws do move categories: the comparison is not trivially all-stable
    assert (unc["category_stability"] < 1).sum() >= 30
    assert unc.filter(pl.col("site_id").is_in(["U-SEC-A", "U-DIV-14", "U-CLS-0127", "U-CLS-1410"])).height == 4


def test_shares_sum_to_one_and_stability_is_the_calculated_categorys_share(engine):
    unc = engine["unc"]
    assert unc.select((pl.col("p_low") + pl.col("p_medium") + pl.col("p_high") - 1).abs().max()).item() < 1e-12
    own = unc.select(pl.when(pl.col("category_calculated") == "Low").then("p_low")
                     .when(pl.col("category_calculated") == "Medium").then("p_medium")
                     .otherwise("p_high") == pl.col("category_stability")).to_series()
    assert own.all()
    assert (unc["n_draws"] == N_TEST_DRAWS).all()


def test_a_site_with_no_uncertainty_has_stability_one(engine):
    unc = engine["unc"].filter(pl.col("site_id") == "U-ZERO").row(0, named=True)
    assert unc["category_stability"] == 1.0
    assert unc["inherent_low"] == unc["inherent_high"]
    # every German site: DEU's draws are all 0.0
    scores = engine["scores"]
    deu = engine["unc"].join(scores.select("site_id", "iso3"), on="site_id").filter(pl.col("iso3") == "DEU")
    assert deu.height >= 1 and (deu["category_stability"] == 1.0).all()


def test_floored_site_is_always_high_and_override_is_flagged(engine):
    unc = {r["site_id"]: r for r in engine["unc"].iter_rows(named=True)}
    assert unc["U-FLOOR"]["p_high"] == 1.0 and unc["U-FLOOR"]["category_stability"] == 1.0
    ov = unc["U-OVERRIDE"]
    assert ov["overridden"] and ov["category"] == "Low" and ov["category_calculated"] != "Low"
    # stability refers to the calculated category, not the analyst's
    assert ov["category_stability"] == ov[f"p_{ov['category_calculated'].lower()}"]
    assert not unc["U-ZERO"]["overridden"]


def test_rescoring_gives_identical_shares_and_the_score_never_changes(engine):
    cols = [c for c in engine["unc"].columns if c != "methodology_version"]
    assert engine["unc"].select(cols).equals(engine["again"].select(cols))
    assert engine["scores"].drop("scored_at", strict=False).equals(engine["again_scores"].drop("scored_at",
                                                                                              strict=False))


def test_an_edition_without_draws_says_so(engine, tmp_path):
    """A warehouse whose edition was refreshed before the simulation existed has no draws: the
    rows say n_draws 0 with null shares rather than a stability of 1."""
    path = tmp_path / "w.duckdb"
    shutil.copy(engine["path"], path)
    con = connect(path)
    try:
        con.execute("delete from country_topic_draws where edition = 2024")
        store.score_and_store(con, 2024, ["U-ZERO", "U-CLS-1410"])
        rows = con.sql("select site_id, n_draws, p_low, p_medium, p_high, category_stability from site_uncertainty "
                       "where edition = 2024 and site_id like 'U-%' order by site_id").fetchall()
    finally:
        con.close()
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id["U-ZERO"] == (0, None, None, None, None)
    assert by_id["U-CLS-1410"] == (0, None, None, None, None)
    assert by_id["U-FLOOR"][0] == N_TEST_DRAWS  # not rescored: its earlier row stays


def test_radar_explain_shows_how_sure(engine):
    from radar_pipeline.sites.explain import explain_text

    con = connect(engine["path"])
    try:
        text = explain_text(con, "U-OVERRIDE", 2024)
        zero = explain_text(con, "U-ZERO", 2024)
    finally:
        con.close()
    u = engine["unc"].filter(pl.col("site_id") == "U-OVERRIDE").row(0, named=True)
    line = next(ln for ln in text.splitlines() if ln.startswith("How sure:"))
    assert f"{u['category_calculated']} in {100 * u['category_stability']:.0f} % of {N_TEST_DRAWS} draws" in line
    assert "override" in line and "never in it" in line
    assert f"in 100 % of {N_TEST_DRAWS} draws" in next(ln for ln in zero.splitlines() if ln.startswith("How sure:"))
    # the country topic intervals beside the inherent parts
    assert "country 90 % interval (source)" in text
