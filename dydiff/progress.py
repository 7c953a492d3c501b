"""Progress over a long loop that a person can follow: a tqdm bar on a terminal, and in a log file one line per
tenth of the work with the elapsed time and the ETA (a bar's carriage returns make a log unreadable)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Lines:
    """``tqdm``'s interface (iteration, ``set_postfix``) printing a line at every tenth of ``total``."""

    def __init__(self, iterable, total: int, desc: str, initial: int = 0, lines: int = 10, stream=None):
        self.iterable, self.total, self.desc, self.initial = iterable, total, desc, initial
        self.every, self.stream, self.postfix = max(1, -(-total // lines)), stream, {}

    def set_postfix(self, **kw) -> None:
        self.postfix = kw

    def __iter__(self):
        t0, done = time.perf_counter(), self.initial
        for x in self.iterable:
            yield x
            done += 1
            if done % self.every == 0 or done == self.total:
                el = time.perf_counter() - t0
                eta = el / (done - self.initial) * (self.total - done)
                extra = "".join(f"  {k} {v}" for k, v in self.postfix.items())
                print(f"{self.desc}: {done}/{self.total} ({100 * done / self.total:.0f}%)  {duration(el)} elapsed  "
                      f"ETA {duration(eta)}{extra}", file=self.stream or sys.stdout, flush=True)


def track(iterable, total: int, desc: str, enabled: bool = True, initial: int = 0):
    """``iterable`` with progress: a bar on a terminal, lines otherwise, nothing when not ``enabled``."""
    if enabled and not sys.stderr.isatty():
        return Lines(iterable, total, desc, initial)
    return tqdm(iterable, total=total, desc=desc, initial=initial, disable=not enabled, mininterval=1.0)
