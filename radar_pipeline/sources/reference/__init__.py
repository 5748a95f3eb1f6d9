"""Reference lists the pipeline maps and joins against, not indicator observations: the UN M49
country universe, the ISIC Rev.4 classification, and the country name/code resolver."""
