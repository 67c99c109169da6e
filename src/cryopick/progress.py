"""Progress of a long loop: a tqdm bar on a terminal, a plain line every N seconds elsewhere.

:class:`Progress` counts items (micrographs). On a terminal (its stream ``isatty()``) it
shows a tqdm bar, and a second, transient bar for the tiles of the micrograph in hand
when that has many (a 10000 x 10000 px micrograph is hundreds of tiles). Into a log file
or a pipe it writes one line every ``every`` seconds at most::

    pick: 12/300 micrographs (4 %), 0.83 micrographs/s, about 5m47s left
    pick: micrograph 13/300 (mic_0013): tile 96/400

and, when it wrote any, a last line when it closes (a run of a few seconds writes none). ``tile`` is the callback
:func:`cryopick.inference.predict_probability` takes as ``progress``.
"""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["Progress", "format_seconds"]

TILE_BAR_MIN = 16  # a tile bar (terminal) only for micrographs of more tiles than this


def format_seconds(s: float) -> str:
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


class Progress:
    def __init__(self, total: int | None, desc: str = "pick", unit: str = "micrograph", every: float = 30.0,
                 stream: IO[str] | None = None, enabled: bool = True, terminal: bool | None = None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, float(every)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.terminal = _isatty(self.stream) if terminal is None else terminal
        self.done, self.t0 = 0, time.monotonic()
        self._last_line = self.t0
        self._printed = False
        self.current: str | None = None
        self._bar = self._tiles = None
        if enabled and self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit[:3], file=self.stream, dynamic_ncols=True)

    # -- items -----------------------------------------------------------------------
    def start(self, name: str) -> None:
        """The next item (its tiles follow through :meth:`tile`)."""
        self.current = name

    def update(self, n: int = 1) -> None:
        self.done += n
        self._close_tiles()
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self._due():
            self._line(self.summary())

    def summary(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.t0)
        rate = self.done / elapsed
        units = self.unit + ("s" if self.total != 1 else "")
        if self.total:
            text = f"{self.desc}: {self.done}/{self.total} {units} ({100 * self.done / self.total:.0f} %)"
        else:
            text = f"{self.desc}: {self.done} {units}"
        text += f", {rate:.3g} {self.unit}s/s" if rate >= 0.1 else f", {elapsed / max(1, self.done):.1f} s/{self.unit}"
        if self.total and self.done and self.done < self.total:
            text += f", about {format_seconds((self.total - self.done) / rate)} left"
        return text

    # -- tiles of the current item ---------------------------------------------------
    def tile(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.terminal:
            if total <= TILE_BAR_MIN:
                return
            if self._tiles is None:
                from tqdm import tqdm

                self._tiles = tqdm(total=total, desc=f"  {self.current or 'tiles'}", unit="tile", leave=False,
                                   file=self.stream, position=1, dynamic_ncols=True)
            self._tiles.update(done - self._tiles.n)
        elif done < total and self._due():
            where = f"{self.unit} {self.done + 1}" + (f"/{self.total}" if self.total else "")
            name = f" ({self.current})" if self.current else ""
            self._line(f"{self.desc}: {where}{name}: tile {done}/{total}")

    # -- ending ------------------------------------------------------------------------
    def close(self, failed: bool = False) -> None:
        """End: a last line when earlier lines were written (a short run writes none) and it did not fail."""
        self._close_tiles()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.done and self._printed and not failed:
            self._line(self.summary() + f" in {format_seconds(time.monotonic() - self.t0)}")
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def _close_tiles(self) -> None:
        if self._tiles is not None:
            self._tiles.close()
            self._tiles = None

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_line >= self.every:
            self._last_line = now
            return True
        return False

    def _line(self, text: str) -> None:
        self._printed = True
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed stream must not stop the work
            pass


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
