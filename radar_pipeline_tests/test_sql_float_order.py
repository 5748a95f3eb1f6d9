"""Float sums must not depend on the order rows arrive in (DuckDB aggregates in parallel, so the
arrival order changes between runs and so can the last bit of a sum): every avg/sum of the
country-risk, sector and publish SQL names its order (`avg(score order by topic)`), so a rerun
gives byte-identical tables."""
from __future__ import annotations

import re

import pytest

from radar_pipeline.platform import settings

FOLDERS = ("country_risk", "sectors", "publish")


def aggregate_calls(sql: str) -> list[str]:
    """The text of every avg(...) / sum(...) call (balanced parentheses), comments removed."""
    sql = re.sub(r"--[^\n]*", "", sql)
    calls = []
    for m in re.finditer(r"\b(avg|sum)\s*\(", sql, flags=re.I):
        depth, i = 1, m.end()
        while depth and i < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        calls.append(sql[m.start():i])
    return calls


def test_the_checker_finds_an_unordered_average():
    calls = aggregate_calls("select avg(score) as a, sum(case when x then (1.0) end order by t) -- avg(y)\n")
    assert calls == ["avg(score)", "sum(case when x then (1.0) end order by t)"]


@pytest.mark.parametrize("path", sorted(p for f in FOLDERS for p in (settings.SQL_DIR / f).glob("*.sql")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_float_aggregates_name_their_order(path):
    unordered = [c for c in aggregate_calls(path.read_text(encoding="utf-8"))
                 if not re.search(r"\border\s+by\b", c, flags=re.I)]
    assert unordered == [], f"{path}: give these aggregates an ORDER BY (deterministic float sums): {unordered}"
