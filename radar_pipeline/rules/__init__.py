"""The rule tables (CSV/Markdown in this folder) and the code that reads them: the methodology's
constants, rule-table checks, the SQL macros installed from them, the methodology-version
fingerprint and the staleness it drives."""
