"""Micrograph reading/writing, micrograph discovery and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

from cryopick.errors import InputError, OutputError
from cryopick.io import (
    atomic_save_bytes,
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    ensure_out_dir,
    find_micrographs,
    micrograph_stem,
    read_micrograph,
    write_mrc,
    write_png,
)

SHARED = Path(os.environ.get("CRYOPICK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CRYOPPP_IMAGES = SHARED / "cryoppp-10059" / "train" / "images"


def _noise(h: int = 32, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(h, w)).astype(np.float32)


# ----------------------------------------------------------------------------- reading


@pytest.mark.skipif(not CRYOPPP_IMAGES.is_dir(), reason="shared CryoPPP data not available")
def test_read_shared_cryoppp_png() -> None:
    path = sorted(CRYOPPP_IMAGES.glob("*.png"))[0]
    mic = read_micrograph(path)
    assert mic.image.dtype == np.float32
    assert mic.image.shape == (1024, 1024)
    assert mic.name == path.stem
    assert mic.pixel_size is None
    assert mic.image.max() > mic.image.min()


def test_mrc_round_trip_keeps_pixels_and_pixel_size(tmp_path: Path) -> None:
    img = _noise()
    path = write_mrc(tmp_path / "a.mrc", img, pixel_size=1.34)
    mic = read_micrograph(path)
    np.testing.assert_array_equal(mic.image, img)
    assert mic.name == "a"
    assert mic.shape == (32, 40)
    assert mic.pixel_size == pytest.approx(1.34, rel=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mrc"]


def test_mrc_without_pixel_size_gives_none(tmp_path: Path) -> None:
    with mrcfile.new(tmp_path / "b.mrc") as mrc:
        mrc.set_data(_noise().astype(np.int16))
    mic = read_micrograph(tmp_path / "b.mrc")
    assert mic.pixel_size is None
    assert mic.image.dtype == np.float32


def test_singleton_stack_is_squeezed(tmp_path: Path) -> None:
    with mrcfile.new(tmp_path / "one.mrcs") as mrc:
        mrc.set_data(_noise()[None])
    assert read_micrograph(tmp_path / "one.mrcs").image.shape == (32, 40)


def test_stack_is_rejected(tmp_path: Path) -> None:
    with mrcfile.new(tmp_path / "stack.mrcs") as mrc:
        mrc.set_data(np.stack([_noise(seed=i) for i in range(3)]))
    with pytest.raises(InputError, match=r"stack\.mrcs.*stack of 3 images"):
        read_micrograph(tmp_path / "stack.mrcs")


def test_truncated_mrc(tmp_path: Path) -> None:
    write_mrc(tmp_path / "full.mrc", _noise(64, 64))
    data = (tmp_path / "full.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mrc.*truncated"):
        read_micrograph(tmp_path / "cut.mrc")


@pytest.mark.parametrize("lines", [3, 300])
def test_text_file_named_mrc(tmp_path: Path, lines: int) -> None:
    path = tmp_path / "notes.mrc"
    path.write_text("this is not a micrograph\n" * lines)
    with pytest.raises(InputError, match=r"notes\.mrc.*not .*MRC"):
        read_micrograph(path)


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_nan_image(tmp_path: Path) -> None:
    img = _noise()
    img[3, 4] = np.nan
    img[5, 6] = np.inf
    write_mrc(tmp_path / "nan.mrc", img)
    with pytest.raises(InputError, match=r"nan\.mrc.*2 pixels are NaN or infinite"):
        read_micrograph(tmp_path / "nan.mrc")


def test_constant_image(tmp_path: Path) -> None:
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(InputError, match=r"flat\.png.*constant \(all pixels = 7\)"):
        read_micrograph(tmp_path / "flat.png")


def test_tiny_image(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "tiny.tif", _noise(8, 40))
    with pytest.raises(InputError, match=r"tiny\.tif.*40x8"):
        read_micrograph(tmp_path / "tiny.tif")


def test_missing_directory_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.mrc.*no such file"):
        read_micrograph(tmp_path / "nope.mrc")
    with pytest.raises(InputError, match=rf"{tmp_path.name}.*directory"):
        read_micrograph(tmp_path)
    (tmp_path / "x.dm4").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match=r"x\.dm4.*unknown micrograph type"):
        read_micrograph(tmp_path / "x.dm4")


def test_corrupt_png(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 5)
    with pytest.raises(InputError, match=r"bad\.png"):
        read_micrograph(tmp_path / "bad.png")


def test_tiff_variants(tmp_path: Path) -> None:
    img = _noise()
    tifffile.imwrite(tmp_path / "a.tiff", img)
    np.testing.assert_array_equal(read_micrograph(tmp_path / "a.tiff").image, img)
    tifffile.imwrite(tmp_path / "s.tif", np.stack([img, img + 1]))
    with pytest.raises(InputError, match=r"s\.tif.*stack of 2"):
        read_micrograph(tmp_path / "s.tif")
    rgb = (np.random.default_rng(1).random((20, 30, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    got = read_micrograph(tmp_path / "rgb.tif").image
    assert got.shape == (20, 30)
    np.testing.assert_allclose(got, rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114]), atol=1e-3)


def test_png_modes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    gray16 = (rng.random((24, 20)) * 60000).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_micrograph(tmp_path / "g16.png").image, gray16.astype(np.float32))
    rgb = (rng.random((24, 20, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    got = read_micrograph(tmp_path / "rgb.png").image
    assert got.shape == (24, 20) and got.dtype == np.float32
    np.testing.assert_allclose(got, rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114]), atol=1e-3)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg")
    assert read_micrograph(tmp_path / "rgb.jpg").image.shape == (24, 20)


def test_write_png_scales_to_8_bit(tmp_path: Path) -> None:
    arr = np.linspace(-1.0, 1.0, 32 * 16, dtype=np.float32).reshape(16, 32)
    write_png(tmp_path / "o.png", arr)
    back = np.asarray(Image.open(tmp_path / "o.png"))
    assert back.dtype == np.uint8 and back.min() == 0 and back.max() == 255
    write_png(tmp_path / "c.png", arr, vmin=0.0, vmax=0.5)
    back = np.asarray(Image.open(tmp_path / "c.png"))
    assert back[0, 0] == 0 and back[-1, -1] == 255


def test_micrograph_stem() -> None:
    assert micrograph_stem("Falcon_2012_06_12-14_33_35_0.mrc") == "Falcon_2012_06_12-14_33_35_0"
    assert micrograph_stem("a/b/img.png") == "img"
    assert micrograph_stem("C:\\data\\img.TIF") == "img"
    assert micrograph_stem("x.mrc.png") == "x"
    assert micrograph_stem("img.v2") == "img.v2"


# ----------------------------------------------------------------------------- find_micrographs


def test_find_micrographs_mixes_files_dirs_and_globs(tmp_path: Path) -> None:
    d = tmp_path / "mics"
    d.mkdir()
    for name in ("b.mrc", "a.png", "c.tif", "notes.txt"):
        (d / name).write_bytes(b"x")
    (d / "sub").mkdir()
    (d / "sub" / "deep.mrc").write_bytes(b"x")
    other = tmp_path / "z.jpg"
    other.write_bytes(b"x")
    got = find_micrographs([d, str(d / "*.mrc"), other, str(d / "a.png")])
    assert [p.name for p in got] == ["a.png", "b.mrc", "c.tif", "z.jpg"]


def test_find_micrographs_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty.*no micrographs"):
        find_micrographs([empty])
    with pytest.raises(InputError, match=r"\*\.mrc.*matches no micrographs"):
        find_micrographs([str(empty / "*.mrc")])
    with pytest.raises(InputError, match="missing.mrc.*no such file"):
        find_micrographs([tmp_path / "missing.mrc"])
    with pytest.raises(InputError, match="no micrographs given"):
        find_micrographs([])
    (tmp_path / "x.mrc").write_bytes(b"x")
    (tmp_path / "x.png").write_bytes(b"x")
    with pytest.raises(InputError, match="same name stem 'x'"):
        find_micrographs([tmp_path])
    (tmp_path / "labels.star").write_text("")
    with pytest.raises(InputError, match=r"labels\.star.*unknown micrograph type"):
        find_micrographs([tmp_path / "labels.star"])


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("new, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_replaces_and_creates_dirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    with atomic_write(target, "wb") as fh:
        fh.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic_save_bytes(target, b"2")
    assert target.read_bytes() == b"2"
    atomic_write_text(target, "text")
    assert target.read_text() == "text"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_write_json_converts_numpy(tmp_path: Path) -> None:
    path = atomic_write_json(
        tmp_path / "m.json", {"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(2), "p": tmp_path}
    )
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": 2, "p": str(tmp_path)}


def test_atomic_torch_save(tmp_path: Path) -> None:
    import torch

    path = atomic_torch_save({"w": torch.ones(2)}, tmp_path / "ck" / "model.pt")
    assert torch.equal(torch.load(path)["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_atomic_write_output_errors(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputError, match="adir.*is a directory"):
        atomic_write_text(tmp_path / "adir", "x")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile"):
        atomic_write_text(tmp_path / "afile" / "out.txt", "x")
    with pytest.raises(OutputError, match="afile.*not a directory"):
        ensure_out_dir(tmp_path / "afile")
    with pytest.raises(OutputError, match="afile"):
        ensure_out_dir(tmp_path / "afile" / "sub")


def test_ensure_out_dir(tmp_path: Path) -> None:
    out = ensure_out_dir(tmp_path / "x" / "y")
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_ensure_out_dir_not_writable(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="ro.*not writable"):
            ensure_out_dir(ro)
        with pytest.raises(OutputError, match="ro"):
            atomic_write_text(ro / "f.txt", "x")
    finally:
        ro.chmod(0o700)
