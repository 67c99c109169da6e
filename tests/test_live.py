"""Live mode (`pick --watch`): a writer thread drops micrographs into a folder while the watcher picks
each complete one once; a restart picks nothing twice; --idle-timeout stops it."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import starfile

from cryopick.cli import main
from cryopick.config import PickConfig
from cryopick.io import write_mrc
from cryopick.live import LiveWatcher, run_live
from cryopick.simulate import SimulationConfig, save_simulation, simulate

pytestmark = pytest.mark.slow  # every test here uses a model trained in the module fixture

TINY = ["--base-features", "4", "--patch-size", "32", "--patches-per-epoch", "4", "--batch-size", "4",
        "--epochs", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("live_model")
    save_simulation(simulate(SimulationConfig(n=2, size=64, diameter=12, snr=0.5, seed=5)), root)
    out = root / "run"
    assert main(["train", "--images", str(root / "micrographs"), "--labels", str(root / "labels.star"),
                 "--radius", "6", "--out", str(out), *TINY, "--ensemble", "1"]) == 0
    return out / "best_model.pt"


def _mrc_bytes(tmp: Path, seed: int) -> bytes:
    img = np.random.default_rng(seed).normal(size=(64, 64)).astype(np.float32)
    path = tmp / f".src_{seed}.mrc"
    write_mrc(path, img)
    return path.read_bytes()


def _writer(folder: Path, scratch: Path, names: list[str], pause: float) -> threading.Thread:
    """Write each micrograph in 4 chunks (a slow copy), the next one after ``pause`` s."""

    def run():
        for i, name in enumerate(names):
            data = _mrc_bytes(scratch, i)
            with open(folder / name, "wb") as fh:
                for k in range(4):
                    fh.write(data[k * len(data) // 4:(k + 1) * len(data) // 4])
                    fh.flush()
                    time.sleep(0.01)
            time.sleep(pause)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _cfg(**kw) -> PickConfig:
    return PickConfig(threshold=0.05, formats=["relion", "box"], poll_seconds=0.1, idle_timeout=0.5, **kw)


def test_live_picks_each_arrival_once_and_survives_a_restart(model, tmp_path):
    watch, out, scratch = tmp_path / "incoming", tmp_path / "live", tmp_path / "scratch"
    watch.mkdir()
    scratch.mkdir()
    (watch / "notes.txt").write_text("not a micrograph")
    lines = []
    writer = _writer(watch, scratch, ["mic_a.mrc", "mic_b.mrc", "mic_c.mrc"], pause=0.2)
    result = run_live(str(watch), [str(model)], _cfg(), str(out), log=lines.append)
    writer.join()
    assert result["done"] == 3 and result["picked"] == 3, lines
    state = json.loads((out / "live_state.json").read_text())
    assert sorted(state["done"]) == ["mic_a", "mic_b", "mic_c"]
    index = starfile.read(out / "relion" / "autopick.star", always_dict=True)["coordinate_files"]
    assert list(index["rlnMicrographName"]) == [str(watch / f"mic_{c}.mrc") for c in "abc"]
    for coords in index["rlnMicrographCoordinates"]:
        assert Path(coords).is_file()
    assert sorted(p.name for p in (out / "box").iterdir()) == ["mic_a.box", "mic_b.box", "mic_c.box"]
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["n_micrographs"] == 3 and summary["live"]["watch"] == str(watch)
    assert any("no new micrograph" in line for line in lines)

    # restart: nothing is picked twice; a new arrival is picked
    before = (out / "relion" / "mic_a_autopick.star").stat().st_mtime_ns
    writer = _writer(watch, scratch, ["mic_d.mrc"], pause=0)
    again = run_live(str(watch), [str(model)], _cfg(), str(out), log=lines.append)
    writer.join()
    assert again["picked"] == 1 and again["done"] == 4
    assert (out / "relion" / "mic_a_autopick.star").stat().st_mtime_ns == before
    index = starfile.read(out / "relion" / "autopick.star", always_dict=True)["coordinate_files"]
    assert len(index) == 4 and index["rlnMicrographName"].iloc[-1] == str(watch / "mic_d.mrc")


def test_done_marker_and_unreadable_file(model, tmp_path):
    watch, out = tmp_path / "in", tmp_path / "out"
    watch.mkdir()
    out.mkdir()
    (watch / "mic_x.mrc").write_bytes(_mrc_bytes(tmp_path, 1))
    (watch / "broken.mrc").write_bytes(b"not an mrc file at all" * 10)
    lines = []
    w = LiveWatcher(watch, [str(model)], _cfg(), out, done_suffix=".done", log=lines.append)
    assert w.poll_once() == 0  # no marker yet: not complete, however stable
    assert w.poll_once() == 0
    (watch / "mic_x.mrc.done").write_text("")
    (watch / "broken.mrc.done").write_text("")
    assert w.poll_once() == 2  # both tried; the broken one is noted, not fatal
    assert list(w.state.done) == ["mic_x"] and list(w.state.failed) == ["broken"]
    assert any("broken.mrc: not picked" in line for line in lines)
    assert w.poll_once() == 0  # unchanged: not tried again


def test_watch_refuses_earlier_plain_picks_and_mics(model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "picks.star").write_text("data_\n")
    (tmp_path / "in").mkdir()
    rc = main(["pick", "--model", str(model), "--out", str(out), "--watch", str(tmp_path / "in"), "--device", "cpu",
               "--idle-timeout", "0.2", "--poll", "0.05"])
    assert rc == 3 and "--overwrite" in capsys.readouterr().err
    rc = main(["pick", "--model", str(model), "--out", str(out), "--watch", str(tmp_path / "in"), "x.mrc"])
    assert rc == 2 and "leave out MICS" in capsys.readouterr().err
    rc = main(["pick", "--model", str(model), "--out", str(out), "--watch", str(tmp_path / "in"), "--device", "cpu",
               "--idle-timeout", "0.2", "--poll", "0.05", "--overwrite"])
    assert rc == 0 and not (out / "picks.star").exists() and (out / "live_state.json").is_file()
