-- score_rules: the rounding and category rules of a final score (METHODOLOGY §8.3, §8.5) as
-- named macros, the one home of both. Every SQL file that rounds a final score or assigns a
-- category calls them; radar_pipeline/rules/rule_sql.py installs them (temp, per connection) after
-- the rule table score_categories (rules/score_categories.csv: category, min_score, max_score).

-- One decimal, half up, through DECIMAL: a binary double such as 3.9499999999999997 is first
-- fixed to 9 decimals, then rounded half up (half away from zero; scores are never negative).
create or replace temp macro round_score(x) as round(x::decimal(18, 9), 1)::double;

-- The category of a (rounded) score: the score_categories row with min_score <= x < max_score
-- (an empty bound is open); null for a null score. The bands are contiguous (checked when the
-- table is read), so the row is the (1 + number of upper bounds <= x)-th in score order; the two
-- lists are uncorrelated subqueries, computed once per query rather than once per row.
create or replace temp macro score_category(x) as
    case
        when x is not null then
            (select list(c.category order by c.min_score nulls first) from score_categories as c)[
                1 + len(list_filter(
                    (select list(c.max_score) from score_categories as c), lambda m: x >= m
                ))
            ]
    end;
