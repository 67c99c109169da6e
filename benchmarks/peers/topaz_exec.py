"""Driving Topaz 0.3.20 as an external program: its venv, seeded runs, labels, MRC files.

The helpers behind ``run_topaz.py`` (which holds the pipeline and its documentation):
subprocess calls with their wall time, CPU time and peak memory, the seeded entry
point, label readers, PNG/TIFF -> MRC conversion and ``topaz preprocess``.
Standard library only (numpy and starfile when importable).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

try:  # numpy is optional: the return value uses arrays when it is available
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path(os.environ.get("CRYOPICK_TOPAZ_VENV", HERE / ".venv-topaz"))
IMAGE_EXTS = {".mrc", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}

# Runs Topaz's own entry point after seeding the RNGs; argv: seed, topaz args...
# Topaz's training crops also draw from ``np.random.default_rng()`` (fresh OS
# entropy, unaffected by ``numpy.random.seed``), so unseeded ``default_rng()``
# calls are given children of ``SeedSequence(seed)`` in call order.
_SEEDED_BOOT = (
    "import sys, random; s = int(sys.argv[1]); random.seed(s)\n"
    "import numpy; numpy.random.seed(s)\n"
    "_ss = numpy.random.SeedSequence(s); _default_rng = numpy.random.default_rng\n"
    "def _seeded_default_rng(seed=None):\n"
    "    return _default_rng(_ss.spawn(1)[0] if seed is None else seed)\n"
    "numpy.random.default_rng = _seeded_default_rng\n"
    "import torch; torch.manual_seed(s)\n"
    "sys.argv = ['topaz'] + sys.argv[2:]\n"
    "from topaz.main import main; sys.exit(main())\n"
)


class TopazError(RuntimeError):
    pass


# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------

def _array(rows, ncols):
    if _np is None:
        return rows
    a = _np.asarray(rows, dtype=float)
    return a.reshape(-1, ncols) if ncols > 1 else a.reshape(-1)


def mrc_shape(path: Path) -> tuple[int, int]:
    """(ny, nx) from an MRC header (nx, ny, nz are the first three int32)."""
    with open(path, "rb") as f:
        head = f.read(12)
    for order in ("<", ">"):
        nx, ny, nz = struct.unpack(order + "3i", head)
        if 0 < nx < 1 << 20 and 0 < ny < 1 << 20 and 0 < nz < 1 << 20:
            return ny, nx
    raise ValueError(f"not an MRC file: {path}")


def disk_pixels(radius: int) -> int:
    """Pixels (i, j) in [-r, r]^2 with i^2 + j^2 <= r^2 (Topaz's 2-D particle disk)."""
    r = int(radius)
    return sum(1 for i in range(-r, r + 1) for j in range(-r, r + 1) if i * i + j * j <= r * r)


def _run(cmd: list[str], log: Path, env: dict | None = None) -> tuple[float, float, float]:
    """Run ``cmd`` with output to ``log``; return (wall s, peak RSS MB, CPU s).

    ``os.wait4`` gives the rusage of this child (and of its own waited-for
    children) alone, unlike RUSAGE_CHILDREN which accumulates over the process.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = ru.ru_maxrss / 1024.0  # KiB on Linux
    cpu_s = ru.ru_utime + ru.ru_stime
    if p.returncode != 0:
        tail = "".join(open(log, errors="replace").readlines()[-25:])
        raise TopazError(f"{cmd[0]} ... failed (exit {p.returncode}); log {log}:\n{tail}")
    return dt, rss_mb, cpu_s


class _Topaz:
    def __init__(self, venv: Path, seed: int | None):
        self.venv = Path(venv)
        self.seed = seed
        self.exe = self.venv / "bin" / "topaz"
        self.python = self.venv / "bin" / "python"
        if not self.exe.exists():
            raise TopazError(
                f"no Topaz at {self.exe}; run `bash benchmarks/peers/setup_topaz.sh` "
                "(or set CRYOPICK_TOPAZ_VENV)"
            )

    def cmd(self, *args) -> list[str]:
        args = [str(a) for a in args]
        if self.seed is None:
            return [str(self.exe), *args]
        return [str(self.python), "-c", _SEEDED_BOOT, str(int(self.seed)), *args]

    def run(self, log: Path, *args) -> tuple[float, float, float]:
        env = dict(os.environ)
        env.setdefault("PYTHONWARNINGS", "ignore")
        return _run(self.cmd(*args), log, env)


# ----------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------

def _stem(name: str) -> str:
    return Path(str(name)).stem


def _labels_from_table(names, xs, ys) -> dict:
    out: dict[str, list] = {}
    for n, x, y in zip(names, xs, ys):
        out.setdefault(_stem(n), []).append((float(x), float(y)))
    return {k: _array(v, 2) for k, v in out.items()}


def _star_to_rows(path: Path) -> tuple[list, list, list]:
    import starfile  # type: ignore

    data = starfile.read(str(path), always_dict=True)
    for df in data.values():
        if hasattr(df, "columns") and "rlnCoordinateX" in df.columns:
            names = df["rlnMicrographName"] if "rlnMicrographName" in df.columns else None
            if names is None:
                raise ValueError(f"{path}: no rlnMicrographName column")
            return list(map(str, names)), list(df["rlnCoordinateX"]), list(df["rlnCoordinateY"])
    raise ValueError(f"{path}: no data block with rlnCoordinateX/rlnCoordinateY")


def read_labels(path: Path, topaz_venv: Path | None = None) -> dict:
    """Read particle labels -> {micrograph stem: (N, 2) xy array}.

    Formats: RELION ``.star`` (rlnMicrographName, rlnCoordinateX/Y; read with
    ``starfile``), JSON ``{"mic.png": [[x, y], ...]}``, or a Topaz coordinate
    table (``.txt``/``.tsv``: image_name, x_coord, y_coord).
    """
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".json":
        d = json.loads(path.read_text())
        return {_stem(k): _array([tuple(map(float, p[:2])) for p in v], 2) for k, v in d.items()}
    if suf == ".star":
        try:
            names, xs, ys = _star_to_rows(path)
        except ImportError:  # no starfile here: let the Topaz venv's Python read it
            py = Path(topaz_venv or DEFAULT_VENV) / "bin" / "python"
            code = (
                "import sys, json; sys.path.insert(0, sys.argv[2]);"
                "from topaz_exec import _star_to_rows;"
                "print(json.dumps(_star_to_rows(sys.argv[1])))"
            )
            out = subprocess.run(
                [str(py), "-c", code, str(path), str(HERE)],
                check=True, capture_output=True, text=True,
            ).stdout
            names, xs, ys = json.loads(out)
        return _labels_from_table(names, xs, ys)
    # Topaz-style table
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    head = lines[0]
    i_n, i_x, i_y = head.index("image_name"), head.index("x_coord"), head.index("y_coord")
    rows = lines[1:]
    return _labels_from_table([r[i_n] for r in rows], [r[i_x] for r in rows], [r[i_y] for r in rows])


def write_picks_tsv(picks: dict, path: Path) -> None:
    """Topaz-style table: image_name, x_coord, y_coord, score (original pixels)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("image_name\tx_coord\ty_coord\tscore\n")
        for stem, (xy, sc) in picks.items():
            for (x, y), s in zip(xy, sc):
                f.write(f"{stem}\t{float(x):.2f}\t{float(y):.2f}\t{float(s):.6g}\n")


# ----------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------

def _check_mics(mics, what) -> list[Path]:
    mics = [Path(m) for m in mics]
    stems = [m.stem for m in mics]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"{what}: micrograph file stems must be unique, repeated: {dup}")
    for m in mics:
        if not m.exists():
            raise FileNotFoundError(m)
        if m.suffix.lower() not in IMAGE_EXTS:
            raise ValueError(f"{m}: Topaz reads {sorted(IMAGE_EXTS)} only")
    return mics


# Converts PNG/JPEG/TIFF to float32 MRC (grayscale) with the Topaz venv's Python:
# topaz 0.3.20's PNG/JPEG/TIFF readers break under numpy 2 (`topaz preprocess
# x.png` fails with "'PngImageFile' object has no attribute 'astype'").
_CONVERT = (
    "import sys, numpy as np\n"
    "from PIL import Image\n"
    "from topaz import mrc\n"
    "args = sys.argv[1:]\n"
    "for src, dst in zip(args[0::2], args[1::2]):\n"
    "    with Image.open(src) as im:\n"
    "        if im.mode not in ('L', 'I', 'I;16', 'I;16B', 'F'):\n"
    "            im = im.convert('L')\n"
    "        a = np.asarray(im, dtype=np.float32)\n"
    "    with open(dst, 'wb') as f:\n"
    "        mrc.write(f, a[np.newaxis])\n"
)


def _as_mrc(tz: _Topaz, mics, destdir: Path, log: Path) -> tuple[dict, dict]:
    """{stem: MRC path}: MRC inputs as they are, others converted under destdir."""
    out, todo = {}, []
    for m in mics:
        if m.suffix.lower() == ".mrc":
            out[m.stem] = m
        else:
            out[m.stem] = destdir / f"{m.stem}.mrc"
            todo += [str(m), str(out[m.stem])]
    t = {"seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mb": 0.0}
    if todo:
        destdir.mkdir(parents=True, exist_ok=True)
        dt, rss, cpu = _run([str(tz.python), "-c", _CONVERT, *todo], log)
        t = {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss}
    return out, t


def _preprocess(tz: _Topaz, mics, destdir: Path, downsample: int, num_workers: int,
                num_threads: int, log: Path) -> tuple[dict, dict, dict]:
    """Returns (timing, {stem: preprocessed MRC}, {stem: full-size MRC})."""
    if destdir.exists():
        shutil.rmtree(destdir)
    destdir.mkdir(parents=True)
    src, tconv = _as_mrc(tz, mics, destdir.parent / (destdir.name + "_converted"),
                         log.with_name(log.stem + "_convert.log"))
    dt, rss, cpu = tz.run(
        log, "preprocess", "-s", downsample, "-d", -1, "-t", num_workers,
        "-j", num_threads, "-o", destdir, *src.values(),
    )
    out = {}
    for m in mics:
        p = destdir / f"{m.stem}.mrc"
        if not p.exists():
            raise TopazError(f"topaz preprocess wrote no {p}; see {log}")
        out[m.stem] = p
    timing = {"seconds": dt + tconv["seconds"], "cpu_seconds": cpu + tconv["cpu_seconds"],
              "peak_rss_mb": max(rss, tconv["peak_rss_mb"])}
    return timing, out, src


def _scales(full: Path, pre: Path) -> tuple[float, float]:
    """(sx, sy): original px per downsampled px (exact Fourier-crop ratio)."""
    ny_d, nx_d = mrc_shape(pre)
    ny, nx = mrc_shape(full)
    return nx / nx_d, ny / ny_d
