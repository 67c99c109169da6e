"""Picks of particles cut by the micrograph's edge are dropped (``PickConfig.edge_margin``)."""

import numpy as np
import pytest
from torch import nn

from cryopick.config import PickConfig
from cryopick.data import Preprocessing
from cryopick.picking import Picker


class Identity(nn.Module):
    def forward(self, x):
        return 4.0 * (x - 1.0)


def _image(xy, shape=(96, 96), sigma=2.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return sum(4.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in xy).astype(np.float32)


# radius 8: centres 3 px (cut), 6 px (cut), 8 px (just whole) and 48 px from the nearest edge
PLACED = [[3.0, 50.0], [50.0, 89.0], [87.0, 20.0], [48.0, 48.0]]


@pytest.mark.parametrize("factor", [1, 2])
def test_default_drops_particles_cut_by_the_edge(factor):
    image = _image(np.asarray(PLACED) * factor, shape=(96 * factor, 96 * factor), sigma=2.0 * factor)
    prep = Preprocessing(downsample=factor, normalize="none", radius=8.0 * factor)
    kept = Picker([Identity()], prep, PickConfig(threshold=0.5)).pick_image(image, "m").xy / factor
    assert sorted(map(tuple, np.round(kept).astype(int))) == [(48, 48), (87, 20)]
    every = Picker([Identity()], prep, PickConfig(threshold=0.5, edge_margin=0)).pick_image(image, "m").xy
    assert len(every) == 4


def test_negative_edge_margin_is_refused_in_one_line(tmp_path, capsys):
    from cryopick.cli import main

    rc = main(["pick", "--model", "general", "--radius", "10", "--edge-margin", "-1", "--out", str(tmp_path / "o"),
               str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "--edge-margin" in err[0]
