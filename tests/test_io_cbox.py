"""crYOLO CBOX label files (registered in cryopick.io.formats)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryopick.errors import InputError
from cryopick.io import FORMATS, Particles, guess_format, read_labels, write_labels

SAMPLE = """
data_cryolo

loop_
_CoordinateX #1
_CoordinateY #2
_Width #3
_Height #4
_EstWidth #5
_EstHeight #6
_Confidence #7
_NumBoxes #8
_Angle #9
100.0 200.0 64 64 60 62 0.91 <NA> <NA>
0 10.5 32 32 30 30 0.25 <NA> <NA>
"""


def test_cbox_is_registered() -> None:
    f = FORMATS["cbox"]
    assert f.read_suffixes == (".cbox",) and f.per_micrograph_only and f.needs_box_size
    assert guess_format("x/mic_1.cbox") == "cbox"


def test_hand_written_cbox_reads_to_centres(tmp_path: Path) -> None:
    path = tmp_path / "mic_7.cbox"
    path.write_text(SAMPLE)
    labels = read_labels(path)
    assert list(labels) == ["mic_7"]
    np.testing.assert_array_equal(labels["mic_7"].xy, [[132.0, 232.0], [16.0, 26.5]])
    np.testing.assert_array_equal(labels["mic_7"].scores, [0.91, 0.25])


@pytest.mark.parametrize("scored", [True, False])
def test_cbox_round_trip(tmp_path: Path, scored: bool) -> None:
    rng = np.random.default_rng(3)
    labels = {f"mic_{i}": Particles(rng.uniform(40, 900, (n, 2)).round(3), rng.random(n).round(4) if scored else None)
              for i, n in enumerate((6, 2, 0))}
    paths = write_labels(labels, tmp_path / "cbox", "cbox", box_size=64)
    assert sorted(p.name for p in paths) == ["mic_0.cbox", "mic_1.cbox", "mic_2.cbox"]
    import starfile

    block = starfile.read(paths[0], always_dict=True)["cryolo"]
    assert list(block.columns) == ["CoordinateX", "CoordinateY", "Width", "Height", "EstWidth", "EstHeight",
                                   "Confidence", "NumBoxes", "Angle"]
    np.testing.assert_allclose(block["CoordinateX"], labels["mic_0"].xy[:, 0] - 32)
    back = read_labels(tmp_path / "cbox")
    assert set(back) == set(labels)
    for stem, p in labels.items():
        np.testing.assert_array_equal(back[stem].xy, p.xy)
        if scored and len(p):
            np.testing.assert_array_equal(back[stem].scores, p.scores)
        else:
            assert back[stem].scores is None


def test_cbox_needs_box_size_and_coordinates(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cbox format needs a positive box size"):
        write_labels({"m": Particles(np.zeros((1, 2)))}, tmp_path / "out", "cbox")
    bad = tmp_path / "bad.cbox"
    bad.write_text("data_cryolo\n\nloop_\n_CoordinateX #1\n_Confidence #2\n1 0.5\n")
    with pytest.raises(InputError, match="_CoordinateY"):
        read_labels(bad)
