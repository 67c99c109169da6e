"""The zarr training-set layout: images.zarr, masks.zarr, names.json, meta.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cryopick.errors import InputError, OutputError
from cryopick.io import is_zarr_dataset, read_zarr_dataset, write_zarr_dataset


def _data(n: int = 3, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    images = rng.normal(size=(n, h, w)).astype(np.float32)
    masks = (rng.random((n, h, w)) > 0.8).astype(np.float32)
    return images, masks


def test_round_trip_from_lists(tmp_path: Path) -> None:
    images, masks = _data()
    meta = {"radius": 12, "downsample": np.int64(2), "norm": {"mean": np.float32(0.5)}}
    out = write_zarr_dataset(tmp_path / "ds", list(images), list(masks), ["a", "b", "c"], meta)
    assert is_zarr_dataset(out)
    got_images, got_masks, names, got_meta = read_zarr_dataset(out)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_masks, masks)
    assert got_images.dtype == np.float32 and got_masks.dtype == np.float32
    assert names == ["a", "b", "c"]
    assert got_meta == {"radius": 12, "downsample": 2, "norm": {"mean": 0.5}}
    assert json.loads((out / "names.json").read_text()) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_overwrite_existing_dataset(tmp_path: Path) -> None:
    images, masks = _data()
    write_zarr_dataset(tmp_path / "ds", images, masks, ["a", "b", "c"], {})
    images2, masks2 = _data(2, 16, 16)
    write_zarr_dataset(tmp_path / "ds", images2, masks2, ["x", "y"], {"v": 2})
    got_images, _, names, meta = read_zarr_dataset(tmp_path / "ds")
    assert got_images.shape == (2, 16, 16) and names == ["x", "y"] and meta == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_write_errors(tmp_path: Path) -> None:
    images, masks = _data()
    with pytest.raises(InputError, match=r"ds.*'b' is 16x16.*common size"):
        write_zarr_dataset(tmp_path / "ds", [images[0], np.zeros((16, 16))], [masks[0], masks[1]], ["a", "b"], {})
    with pytest.raises(InputError, match="ds.*differ in shape"):
        write_zarr_dataset(tmp_path / "ds", images, masks[:, :10], ["a", "b", "c"], {})
    with pytest.raises(InputError, match="ds.*3 images but 2 names"):
        write_zarr_dataset(tmp_path / "ds", images, masks, ["a", "b"], {})
    with pytest.raises(InputError, match="ds.*duplicate micrograph names"):
        write_zarr_dataset(tmp_path / "ds", images, masks, ["a", "b", "a"], {})
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="other.*not a cryopick dataset"):
        write_zarr_dataset(other, images, masks, ["a", "b", "c"], {})
    assert (other / "keep.txt").read_text() == "x"
    assert not (tmp_path / "ds").exists()


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing.*no such dataset"):
        read_zarr_dataset(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "names.json").write_text("[]")
    with pytest.raises(InputError, match=r"half.*missing images\.zarr, masks\.zarr"):
        read_zarr_dataset(tmp_path / "half")
    assert not is_zarr_dataset(tmp_path / "half")
    images, masks = _data()
    ds = write_zarr_dataset(tmp_path / "ds", images, masks, ["a", "b", "c"], {})
    (ds / "names.json").write_text('["a"]')
    with pytest.raises(InputError, match=r"ds.*names\.json has 1 names for 3 images"):
        read_zarr_dataset(ds)
    write_zarr_dataset(tmp_path / "ds2", images[:2], masks[:2], ["a", "b"], {})
    import shutil

    shutil.rmtree(ds / "masks.zarr")
    shutil.copytree(tmp_path / "ds2" / "masks.zarr", ds / "masks.zarr")
    (ds / "names.json").write_text('["a", "b", "c"]')
    with pytest.raises(InputError, match="ds.*differ in shape"):
        read_zarr_dataset(ds)
