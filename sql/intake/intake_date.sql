-- A finding's date as the native intake reads it: YYYY-MM-DD and a real day, else NULL. native.py
-- compares it with the fast path's polars parse (%Y-%m-%d) on every distinct date string of the
-- file, and leaves the file to the line-exact reader if the two differ on any.
create or replace temp macro intake_date(text) as
    case when regexp_full_match(text, '[0-9]{4}-[0-9]{2}-[0-9]{2}') then try_strptime(text, '%Y-%m-%d')::date end;
