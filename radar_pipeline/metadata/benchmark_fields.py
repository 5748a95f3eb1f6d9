"""Columns of the benchmark tables (issue 25 item 1; radar_pipeline/country_risk/benchmarks.py), shared
by their warehouse (metadata/warehouse.py) and published (metadata/published.py) declarations."""
from __future__ import annotations

from radar_pipeline.metadata.classes import Field
from radar_pipeline.metadata.fields import F
from radar_pipeline.rules.methodology import TOPICS

BENCHMARK_TOPIC = F["topic"].but(description="Topic the benchmark checks (rules/benchmarks.csv), or 'overall' = "
                                             "mean country risk over the topics", isin=(*TOPICS, "overall"))
BENCHMARK = Field("benchmark", "varchar", "Benchmark id (rules/benchmarks.csv benchmark_id)", nullable=False,
                  regex=r"^[a-z0-9_]+$")
MV = F["methodology_version"].but(description="Methodology version (METHODOLOGY §8c) of the country stage "
                                              "(rules/benchmarks.csv is part of it)")

AGREEMENT_FIELDS = [
    F["edition"], BENCHMARK_TOPIC, BENCHMARK,
    Field("direction", "varchar", "Expected direction of the agreement: positive (the topic score rises with the "
          "benchmark) or negative (it falls)", nullable=False, isin=("positive", "negative")),
    Field("min_rho", "double", "Least agreement expected in that direction (rho for positive, -rho for negative)",
          nullable=False, range=(0.0, 1.0)),
    Field("vintage", "varchar", "Vintage folder of the benchmark file read (the newest released by the edition "
          "that carries the series)"),
    Field("released_after_edition", "boolean", "The vintage was released after the edition (none released by "
          "then carries the series: the oldest later one)", nullable=False),
    Field("n", "integer", "Countries having both a topic score and a benchmark value", nullable=False, ge=0),
    Field("rho", "double", "Spearman rank correlation between the topic score and the benchmark over those "
          "countries (null below 3 countries or when one side is constant)", range=(-1.0, 1.0)),
    Field("rho_low", "double", "Lower bound of the bootstrap 95 % interval of rho (1000 resamples of the "
          "countries, seeded per edition x topic x benchmark)", range=(-1.0, 1.0)),
    Field("rho_high", "double", "Upper bound of the bootstrap 95 % interval of rho", range=(-1.0, 1.0)),
    Field("previous_methodology_version", "varchar", "The methodology version this edition's pair was last "
          "computed with before the current one (null: never computed with another version)"),
    Field("previous_rho", "double", "rho under previous_methodology_version: the benchmark check warns when the "
          "agreement dropped by more than 0.05 since", range=(-1.0, 1.0)),
]

DISAGREEMENT_FIELDS = [
    F["edition"], BENCHMARK_TOPIC, BENCHMARK,
    Field("position", "integer", "1 = the largest rank gap of the pair", nullable=False, range=(1, 1000)),
    F["iso3"], F["country_name"],
    F["score"].but(description="Country topic score 1-6 (overall: mean over the topics)", range=(1.0, 6.0)),
    Field("benchmark_value", "double", "The benchmark's value for the country (latest in the edition window)",
          nullable=False),
    Field("score_rank", "double", "Rank of the score among the pair's countries (1 = lowest risk; ties share "
          "their mean rank)", nullable=False),
    Field("benchmark_rank", "double", "Rank of the benchmark read as risk (its values for a positive benchmark, "
          "the negated values for a negative one; 1 = lowest risk)", nullable=False),
    Field("rank_gap", "double", "score_rank - benchmark_rank: positive = the pipeline rates the country riskier "
          "than the benchmark does", nullable=False),
    Field("indicator_values", "varchar", "The topic's indicators for the country: 'indicator value -> score "
          "(method of donors)'; overall: every topic's, 'topic: ... | topic: ...'"),
    Field("imputation_methods", "varchar", "Distinct methods of those indicator values (direct = observed, else "
          "the gap fill, METHODOLOGY §2.3)"),
]
