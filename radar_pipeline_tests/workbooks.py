"""Synthetic workbooks for adapter tests: sheets of rows written with openpyxl, in the
publishers' layouts (title rows, header rows, blank cells) that a test describes row by row."""
from __future__ import annotations

from pathlib import Path

import openpyxl


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path
