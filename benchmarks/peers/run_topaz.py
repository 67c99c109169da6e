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
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from topaz_exec import (  # noqa: E402
    DEFAULT_VENV, TopazError, _array, _check_mics, _preprocess, _scales, _Topaz, disk_pixels,
    mrc_shape, read_labels, write_picks_tsv,
)


def _write_targets(path: Path, train_mics, train_labels: dict, pre: dict, full: dict) -> int:
    """Topaz coordinate table in downsampled pixels; returns the downsampled pixels in all."""
    total_px = 0
    with open(path, "w") as f:
        f.write("image_name\tx_coord\ty_coord\n")
        for m in train_mics:
            sx, sy = _scales(full[m.stem], pre[m.stem])
            ny_d, nx_d = mrc_shape(pre[m.stem])
            total_px += nx_d * ny_d
            for x, y in train_labels.get(m.stem, ()):
                f.write(f"{m.stem}\t{int(round(x / sx))}\t{int(round(y / sy))}\n")
    return total_px


def _prior_args(pi_fix: bool, r_train: int, n_lab: int, n_exp: float, total_px: int,
                expected_per_mic: float) -> tuple[list, float | None]:
    """``--pi`` (compensating the 2-D pixel-count defect, module doc) or stock ``-n``."""
    if not pi_fix:
        return ["-n", expected_per_mic], None
    # Topaz 0.3.20 counts (2r+1) * p_true pixels per particle in 2-D, both for
    # pi (from -n) and for p_observed; GE uses pi - p_observed.  Choose --pi so
    # that pi - p_observed(Topaz) = (N_expected - N_labelled) * p_true / total.
    p_true = disk_pixels(r_train)
    pi = (n_lab * (2 * r_train + 1) * p_true + max(n_exp - n_lab, 0.0) * p_true) / total_px
    if pi >= 1:
        raise ValueError(f"pi={pi:.3f} >= 1: expected_per_mic / train_radius too large")
    return ["--pi", repr(pi)], pi


def _train(tz: _Topaz, work: Path, args: list, method: str, updates: int) -> tuple[dict, Path, str]:
    """``topaz train``; returns (timing, the last epoch's model, the method Topaz used)."""
    logs = work / "logs"
    dt, rss, cpu = tz.run(logs / "train.log", "train", *args)
    timing = {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss, "updates": updates}
    method_used = "PN" if "setting method to PN" in (logs / "train.log").read_text(errors="replace") \
        else method
    if method_used != method:
        print(f"[run_topaz] Topaz fell back to PN (expected particles <= labelled); "
              f"see {logs / 'train.log'}", file=sys.stderr)
    saved = sorted(glob.glob(str(work / "model" / "model_epoch*.sav")),
                   key=lambda p: int(re.search(r"epoch(\d+)\.sav$", p).group(1)))
    if not saved:
        raise TopazError(f"topaz train saved no model; see {logs / 'train.log'}")
    return timing, Path(saved[-1]), method_used


def _read_extract(raw: Path, test_mics, pre: dict, full: dict) -> dict:
    """``topaz extract``'s table -> {stem: (xy in original pixels, scores)}."""
    rows: dict[str, list] = {m.stem: [] for m in test_mics}
    with open(raw) as f:
        header = f.readline().rstrip("\n").split("\t")
        i_n, i_x, i_y, i_s = (header.index(c) for c in ("image_name", "x_coord", "y_coord", "score"))
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 4:
                rows.setdefault(parts[i_n], []).append(
                    (float(parts[i_x]), float(parts[i_y]), float(parts[i_s])))
    picks = {}
    for m in test_mics:
        sx, sy = _scales(full[m.stem], pre[m.stem])
        r = rows.get(m.stem, [])
        picks[m.stem] = (_array([(x * sx, y * sy) for x, y, _ in r], 2),
                         _array([s for _, _, s in r], 1))
    return picks


def _extract(tz: _Topaz, work: Path, test_mics, model_path: Path, r_ext: int, st: TopazSettings,
             downsample: int, timings: dict) -> dict:
    """``topaz preprocess`` + ``extract`` on the test micrographs (timings filled in); picks."""
    logs = work / "logs"
    timings["preprocess_test"], pre, full = _preprocess(
        tz, test_mics, work / "pre_test", downsample, st.num_workers, st.num_threads,
        logs / "preprocess_test.log")
    raw = work / "extract_downsampled.tsv"
    dt, rss, cpu = tz.run(
        logs / "extract.log", "extract", "-m", model_path, "-r", r_ext, "-t", st.threshold,
        "-d", -1, "-j", st.num_threads, "--num-workers", st.num_workers, "-o", raw,
        *[pre[m.stem] for m in test_mics],
    )
    timings["extract"] = {"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss, "radius": r_ext}
    return _read_extract(raw, test_mics, pre, full)


def _count_labels(train_mics, train_labels: dict) -> int:
    stems = {m.stem for m in train_mics}
    unknown = sorted(set(train_labels) - stems)
    if unknown:
        print(f"[run_topaz] ignoring labels of {len(unknown)} micrographs not in train_mics "
              f"(e.g. {unknown[:3]})", file=sys.stderr)
    n_lab = sum(len(train_labels.get(s, ())) for s in stems)
    if n_lab == 0:
        raise ValueError("no training labels for the training micrographs")
    return n_lab


@dataclass
class TopazSettings:
    """How Topaz trains and extracts (defaults: this benchmark's; Topaz's own in brackets).

    ``num_epochs * epoch_size`` parameter updates of ``minibatch_size`` crops [10, 1000,
    256; ~1.2-1.6 s per update on 2 idle CPU cores]. ``train_radius``: ``topaz train -r``
    in downsampled px around each label counted as positive [3, also recommended].
    ``extract_radius``: ``topaz extract -r`` in downsampled px (None: the particle radius
    / downsample). ``threshold``: ``extract -t`` (log-likelihood ratio); -10 keeps nearly
    every local maximum so that precision-recall curves can be computed. ``pi_fix``:
    compensate the 2-D pixel-count defect (module doc). ``pretrained``: start from
    Topaz's shipped weights where the model has them (resnet8 with 32 units has).
    ``num_threads``: ``-j`` (0: torch's default, all cores). ``seed``: seeds random /
    numpy / torch in every Topaz process (None: unseeded).
    """

    num_epochs: int = 5
    epoch_size: int = 100
    minibatch_size: int = 256
    train_radius: int = 3
    extract_radius: int | None = None
    threshold: float = -10.0
    method: str = "GE-binomial"
    pi_fix: bool = True
    learning_rate: float | None = None
    model: str = "resnet8"
    units: int = 32
    pretrained: bool = True
    num_threads: int = 0
    num_workers: int = 0
    seed: int | None = 0


def _train_args(work: Path, targets: Path, st: TopazSettings, prior: list) -> list:
    return [
        "-d", -1, "--num-workers", st.num_workers, "-j", st.num_threads,
        "--train-images", work / "pre_train", "--train-targets", targets,
        "--method", st.method, "-r", int(st.train_radius),
        "--num-epochs", st.num_epochs, "--epoch-size", st.epoch_size,
        "--minibatch-size", st.minibatch_size, "-m", st.model, "--units", st.units,
        "--pretrained" if st.pretrained else "--no-pretrained",
        "--save-prefix", work / "model" / "model", "-o", work / "train_curve.tsv", *prior,
    ] + (["--learning-rate", st.learning_rate] if st.learning_rate is not None else [])


def run_topaz(train_mics, train_labels: dict, test_mics, workdir, particle_radius_px: float,
              downsample: int = 1, expected_per_mic: float | None = None,
              settings: TopazSettings | None = None, topaz_venv=None) -> dict:
    """Train Topaz on ``train_mics`` / ``train_labels`` and pick ``test_mics``.

    ``train_labels``: {micrograph stem: (N, 2) xy in original pixels}; training
    micrographs without an entry are used as fully unlabelled. Micrograph stems are
    unique (.mrc / .png / .jpg / .tif). ``workdir`` holds the preprocessed images,
    coordinate tables, model and the log of every Topaz call. ``particle_radius_px``
    (original pixels) sets the extraction radius unless the settings give one;
    ``downsample`` is ``topaz preprocess -s``; ``expected_per_mic`` is Topaz's ``-n``
    (default: the mean number of labels per training micrograph).

    Returns ``picks``, ``train_seconds``, ``pick_seconds_per_mic``, ``peak_rss_mb`` and
    details (``timings``, ``model``, ``pi``, ``method_used``, ``n_train_labels``, ...).
    """
    st = settings or TopazSettings()
    tz = _Topaz(Path(topaz_venv) if topaz_venv else DEFAULT_VENV, st.seed)
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
    n_lab = _count_labels(train_mics, train_labels)
    if expected_per_mic is None:
        expected_per_mic = n_lab / len(train_mics)
    timings: dict[str, dict] = {}
    timings["preprocess_train"], pre_train, full_train = _preprocess(
        tz, train_mics, work / "pre_train", downsample, st.num_workers, st.num_threads,
        logs / "preprocess_train.log")
    targets = work / "train_targets.txt"
    total_px = _write_targets(targets, train_mics, train_labels, pre_train, full_train)

    r_train = int(st.train_radius)
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir()
    prior, pi = _prior_args(st.pi_fix, r_train, n_lab, expected_per_mic * len(train_mics), total_px,
                            expected_per_mic)
    timings["train"], model_path, method_used = _train(
        tz, work, _train_args(work, targets, st, prior), st.method,
        int(st.num_epochs) * int(st.epoch_size))
    r_ext = int(st.extract_radius) if st.extract_radius is not None else max(
        1, int(round(particle_radius_px / downsample)))
    picks = _extract(tz, work, test_mics, model_path, r_ext, st, downsample, timings)
    pick_seconds = timings["preprocess_test"]["seconds"] + timings["extract"]["seconds"]
    return {
        "picks": picks,
        "train_seconds": timings["preprocess_train"]["seconds"] + timings["train"]["seconds"],
        "pick_seconds_per_mic": pick_seconds / len(test_mics),
        "peak_rss_mb": max(t["peak_rss_mb"] for t in timings.values()),
        "timings": timings,
        "model": str(model_path),
        "pi": pi,
        "pixels_per_particle": disk_pixels(r_train),
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
    settings = TopazSettings(
        num_epochs=a.num_epochs, epoch_size=a.epoch_size, minibatch_size=a.minibatch_size,
        train_radius=a.train_radius, extract_radius=a.extract_radius, threshold=a.threshold,
        method=a.method, pi_fix=not a.no_pi_fix, learning_rate=a.learning_rate,
        pretrained=not a.no_pretrained, num_threads=a.num_threads, num_workers=a.num_workers,
        seed=None if a.seed < 0 else a.seed)
    res = run_topaz(_expand(a.train_mics), labels, _expand(a.test_mics), a.workdir or a.out / "work",
                    a.radius, a.downsample, a.expected_per_mic, settings, a.topaz_venv)
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
