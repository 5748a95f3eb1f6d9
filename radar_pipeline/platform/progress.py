"""Progress of long work (ingest, score, publish of many sites) for CLI users.

On a terminal: a tqdm bar on stderr. Otherwise (a log file, CI, a pipe): one plain line
per chunk, so a log shows how far a long run got without carriage-return noise. Work
below `min_total` items prints nothing: small runs stay quiet.

    with Progress("score", total=n_lines, unit="sites") as bar:
        for chunk in chunks:
            ...
            bar.update(chunk.height, rejected=k)
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_TOTAL = 50_000  # below this many items the work is short: no progress output


class Progress:
    def __init__(self, desc: str, total: int | None = None, *, unit: str = "sites",
                 min_total: int = MIN_TOTAL, stream: TextIO | None = None, tty: bool | None = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        # unknown total: shown as soon as the work turns out to be long
        self.min_total = min_total
        self.done = 0
        self.started = time.perf_counter()
        self._bar = None

    @property
    def active(self) -> bool:
        return max(self.total or 0, self.done) >= self.min_total

    def __enter__(self) -> Progress:
        return self

    def update(self, n: int, **notes) -> None:
        """`n` more items done; `notes` (e.g. rejected=3) are shown beside the count."""
        self.done += n
        if not self.active:
            return
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm  # only imported when a bar is actually shown

                self._bar = tqdm(total=self.total, desc=self.desc, unit=f" {self.unit}", unit_scale=True,
                                 file=self.stream, dynamic_ncols=True, initial=self.done - n)
            self._bar.update(n)
            if notes:
                self._bar.set_postfix(notes, refresh=False)
            return
        elapsed = time.perf_counter() - self.started
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in notes.items())
        self.stream.write(f"{self.desc}: {self.done}{of} {self.unit}{pct} in {elapsed:.1f}s "
                          f"({self.done / max(elapsed, 1e-9):,.0f}/s){extra}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __exit__(self, *exc) -> None:
        self.close()


def count_lines(path, block: int = 1 << 24) -> int:
    """Lines of a file (a last line without newline counts), for a progress total. Reads
    blocks, not lines: about a second per GB from a cold cache, much less from a warm one."""
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while data := fh.read(block):
            n += data.count(b"\n")
            last = data[-1:]
    return n + (last != b"\n")
