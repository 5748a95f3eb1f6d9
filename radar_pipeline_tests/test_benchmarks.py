"""Benchmark agreement (issue 25 item 1): the rule table refuses a benchmark that is an input of the
topic it checks; Spearman rho and its seeded bootstrap interval; the warning check; the asset on the
sample edition and, with the real publisher files, the defaults' agreement for edition 2024."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from radar_pipeline.country_risk import benchmarks as bm
from radar_pipeline.platform import settings

HEADER = "benchmark_id,source,series,topic,direction,min_rho,why\n"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, folder)
    return folder


def _write(rules: Path, *rows: str) -> Path:
    path = rules / "benchmarks.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# --- the rule table --------------------------------------------------------------------------------

def test_a_benchmark_that_is_an_input_of_its_topic_is_refused(rules):
    path = _write(rules, "va,worldbank_wgi,VA.EST,freedom_of_association,negative,0.5,independent",
                  "rl,worldbank_wgi,RL.EST,forced_labour,negative,0.5,rule of law feeds forced_labour")
    with pytest.raises(bm.BenchmarkRuleError) as exc:
        bm.load_benchmarks(path)
    text = str(exc.value)
    assert str(path) in text and "line 3" in text
    assert "input of topic forced_labour" in text and "wgi_rule_of_law" in text


def test_overall_refuses_an_input_of_any_topic_and_series_match_ignores_case(rules):
    path = _write(rules, "gii,undp_gii,gii,overall,negative,0.5,the GII feeds gender")
    with pytest.raises(bm.BenchmarkRuleError, match=r"line 2: .*input of topic gender.*undp_gii"):
        bm.load_benchmarks(path)


def test_an_input_of_another_topic_may_check_a_topic(rules):
    # rule of law feeds forced_labour, not business_ethics: allowed there
    path = _write(rules, "rl,worldbank_wgi,RL.EST,business_ethics,negative,0.5,governance")
    [b] = bm.load_benchmarks(path)
    assert (b.benchmark_id, b.topic, b.sign, b.min_rho, b.line) == ("rl", "business_ethics", -1, 0.5, 2)


@pytest.mark.parametrize("row, reason", [
    ("x,worldbank_wgi,VA.EST,nowhere,negative,0.5,why", "topic 'nowhere'"),
    ("x,worldbank_wgi,VA.EST,wages,sideways,0.5,why", "direction 'sideways'"),
    ("x,worldbank_wgi,VA.EST,wages,negative,1.5,why", "outside 0..1"),
    ("x,worldbank_wgi,VA.EST,wages,negative,high,why", "not a number"),
    ("x,no_such_publisher,VA.EST,wages,negative,0.5,why", "source 'no_such_publisher'"),
    ("x,worldbank_wgi,VA.EST,wages,negative,0.5,", "why is empty"),
    ("X Y,worldbank_wgi,VA.EST,wages,negative,0.5,why", "benchmark_id"),
])
def test_bad_rows_name_file_line_and_reason(rules, row, reason):
    path = _write(rules, row)
    with pytest.raises(bm.BenchmarkRuleError, match="line 2: .*" + reason.replace("(", r"\(").replace(".", r"\.")):
        bm.load_benchmarks(path)


def test_the_shipped_defaults_load_and_check_topics_they_do_not_feed():
    rows = bm.load_benchmarks()
    assert {(b.benchmark_id, b.topic) for b in rows} >= {
        ("wgi_voice_accountability", "freedom_of_association"), ("hdr_life_expectancy", "health_safety"),
        ("hdr_gni_per_capita", "wages")}
    assert all(b.why and 0 < b.min_rho <= 1 for b in rows)


def test_every_default_has_a_real_file_and_a_sample_counterpart(shared_sources):
    from radar_pipeline.sources.reference import un_m49

    for mirror in (shared_sources, settings.SAMPLE_MIRROR_DIR):
        universe = set(un_m49.parse_universe(next((mirror / "un_m49").glob("*/*.csv")))["iso3"].to_list())
        for b in bm.load_benchmarks():
            values = bm.read_values(b, 2024, universe, mirror=mirror)
            assert values.vintage and not values.released_after_edition, (mirror, b.benchmark_id)
            assert values.values.height >= (150 if mirror == shared_sources else 20), (mirror, b.benchmark_id)


# --- the statistics ----------------------------------------------------------------------------------

def test_spearman_known_answers():
    assert bm.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)       # 1 - 6*4/(5*24)
    assert bm.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert bm.spearman([1, 2, 3, 4], [9, 7, 3, 1]) == pytest.approx(-1.0)
    # ties take their mean rank: y ranks 1, 2, 3.5, 5, 3.5 -> 8 / sqrt(10 * 9.5)
    assert bm.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert bm.spearman([1, 2], [1, 2]) is None
    assert bm.spearman([1, 2, 3], [4, 4, 4]) is None
    assert list(bm.average_ranks(np.array([3.0, 1.0, 3.0, 2.0]))) == [3.5, 1.0, 3.5, 2.0]


def test_bootstrap_interval_contains_rho_and_is_reproducible():
    rng = np.random.default_rng(7)
    x = rng.normal(size=60)
    y = -0.7 * x + rng.normal(scale=0.6, size=60)
    rho = bm.spearman(x, y)
    low, high = bm.bootstrap_interval(x, y, seed=bm.pair_seed(2024, "wages", "b"))
    assert -1 <= low <= rho <= high <= 1 and high - low < 0.6
    assert bm.bootstrap_interval(x, y, seed=bm.pair_seed(2024, "wages", "b")) == (low, high)
    assert bm.bootstrap_interval(x, y, seed=bm.pair_seed(2023, "wages", "b")) != (low, high)
    assert bm.pair_seed(2024, "wages", "b") == bm.pair_seed(2024, "wages", "b")  # not Python's salted hash
    assert bm.bootstrap_interval([1, 2], [2, 1], seed=1) == (None, None)


def _loop_interval(x, y, *, seed: int, resamples: int = bm.RESAMPLES) -> tuple[float | None, float | None]:
    """The bootstrap as first written: spearman on each resample, one at a time."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < bm.MIN_COUNTRIES:
        return None, None
    draws = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    stats = np.array([np.nan if (r := bm.spearman(x[i], y[i])) is None else r for i in draws])
    if np.isnan(stats).all():
        return None, None
    tail = (1 - 0.95) / 2 * 100  # as bootstrap_interval computes it (2.5000000000000022)
    lo, hi = np.nanpercentile(stats, [tail, 100 - tail])
    return float(lo), float(hi)


def test_bootstrap_interval_equals_the_per_resample_loop_bit_for_bit():
    """The resamples' rhos are computed as rows of one array: the published rho_low / rho_high
    must not move by one bit (continuous scores, heavy ties, scores on a 0.1 grid, constant
    resamples, a NaN)."""
    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(3, 180))
        x = rng.normal(size=n) if trial % 3 == 0 else rng.integers(0, 4, size=n).astype(float)
        y = (x * rng.normal() + rng.normal(size=n)) if trial % 3 != 2 else np.round(rng.uniform(1, 6, size=n), 1)
        assert bm.bootstrap_interval(x, y, seed=trial, resamples=200) == _loop_interval(x, y, seed=trial,
                                                                                      resamples=200), trial
    few = np.array([1.0, 1.0, 1.0, 2.0])  # many resamples draw one value only: no rho for them
    assert bm.bootstrap_interval(few, few[::-1], seed=3) == _loop_interval(few, few[::-1], seed=3)
    assert bm.bootstrap_interval([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], seed=3) == (None, None)
    with_nan = np.array([1.0, np.nan, 3.0, 2.0, 5.0])
    assert bm.bootstrap_interval(with_nan, np.arange(5.0), seed=4) == _loop_interval(with_nan, np.arange(5.0), seed=4)
    ranks = bm.row_average_ranks(np.array([[3.0, 1.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0], [4.0, 3.0, 2.0, 1.0]]))
    assert ranks.tolist() == [[3.5, 1.0, 3.5, 2.0], [2.5, 2.5, 2.5, 2.5], [4.0, 3.0, 2.0, 1.0]]


def _current(**kw) -> pl.DataFrame:
    row = {"edition": 2024, "topic": "wages", "benchmark": "gni", "direction": "negative", "min_rho": 0.5,
           "vintage": "2024-03", "released_after_edition": False, "n": 150, "rho": -0.8, "rho_low": -0.85,
           "rho_high": -0.75, "previous_methodology_version": None, "previous_rho": None}
    return pl.DataFrame([{**row, **kw}])


def test_check_warns_below_min_rho_and_on_a_drop_against_the_previous_version():
    assert bm.agreement_problems(_current()) == []
    [below] = bm.agreement_problems(_current(rho=-0.3))
    assert "gni vs wages" in below and "below min_rho 0.5" in below
    [wrong_way] = bm.agreement_problems(_current(rho=0.6))         # agreement -0.6
    assert "below min_rho" in wrong_way
    [drop] = bm.agreement_problems(_current(previous_methodology_version="0.1+abc", previous_rho=-0.9))
    assert "dropped by 0.100" in drop and "0.1+abc" in drop
    assert bm.agreement_problems(_current(previous_methodology_version="v0", previous_rho=-0.84)) == []
    assert "no rho" in bm.agreement_problems(_current(rho=None, n=2))[0]


def test_previous_rho_is_the_other_versions_and_survives_a_rerun():
    current = _current().drop("previous_methodology_version", "previous_rho")
    stored = pl.DataFrame([{"topic": "wages", "benchmark": "gni", "rho": -0.9, "methodology_version": "old",
                            "previous_methodology_version": None, "previous_rho": None}])
    first = bm.with_previous(current, stored, "new").row(0, named=True)
    assert (first["previous_methodology_version"], first["previous_rho"]) == ("old", -0.9)
    rerun = bm.with_previous(current, pl.DataFrame([{**first, "methodology_version": "new"}]).select(stored.columns),
                             "new").row(0, named=True)
    assert (rerun["previous_methodology_version"], rerun["previous_rho"]) == ("old", -0.9)
    fresh = bm.with_previous(current, stored.head(0), "new").row(0, named=True)
    assert fresh["previous_rho"] is None


def test_a_user_benchmark_file_is_read_and_checked(rules, tmp_path):
    path = _write(rules, "mine,user_file,mine.csv,wages,positive,0.5,a licensed reference")
    [b] = bm.load_benchmarks(path)
    folder = tmp_path / "user" / "benchmarks" / "2023"
    folder.mkdir(parents=True)
    (folder / "mine.csv").write_text("iso3,value\nDNK,1.5\nnga,7\n", encoding="utf-8")
    got = bm.read_values(b, 2024, {"DNK", "NGA", "FRA"}, user_dir=tmp_path / "user")
    assert got.vintage == "2023" and got.values.select("iso3", "value").rows() == [("DNK", 1.5), ("NGA", 7.0)]
    (folder / "mine.csv").write_text("iso3,value\nDNK,1.5\nXXX,2\n", encoding="utf-8")
    with pytest.raises(bm.SourceError, match=r"line 3.*'iso3'.*not an ISO3 code"):
        bm.read_values(b, 2024, {"DNK", "NGA"}, user_dir=tmp_path / "user")


# --- the asset ----------------------------------------------------------------------------------------

def test_sample_edition_has_agreement_disagreements_and_the_version(sample_edition_2024):
    from radar_pipeline.rules import fingerprint

    con = duckdb.connect(str(sample_edition_2024), read_only=True)
    try:
        agree = con.sql("select * from benchmark_agreement where edition = 2024 order by benchmark").pl()
        gaps = con.sql("select * from benchmark_disagreements where edition = 2024").pl()
    finally:
        con.close()
    assert set(agree["benchmark"]) == {b.benchmark_id for b in bm.load_benchmarks()}
    assert agree["n"].min() >= 20
    assert (agree["rho_low"] <= agree["rho"]).all() and (agree["rho"] <= agree["rho_high"]).all()
    assert set(agree["methodology_version"]) == {fingerprint.version("country")}
    per_pair = (gaps.sort("position").group_by("benchmark")
                    .agg(pl.len(), pl.col("indicator_values").null_count(),
                         first_gap=pl.col("rank_gap").abs().first(), max_gap=pl.col("rank_gap").abs().max()))
    assert per_pair["len"].to_list() == [bm.TOP_GAPS] * agree.height and per_pair["indicator_values"].sum() == 0
    assert (per_pair["first_gap"] == per_pair["max_gap"]).all()    # position 1 = the largest rank gap
    assert gaps["imputation_methods"].str.contains("direct").any()


@pytest.mark.slow
def test_the_check_warns_below_min_rho_and_the_picture_is_drawn(sample_edition_2024, tmp_path, monkeypatch):
    import dagster as dg

    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_edition_2024, wh)
    rules = tmp_path / "rules"
    shutil.copytree(settings.RULES_DIR, rules)
    text = (rules / "benchmarks.csv").read_text(encoding="utf-8")
    (rules / "benchmarks.csv").write_text(text.replace(",negative,0.5,", ",negative,0.999,"), encoding="utf-8")
    monkeypatch.setenv("RADAR_RULES_DIR", str(rules))
    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(settings.SAMPLE_MIRROR_DIR))
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    result = dg.materialize([bm.benchmark_agreement], partition_key="2024",
                            resources={"warehouse": DuckDBWarehouse(database=str(wh))})
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "below min_rho 0.999" in check.metadata["problems"].value
    [mat] = result.get_asset_materialization_events()
    assert "png" not in mat.materialization.metadata  # the picture is its own asset (not in the refresh)
    from radar_pipeline.pictures.assets import benchmark_agreement_picture

    drawn = dg.materialize([benchmark_agreement_picture], partition_key="2024",
                           resources={"warehouse": DuckDBWarehouse(database=str(wh))})
    [pic] = drawn.get_asset_materialization_events()
    md = pic.materialization.metadata
    assert Path(md["png"].value).is_file() and "data:image/png;base64," in md["preview"].value
    assert md["pairs"].value == n_pairs(wh)
    con = duckdb.connect(str(wh), read_only=True)
    prev = con.sql("select previous_methodology_version, previous_rho, rho from benchmark_agreement "
                   "where benchmark = 'wgi_voice_accountability'").fetchall()[0]
    con.close()
    # the edited rules are another country version: the sample's stored rho is kept as the previous one
    assert prev[0] is not None and prev[1] == pytest.approx(prev[2])


@pytest.mark.slow
def test_real_mirror_defaults_agree_in_the_expected_direction_2024(shared_sources, tmp_path, monkeypatch):
    from radar_pipeline.cli.runs import refresh_edition

    monkeypatch.setenv("RADAR_SOURCES_MIRROR", str(shared_sources))
    monkeypatch.setenv("RADAR_USER_FILES", str(tmp_path / "user"))
    monkeypatch.setenv("RADAR_OVERRIDES", str(tmp_path / "no-overrides"))
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    path = tmp_path / "real.duckdb"
    outcome = refresh_edition(2024, warehouse=path)
    assert outcome.success, outcome.failures
    con = duckdb.connect(str(path), read_only=True)
    rows = con.sql("select * from benchmark_agreement where edition = 2024").pl()
    con.close()
    assert set(rows["benchmark"]) == {b.benchmark_id for b in bm.load_benchmarks()}
    for r in rows.iter_rows(named=True):
        agreement = bm.agreement(r["rho"], r["direction"])
        assert r["n"] >= 100 and agreement > 0, r                       # the expected direction
        assert agreement >= r["min_rho"], r                             # and at least the minimum
        low = min(bm.agreement(v, r["direction"]) for v in (r["rho_low"], r["rho_high"]))
        assert low > 0, r                                               # the interval excludes no agreement


def test_published_benchmark_tables_are_declared_and_complete(sample_edition_2024, tmp_path, monkeypatch):
    from radar_pipeline.publish import build

    monkeypatch.setenv("RADAR_BUYERS_INBOX", str(tmp_path / "buyers"))
    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_edition_2024, wh)
    build.publish(wh, tmp_path / "published" / "radar.duckdb", log=lambda _m: None)
    pub = duckdb.connect(str(tmp_path / "published" / "radar.duckdb"), read_only=True)
    src = duckdb.connect(str(wh), read_only=True)
    try:
        for table in ("benchmark_agreement", "benchmark_disagreements"):
            n = src.sql(f"select count(*) from {table}").fetchall()[0][0]
            assert n > 0 and pub.sql(f"select count(*) from {table}").fetchall()[0][0] == n, table
            described = pub.sql("select count(*) from data_dictionary where table_name = $t",
                                params={"t": table}).fetchall()[0][0]
            assert described == len(pub.sql(f"select * from {table} limit 0").columns), table
    finally:
        pub.close()
        src.close()


def n_pairs(wh: Path) -> int:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.sql("select count(*) from benchmark_agreement where edition = 2024").fetchall()[0][0]
    finally:
        con.close()


def test_the_picture_asks_for_its_agreement_first(sample_edition_2024, tmp_path, monkeypatch):
    """The rank scatter draws what benchmark_agreement stored: an edition without it fails saying so."""
    import dagster as dg

    from radar_pipeline.pictures.assets import benchmark_agreement_picture
    from radar_pipeline.platform.warehouse import DuckDBWarehouse

    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_edition_2024, wh)
    monkeypatch.setenv("RADAR_PICTURES", str(tmp_path / "pictures"))
    result = dg.materialize([benchmark_agreement_picture], partition_key="2023", raise_on_error=False,
                            resources={"warehouse": DuckDBWarehouse(database=str(wh))})
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "no benchmark_agreement pair for edition 2023" in failure.step_failure_data.error.message
