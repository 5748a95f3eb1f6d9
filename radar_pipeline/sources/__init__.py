"""Publisher sources, in three parts:

- `toolkit/`: the typed adapter contract and the helpers every adapter shares (tables, fetch);
- `adapters/`: one module per publisher, `parse(files, specs)` -> observation rows;
- `reference/`: the country universe (UN M49), ISIC Rev.4 and country name resolution;
plus `registry` (which vintages an edition reads, the edition cut) and `check` (`radar sources
check`).
"""
