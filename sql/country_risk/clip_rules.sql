-- clip_rules: the clipping rule of METHODOLOGY §2.2 as a named macro, its one home. A value
-- beyond an indicator's clip_min / clip_max (rules/indicators.csv; null = no bound) is set to
-- the bound before normalising. Used by indicator_scores.sql and by the flat-indicator warning
-- (radar_pipeline/country_risk/assets.py); radar_pipeline/rules/rule_sql.py installs it.

create or replace temp macro clip_value(x, lo, hi) as
    case
        when x < lo then lo
        when x > hi then hi
        else x
    end;
