"""Live picking: pick each micrograph that arrives in a folder, during collection.

``cryopick pick --watch DIR`` lists DIR every ``cfg.poll_seconds``. A micrograph file
(hidden files are skipped: the temporary file of a copy that renames into place never
counts) is *complete* once its size and modification time are the same at two polls in
a row, or, with ``done_suffix``, once ``FILE + done_suffix`` exists (a marker the
acquisition software writes when the file is finished). Each complete micrograph is
picked once; its per-micrograph files are written (every format is per micrograph in
live mode: ``box/``, ``csv/``, ``star/``, ``relion/<stem>_autopick.star``, ...), then the
RELION index ``relion/autopick.star``, ``pick_summary.json`` and the state file
``live_state.json`` are rewritten atomically. A micrograph that cannot be read is
noted in the state and tried again only once its size changes.

Why not the staging folder of a plain ``pick``: that one replaces ``--out`` at the end,
and live outputs must be readable (by RELION, cryoSPARC Live, a person) while the run
goes on. Live mode therefore writes into ``--out`` itself, under its lock, each file
atomically. ``live_state.json`` lists the micrographs done: a live run restarted on the
same ``--out`` continues where it stopped and picks nothing twice. An ``--out`` holding
the picks of a plain ``pick`` run needs ``--overwrite``, which clears them first (in
place: there is nothing to keep once live picks start arriving).

It stops on Ctrl-C (after the micrograph in hand: its files and the state stay
consistent) or after ``cfg.idle_timeout`` seconds without a new micrograph.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import PickConfig, RunConfig
from .errors import CryopickError, InputError, OutputError
from .io.atomic import atomic_write_json

__all__ = ["LiveWatcher", "run_live", "STATE_NAME"]

STATE_NAME = "live_state.json"


@dataclass
class LiveState:
    done: dict[str, dict] = field(default_factory=dict)  # stem -> {"path", "n_picks", "size", "seconds"}
    failed: dict[str, dict] = field(default_factory=dict)  # stem -> {"path", "size", "error"}
    watch: str = ""
    models: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "LiveState":
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: the live-mode state is unreadable ({exc}); move it away to pick every "
                             "micrograph again, or choose another --out") from None
        return cls(dict(d.get("done") or {}), dict(d.get("failed") or {}), str(d.get("watch") or ""),
                   list(d.get("models") or []))

    def save(self, path: Path) -> None:
        atomic_write_json(path, {"watch": self.watch, "models": self.models, "done": self.done,
                                 "failed": self.failed})


class LiveWatcher:
    """Watch ``folder`` and pick into ``out`` (an existing, locked folder). :meth:`run` loops until
    ``stop`` is set, Ctrl-C, or ``cfg.idle_timeout``; :meth:`poll_once` does one round."""

    def __init__(self, folder: str | Path, models: list[str], cfg: PickConfig, out: str | Path, device="cpu",
                 done_suffix: str | None = None, all_candidates: bool = False,
                 log: Callable[[str], None] = print):
        from .picking import box_size, make_picker

        self.folder, self.out, self.cfg = Path(folder), Path(out), cfg
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: --watch needs an existing folder of micrographs; check the path")
        self.models, self.done_suffix, self.all_candidates, self.log = models, done_suffix, all_candidates, log
        self.picker = make_picker(models, cfg, device, None)
        self.box = box_size(cfg, self.picker)
        self.state_path = self.out / STATE_NAME
        self.state = LiveState.load(self.state_path)
        self.state.watch, self.state.models = str(folder), [str(m) for m in models]
        self.seen: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) at the last poll
        self.stop = threading.Event()
        self.picked_now = 0
        self.active = False  # a micrograph appeared or grew since the last look

    # -- finding complete micrographs --------------------------------------------------
    def ready(self) -> list[Path]:
        from .io.micrographs import SUFFIXES, micrograph_stem

        found, now = [], {}
        try:
            entries = sorted(self.folder.iterdir())
        except OSError as exc:
            raise InputError(f"{self.folder}: cannot list the watched folder ({exc.strerror or exc})") from None
        for f in entries:
            if f.name.startswith(".") or f.suffix.lower() not in SUFFIXES or not f.is_file():
                continue
            stem = micrograph_stem(f.name)
            if stem in self.state.done:
                continue
            try:
                st = f.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            now[f.name] = sig
            self.active = self.active or self.seen.get(f.name) != sig  # new or still growing
            failed = self.state.failed.get(stem)
            if failed is not None and failed.get("size") == st.st_size:
                continue  # unreadable before, and unchanged since
            if self.done_suffix:
                complete = f.with_name(f.name + self.done_suffix).exists()
            else:
                complete = st.st_size > 0 and self.seen.get(f.name) == sig
            if complete:
                found.append(f)
        self.seen = now
        return found

    # -- picking one ---------------------------------------------------------------------
    def pick(self, path: Path) -> None:
        from .io.micrographs import micrograph_stem
        from .pickfiles import PickSet, write_pick_outputs
        from .picking import CANDIDATE_FLOOR, pick_one

        stem = micrograph_stem(path.name)
        t0 = time.perf_counter()
        size = -1
        try:
            size = path.stat().st_size
            name, particles, given, shape = pick_one(self.picker, path, None, self.all_candidates)
        except (InputError, OSError, ValueError) as exc:
            text = str(exc) if isinstance(exc, CryopickError) else f"{type(exc).__name__}: {exc}"
            self.state.failed[stem] = {"path": str(path), "size": size, "error": text}
            self.state.save(self.state_path)
            self.log(f"live: {path}: not picked ({text}); tried again once the file changes")
            return
        done_paths = {k: v["path"] for k, v in self.state.done.items()}
        picks = PickSet({name: particles}, {**done_paths, name: given}, {name: shape})
        _, notes = write_pick_outputs(picks, self.out, self.cfg, self.box, per_micrograph=True,
                                      all_candidates=self.all_candidates, index_stems=[*done_paths, name],
                                      floor=CANDIDATE_FLOOR)
        self.state.failed.pop(stem, None)
        self.state.done[name] = {"path": given, "n_picks": len(particles), "size": size,
                                 "seconds": round(time.perf_counter() - t0, 3),
                                 "box_outside_edge": notes.get("box_outside_edge", 0)}
        self.state.save(self.state_path)
        self._write_summary()
        self.picked_now += 1
        self.log(f"live: {name}: {len(particles)} picks ({len(self.state.done)} micrographs done)")

    def _write_summary(self) -> None:
        from .picking import pick_summary

        done = self.state.done
        labels = {k: [None] * int(v["n_picks"]) for k, v in done.items()}
        seconds = sum(float(v.get("seconds", 0)) for v in done.values())
        summary = pick_summary(self.picker, labels, self.models, self.all_candidates, seconds, len(done))
        summary["live"] = {"watch": str(self.folder), "state": STATE_NAME, "unreadable": sorted(self.state.failed)}
        summary["box_outside_edge"] = sum(int(v.get("box_outside_edge", 0)) for v in done.values())
        atomic_write_json(self.out / "pick_summary.json", summary)

    # -- the loop --------------------------------------------------------------------------
    def poll_once(self) -> int:
        n = 0
        for path in self.ready():
            if self.stop.is_set():
                break
            self.pick(path)
            n += 1
        return n

    def run(self) -> dict:
        idle = self.cfg.idle_timeout
        self.log(f"live: watching {self.folder} every {self.cfg.poll_seconds:g} s ("
                 + (f"stops after {idle:g} s without a new micrograph" if idle else "Ctrl-C stops") + "); "
                 f"{len(self.state.done)} micrographs already done")
        self.state.save(self.state_path)  # marks --out as a live run from the start
        last_new = time.monotonic()
        try:
            while not self.stop.is_set():
                self.active = False
                if self.poll_once() or self.active:
                    last_new = time.monotonic()
                elif idle is not None and time.monotonic() - last_new >= idle:
                    self.log(f"live: no new micrograph for {idle:g} s; stopping")
                    break
                self.stop.wait(self.cfg.poll_seconds)
        except KeyboardInterrupt:
            self.log("live: interrupted; the micrographs done so far are saved")
        if not (self.out / "pick_summary.json").exists():
            self._write_summary()
        return {"picked": self.picked_now, "done": len(self.state.done), "unreadable": sorted(self.state.failed)}


def run_live(folder: str, models: list[str], cfg: PickConfig, out: str, device="cpu", overwrite: bool = False,
             done_suffix: str | None = None, all_candidates: bool = False, config: RunConfig | None = None,
             log: Callable[[str], None] = print) -> dict:
    """``pick --watch``: lock ``out``, continue its live run (or start one), watch ``folder``."""
    from .config import save_run_config
    from .io.outdir import PICK_OUTPUTS, clear_outputs, earlier_outputs, folder_lock, listing, matcher
    from .pickfiles import EXTRA_PICK_OUTPUTS

    known = matcher(PICK_OUTPUTS + EXTRA_PICK_OUTPUTS)
    with folder_lock(out, "pick --watch") as out_dir:
        earlier = earlier_outputs(out_dir, known)
        state_file = out_dir / STATE_NAME
        if state_file.is_file() and not overwrite:
            before = LiveState.load(state_file).models
            if before and before != [str(m) for m in models]:
                raise InputError(f"{out_dir}: continues a live run of other models ({', '.join(before)}); pass the "
                                 "same --model, --overwrite to start again, or another --out")
        elif earlier and not overwrite:
            raise OutputError(f"{out_dir}: holds earlier picks ({listing(earlier)}) of a run that was not live; "
                              "pass --overwrite to clear them, or choose another --out")
        if overwrite:
            clear_outputs(out_dir, known)
        watcher = LiveWatcher(folder, models, cfg, out_dir, device, done_suffix, all_candidates, log)
        if config is not None:
            save_run_config(config, out_dir)
        return watcher.run()
