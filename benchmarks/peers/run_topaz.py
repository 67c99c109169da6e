#!/usr/bin/env python3
"""Run Topaz (topaz-em 0.3.20) as a benchmark peer: preprocess, train, extract.

Topaz lives in its own venv (``benchmarks/peers/.venv-topaz``, made by
``setup_topaz.sh``) and is driven here purely as an external program through
subprocesses, so this file runs with any Python 3.9+ (standard library only;
``starfile`` is used for STAR labels if importable, otherwise the Topaz venv's
Python reads them).  It is not part of, nor a dependency of, cryopick.

Pipeline (all on CPU, ``--device -1``):

1. ``topaz preprocess -s DOWNSAMPLE`` on the training and on the test micrographs
   (Fourier-crop downsampling + GMM normalisation, writes ``.mrc``).  PNG / JPEG /
   TIFF inputs are first converted to float32 grayscale MRC by the Topaz venv's
   Python, because Topaz 0.3.20's own readers for them fail under numpy 2.
2. Labels (original pixels) -> Topaz coordinate table ``image_name x_coord y_coord``
   in downsampled pixels.
3. ``topaz train --method GE-binomial -r TRAIN_RADIUS --num-epochs E --epoch-size U``
   (E * U parameter updates of ``--minibatch-size`` crops); the model of the last
   epoch is used.
4. ``topaz extract -r EXTRACT_RADIUS -t THRESHOLD`` on the test micrographs; the
   picks are mapped back to original pixels by the exact per-axis Fourier-crop
   scale (original size / downsampled size; = ``DOWNSAMPLE`` when it divides the
   size, which is what ``topaz extract -x`` assumes).

Known Topaz 0.3.20 defect handled here (``pi_fix=True``, the default):
``topaz.stats.pixels_given_radius`` builds a 3-D meshgrid even for 2-D data, so
the number of pixels per particle -- and with it ``pi`` (from ``-n``) and the
observed positive fraction -- is overstated by a factor ``2r+1`` (7x for the
default ``-r 3``).  GE-binomial then constrains the unlabeled
positive fraction to ``(2r+1)`` times the intended value.  With ``pi_fix`` we do
not pass ``-n`` but ``--pi`` chosen so that Topaz's own arithmetic
(``pi - p_observed``) yields the intended unlabeled positive fraction
``(N_expected - N_labelled) * disk_pixels / total_pixels``.  ``pi_fix=False``
reproduces stock ``topaz train -n`` behaviour.

Seeding: ``topaz`` has no seed option; with ``seed`` set, each step runs the Topaz
entry point (``topaz.main:main``, exactly what the ``topaz`` script runs) from the
venv's Python after seeding ``random``, ``numpy`` (including the otherwise
unseedable ``np.random.default_rng()`` calls Topaz makes) and ``torch``; results
are then reproducible run to run on the same machine.

Outputs (``run_topaz`` return value)::

    {"picks": {stem: (xy (N,2) float array in original pixels, scores (N,))},
     "train_seconds": preprocess(train) + train wall time,
     "pick_seconds_per_mic": (preprocess(test) + extract) wall time / n_test,
     "peak_rss_mb": max peak RSS of the Topaz child processes,
     "timings": {step: {"seconds", "cpu_seconds", "peak_rss_mb", ...}},
     "model": path, ...}

Wall times are sensitive to other load on the machine; ``cpu_seconds`` (user +
system time of the Topaz process) is recorded too, but inflates as well when the
cores are oversubscribed (torch's OpenMP threads spin): time on an idle machine.

Every ``topaz`` call pays ~5-6 s of Python/torch start-up; it is included in the
timings above (one call per step, not per micrograph).

CLI::

    python benchmarks/peers/run_topaz.py --train-mics m1.mrc m2.mrc \\
        --train-labels labels.star --test-mics t1.mrc --out OUT \\
        --radius 16 --downsample 2 --expected-per-mic 70 \\
        --num-epochs 2 --epoch-size 50 --seed 0

writes ``OUT/picks.tsv`` (``image_name x_coord y_coord score``, original pixels,
image_name = micrograph file stem), ``OUT/timing.json`` and ``OUT/work/`` (logs,
preprocessed images, model).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
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
                "from run_topaz import _star_to_rows;"
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


def run_topaz(
    train_mics,
    train_labels: dict,
    test_mics,
    workdir,
    particle_radius_px: float,
    downsample: int = 1,
    expected_per_mic: float | None = None,
    *,
    num_epochs: int = 5,
    epoch_size: int = 100,
    minibatch_size: int = 256,
    train_radius: int = 3,
    extract_radius: int | None = None,
    threshold: float = -10.0,
    method: str = "GE-binomial",
    pi_fix: bool = True,
    learning_rate: float | None = None,
    model: str = "resnet8",
    units: int = 32,
    pretrained: bool = True,
    num_threads: int = 0,
    num_workers: int = 0,
    seed: int | None = 0,
    topaz_venv=None,
) -> dict:
    """Train Topaz on ``train_mics``/``train_labels`` and pick ``test_mics``.

    Parameters
    ----------
    train_mics, test_mics : micrograph paths (.mrc/.png/.jpg/.tif); stems unique.
    train_labels : {micrograph stem: (N, 2) xy in original pixels}; training
        micrographs without an entry are used as fully unlabeled.
    workdir : scratch directory (preprocessed images, coordinate tables, model,
        logs of every Topaz call); recreated per step.
    particle_radius_px : particle radius in original pixels; sets the extraction
        (non-maximum-suppression) radius unless ``extract_radius`` is given.
    downsample : ``topaz preprocess -s`` factor (integer).
    expected_per_mic : expected particles per micrograph (Topaz ``-n``); default:
        mean number of labels per training micrograph.
    num_epochs, epoch_size, minibatch_size : ``num_epochs * epoch_size``
        parameter updates of ``minibatch_size`` crops (Topaz defaults: 10, 1000,
        256; ~1.2-1.6 s per update on 2 idle CPU cores).
    train_radius : Topaz ``--radius`` (downsampled px) around labels counted as
        positive; Topaz's default and recommendation is 3.
    extract_radius : ``topaz extract -r`` in downsampled px; default
        ``round(particle_radius_px / downsample)``.
    threshold : ``topaz extract -t`` (log-likelihood ratio); -10 keeps nearly
        every local maximum so that precision-recall curves can be computed.
    pi_fix : compensate the Topaz 0.3.20 2-D pixel-count defect (module doc).
    pretrained : start from Topaz's shipped pretrained weights when the model
        configuration has them (Topaz's default: resnet8 with 32 units has).
    num_threads : torch threads (``-j``; 0 = torch default = all cores).
    seed : seeds random/numpy/torch in every Topaz process (None: unseeded).

    Returns a dict with ``picks``, ``train_seconds``, ``pick_seconds_per_mic``,
    ``peak_rss_mb`` and details (``timings``, ``model``, ``pi``, ``method_used``,
    ``n_train_labels``, ``workdir``).
    """
    tz = _Topaz(Path(topaz_venv) if topaz_venv else DEFAULT_VENV, seed)
    downsample = int(downsample)
    if downsample < 1:
        raise ValueError("downsample must be >= 1")
    train_mics = _check_mics(train_mics, "train_mics")
    test_mics = _check_mics(test_mics, "test_mics")
    if not train_mics or not test_mics:
        raise ValueError("need at least one training and one test micrograph")
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    timings: dict[str, dict] = {}

    train_stems = {m.stem for m in train_mics}
    unknown = sorted(set(train_labels) - train_stems)
    if unknown:
        print(f"[run_topaz] ignoring labels of {len(unknown)} micrographs not in train_mics "
              f"(e.g. {unknown[:3]})", file=sys.stderr)
    n_labels = {s: len(train_labels.get(s, ())) for s in train_stems}
    n_lab = sum(n_labels.values())
    if n_lab == 0:
        raise ValueError("no training labels for the training micrographs")
    if expected_per_mic is None:
        expected_per_mic = n_lab / len(train_mics)

    # 1. preprocess the training micrographs
    timings["preprocess_train"], pre_train, full_train = _preprocess(
        tz, train_mics, work / "pre_train", downsample, num_workers, num_threads,
        logs / "preprocess_train.log")

    # 2. coordinates in downsampled pixels
    targets = work / "train_targets.txt"
    total_px = 0
    with open(targets, "w") as f:
        f.write("image_name\tx_coord\ty_coord\n")
        for m in train_mics:
            sx, sy = _scales(full_train[m.stem], pre_train[m.stem])
            ny_d, nx_d = mrc_shape(pre_train[m.stem])
            total_px += nx_d * ny_d
            for x, y in train_labels.get(m.stem, ()):
                f.write(f"{m.stem}\t{int(round(x / sx))}\t{int(round(y / sy))}\n")

    # 3. train
    r_train = int(train_radius)
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir()
    train_args = [
        "train", "-d", -1, "--num-workers", num_workers, "-j", num_threads,
        "--train-images", work / "pre_train", "--train-targets", targets,
        "--method", method, "-r", r_train,
        "--num-epochs", num_epochs, "--epoch-size", epoch_size,
        "--minibatch-size", minibatch_size,
        "-m", model, "--units", units,
        "--pretrained" if pretrained else "--no-pretrained",
        "--save-prefix", model_dir / "model", "-o", work / "train_curve.tsv",
    ]
    if learning_rate is not None:
        train_args += ["--learning-rate", learning_rate]
    p_true = disk_pixels(r_train)
    if pi_fix:
        # Topaz 0.3.20 counts (2r+1) * p_true pixels per particle in 2-D, both for
        # pi (from -n) and for p_observed; GE uses pi - p_observed.  Choose --pi so
        # that pi - p_observed(Topaz) = (N_expected - N_labelled) * p_true / total.
        p_topaz = (2 * r_train + 1) * p_true
        n_exp = expected_per_mic * len(train_mics)
        pi = (n_lab * p_topaz + max(n_exp - n_lab, 0.0) * p_true) / total_px
        if pi >= 1:
            raise ValueError(f"pi={pi:.3f} >= 1: expected_per_mic / train_radius too large")
        train_args += ["--pi", repr(pi)]
    else:
        pi = None
        train_args += ["-n", expected_per_mic]
    dt, rss, cpu = tz.run(logs / "train.log", *train_args)
    timings["train"] = {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss,
                        "updates": int(num_epochs) * int(epoch_size)}
    train_log = (logs / "train.log").read_text(errors="replace")
    method_used = "PN" if "setting method to PN" in train_log else method
    if method_used != method:
        print(f"[run_topaz] Topaz fell back to PN (expected particles <= labelled); "
              f"see {logs / 'train.log'}", file=sys.stderr)
    saved = sorted(glob.glob(str(model_dir / "model_epoch*.sav")),
                   key=lambda p: int(re.search(r"epoch(\d+)\.sav$", p).group(1)))
    if not saved:
        raise TopazError(f"topaz train saved no model; see {logs / 'train.log'}")
    model_path = Path(saved[-1])

    # 4. preprocess + extract the test micrographs
    timings["preprocess_test"], pre_test, full_test = _preprocess(
        tz, test_mics, work / "pre_test", downsample, num_workers, num_threads,
        logs / "preprocess_test.log")
    r_ext = int(extract_radius) if extract_radius is not None else max(
        1, int(round(particle_radius_px / downsample)))
    raw = work / "extract_downsampled.tsv"
    dt, rss, cpu = tz.run(
        logs / "extract.log", "extract", "-m", model_path, "-r", r_ext, "-t", threshold,
        "-d", -1, "-j", num_threads, "--num-workers", num_workers, "-o", raw,
        *[pre_test[m.stem] for m in test_mics],
    )
    timings["extract"] = {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss, "radius": r_ext}

    # 5. parse, back to original pixels
    rows: dict[str, list] = {m.stem: [] for m in test_mics}
    with open(raw) as f:
        header = f.readline().rstrip("\n").split("\t")
        i_n, i_x, i_y, i_s = (header.index(c) for c in ("image_name", "x_coord", "y_coord", "score"))
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            rows.setdefault(parts[i_n], []).append(
                (float(parts[i_x]), float(parts[i_y]), float(parts[i_s])))
    picks = {}
    for m in test_mics:
        sx, sy = _scales(full_test[m.stem], pre_test[m.stem])
        r = rows.get(m.stem, [])
        picks[m.stem] = (_array([(x * sx, y * sy) for x, y, _ in r], 2),
                         _array([s for _, _, s in r], 1))

    train_seconds = timings["preprocess_train"]["seconds"] + timings["train"]["seconds"]
    pick_seconds = timings["preprocess_test"]["seconds"] + timings["extract"]["seconds"]
    return {
        "picks": picks,
        "train_seconds": train_seconds,
        "pick_seconds_per_mic": pick_seconds / len(test_mics),
        "peak_rss_mb": max(t["peak_rss_mb"] for t in timings.values()),
        "timings": timings,
        "model": str(model_path),
        "pi": pi,
        "pixels_per_particle": p_true,
        "expected_per_mic": float(expected_per_mic),
        "n_train_labels": n_lab,
        "method_used": method_used,
        "workdir": str(work),
    }


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------

def _expand(paths) -> list[Path]:
    out = []
    for p in paths:
        hits = sorted(glob.glob(p))
        out += [Path(h) for h in hits] if hits else [Path(p)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--train-mics", nargs="+", required=True, help="training micrographs (globs ok)")
    ap.add_argument("--train-labels", required=True, type=Path,
                    help="labels: RELION .star, JSON {mic: [[x,y],...]} or Topaz .txt table")
    ap.add_argument("--test-mics", nargs="+", required=True, help="micrographs to pick (globs ok)")
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default OUT/work)")
    ap.add_argument("--radius", type=float, required=True, help="particle radius, original px")
    ap.add_argument("--downsample", type=int, default=1)
    ap.add_argument("--expected-per-mic", type=float, help="Topaz -n (default: mean labels per mic)")
    ap.add_argument("--num-epochs", type=int, default=5)
    ap.add_argument("--epoch-size", type=int, default=100, help="updates per epoch")
    ap.add_argument("--minibatch-size", type=int, default=256)
    ap.add_argument("--train-radius", type=int, default=3, help="Topaz train -r, downsampled px")
    ap.add_argument("--extract-radius", type=int, help="Topaz extract -r, downsampled px "
                    "(default radius/downsample)")
    ap.add_argument("--threshold", type=float, default=-10.0)
    ap.add_argument("--method", default="GE-binomial", choices=["GE-binomial", "GE-KL", "PN", "PU"])
    ap.add_argument("--no-pi-fix", action="store_true", help="stock `topaz train -n` behaviour")
    ap.add_argument("--learning-rate", type=float)
    ap.add_argument("--no-pretrained", action="store_true")
    ap.add_argument("--num-threads", type=int, default=0)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="-1: unseeded")
    ap.add_argument("--topaz-venv", type=Path, default=DEFAULT_VENV)
    a = ap.parse_args(argv)

    labels = read_labels(a.train_labels, a.topaz_venv)
    res = run_topaz(
        _expand(a.train_mics), labels, _expand(a.test_mics), a.workdir or a.out / "work",
        a.radius, a.downsample, a.expected_per_mic,
        num_epochs=a.num_epochs, epoch_size=a.epoch_size, minibatch_size=a.minibatch_size,
        train_radius=a.train_radius, extract_radius=a.extract_radius, threshold=a.threshold,
        method=a.method, pi_fix=not a.no_pi_fix, learning_rate=a.learning_rate,
        pretrained=not a.no_pretrained, num_threads=a.num_threads, num_workers=a.num_workers,
        seed=None if a.seed < 0 else a.seed, topaz_venv=a.topaz_venv,
    )
    a.out.mkdir(parents=True, exist_ok=True)
    write_picks_tsv(res["picks"], a.out / "picks.tsv")
    info = {k: v for k, v in res.items() if k != "picks"}
    info["n_picks"] = {k: int(len(v[1])) for k, v in res["picks"].items()}
    (a.out / "timing.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: info[k] for k in ("train_seconds", "pick_seconds_per_mic", "peak_rss_mb",
                                           "method_used")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
