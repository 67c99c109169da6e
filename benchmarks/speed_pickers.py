"""Picking speed side by side: cryopick (split by stage), Topaz and DoG on the same micrographs, in one run.

For each picker, on the same micrographs and with the same number of threads:

- ``cryopick``: the whole ``cryopick pick --verbose`` process (wall incl. start-up, amortised per
  micrograph; peak RSS), with the per-stage split the picker times itself (``pick_summary.json``'s
  ``stage_seconds``: read, preprocess, network, peaks, write);
- ablation: one process per variant of the picker (the straightforward path, then each speed-up
  added), timing ``Picker.pick_file`` per micrograph after one warm-up micrograph, and checking that
  the picks are those of the straightforward path (coordinates equal, max score difference);
- ``topaz``: ``topaz preprocess -s DS`` + ``topaz extract`` (each its own process, as Topaz is run),
  the PNG -> MRC conversion Topaz 0.3.20 needs under numpy 2 reported apart;
- ``dog``: benchmarks/peers/dog_picker.py (one process);
- ``--big MRC``: ``cryopick pick`` on one large micrograph under a pseudo-terminal (so its tqdm tile bar
  shows; the last bar line is kept), with its peak RSS and wall.

Peak RSS is the child's ``ru_maxrss`` (``os.wait4``). Writes ``--out``.json and .md.

usage:
  python benchmarks/speed_pickers.py --model M.pt --mics '../shared/data/cryoppp-10947/test/images/*.png' \\
      --radius 29.85 --threads 2 --big /tmp/big_10000.mrc --out benchmarks/results/speed_2026-12-02
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE / "peers"))

VARIANTS = ("straightforward", "fold", "fold+nhwc", "fold+nhwc+malloc", "fold+nhwc+malloc+bf16")


def run_timed(cmd: list[str], threads: int, log: Path, tty: bool = False) -> dict:
    """Run ``cmd`` (output to ``log``); wall s, CPU s and peak RSS MB of the child."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        if tty:  # stdout and stderr on a pseudo-terminal: the child draws its tqdm bars, copied into the log
            import pty
            import threading

            import fcntl
            import struct
            import termios

            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 0 columns: tqdm draws nothing
            p = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
            os.close(slave)
            copier = threading.Thread(target=_copy_pty, args=(master, fh))
            copier.start()
        else:
            p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if tty:
            copier.join()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise RuntimeError(f"{cmd[0]} failed ({rc}); see {log}:\n{Path(log).read_text(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}


def _copy_pty(master: int, fh) -> None:
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        fh.write(chunk)
    os.close(master)


# --------------------------------------------------------------------------- cryopick


def bench_cryopick(mics: list[str], model: str, threads: int, work: Path, tag: str = "set") -> dict:
    out = work / f"cryopick_{tag}"
    cmd = [str(BIN / "cryopick"), "pick", "--model", model, "--out", str(out), "--overwrite", "--verbose",
           "--device", "cpu", *mics]
    r = run_timed(cmd, threads, work / f"cryopick_{tag}.log")
    s = json.loads((out / "pick_summary.json").read_text())
    n = s["n_micrographs"]
    stages = {k: v / n for k, v in s["stage_seconds"].items()}
    return {**r, "n_micrographs": n, "n_picks": s["n_picks"], "process_s_per_mic": r["wall_s"] / n,
            "in_process_s_per_mic": s["seconds_per_micrograph"] + stages.get("write", 0.0),
            "stage_s_per_mic": stages, "startup_s": r["wall_s"] - s["seconds"] - s["stage_seconds"].get("write", 0.0)}


def variant_picker(name: str, model: str):
    """A Picker for one ablation variant (the shipped one is ``fold+nhwc+malloc``, what make_picker builds)."""
    import torch

    from cryopick.inference import fuse_for_inference, keep_freed_memory
    from cryopick.picking import Picker

    picker = Picker.from_checkpoints([model], device="cpu")
    if name != "straightforward":
        picker.channels_last = "nhwc" in name
        picker.models = [fuse_for_inference(m, channels_last=picker.channels_last) for m in picker.models]
    if "malloc" in name:
        keep_freed_memory()
    if "bf16" in name:  # bf16 autocast on the CPU: measured, not shipped (scores move by ~1e-3)
        inner = picker.probability_with

        def bf16(image, tta):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return inner(image, tta)

        picker.probability_with = bf16
    return picker


def variant_main(name: str, model: str, mics: list[str], threads: int, out: Path) -> None:
    """One ablation variant, in its own process: seconds per micrograph by stage, and the picks."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    picker = variant_picker(name, model)
    picker.pick_file(mics[0])  # warm-up: allocator growth, kernel selection
    picker.timings, picks, walls = {}, {}, []
    for m in mics:
        t0 = time.perf_counter()
        p = picker.pick_file(m)
        walls.append(time.perf_counter() - t0)
        picks[p.name] = (p.xy.tolist(), p.scores.tolist())
    n = len(mics)
    out.write_text(json.dumps({"variant": name, "s_per_mic": float(np.mean(walls)), "min_s": float(np.min(walls)),
                               "stage_s_per_mic": {k: v / n for k, v in picker.timings.items()}, "picks": picks}))


def same_picks(ref: dict, other: dict) -> dict:
    """Coordinates equal and the largest score difference, against the reference picks."""
    import numpy as np

    equal, worst, n_ref, n_common = True, 0.0, 0, 0
    for k, (xy, sc) in ref.items():
        (xy, sc), (xy2, sc2) = (np.asarray(xy), np.asarray(sc)), (np.asarray(v) for v in other[k])
        n_ref += len(xy)
        n_common += len(set(map(tuple, xy.tolist())) & set(map(tuple, xy2.tolist())))
        if len(xy) != len(xy2):
            equal = False
            continue
        i, j = np.lexsort(xy.T), np.lexsort(xy2.T)  # near-equal scores may swap places in score order
        equal &= bool(np.array_equal(xy[i], xy2[j]))
        worst = max(worst, float(np.max(np.abs(sc[i] - sc2[j]), initial=0.0)))
    return {"coordinates_equal": equal, "max_score_diff": worst, "picks_in_common": f"{n_common}/{n_ref}"}


def bench_ablation(mics: list[str], model: str, threads: int, work: Path, variants) -> list[dict]:
    rows, ref = [], None
    for v in variants:
        path = work / f"variant_{re.sub(r'[^a-z0-9]+', '_', v)}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", v, "--model", model, "--threads",
               str(threads), "--variant-out", str(path), "--mics", *mics]
        r = run_timed(cmd, threads, path.with_suffix(".log"))
        d = json.loads(path.read_text())
        ref = ref or d["picks"]
        rows.append({"variant": v, "s_per_mic": d["s_per_mic"], "min_s": d["min_s"],
                     "stage_s_per_mic": d["stage_s_per_mic"], "peak_rss_mb": r["peak_rss_mb"],
                     **same_picks(ref, d["picks"])})
        print(f"  {v:24s} {d['s_per_mic']:.3f} s/mic (network {d['stage_s_per_mic'].get('network', 0):.3f}) "
              f"{rows[-1]['coordinates_equal']} {rows[-1]['max_score_diff']:.2g}", flush=True)
    return rows


# --------------------------------------------------------------------------- peers


def bench_topaz(mics: list[str], threads: int, work: Path, downsample: int, radius: float, model: str) -> dict:
    from topaz_exec import _CONVERT, _Topaz  # noqa: PLC2701 (the peer runner's own helpers, used as they are)

    tz = _Topaz(HERE / "peers" / ".venv-topaz", None)
    conv, pre = work / "topaz_mrc", work / "topaz_pre"
    conv.mkdir(parents=True, exist_ok=True)
    pre.mkdir(parents=True, exist_ok=True)
    pairs = [a for m in mics for a in (m, str(conv / (Path(m).stem + ".mrc")))]
    t_conv = run_timed([str(tz.python), "-c", _CONVERT, *pairs], threads, work / "topaz_convert.log")
    mrcs = pairs[1::2]
    t_pre = run_timed(tz.cmd("preprocess", "-s", downsample, "-d", -1, "-j", threads, "-o", pre, *mrcs), threads,
                      work / "topaz_preprocess.log")
    t_ext = run_timed(tz.cmd("extract", "-m", model, "-r", max(1, round(radius / downsample)), "-t", -10, "-d", -1,
                             "-j", threads, "-o", work / "topaz_picks.tsv", *sorted(glob.glob(str(pre / "*.mrc")))),
                      threads, work / "topaz_extract.log")
    n = len(mics)
    return {"model": model, "convert": t_conv, "preprocess": t_pre, "extract": t_ext,
            "process_s_per_mic": (t_pre["wall_s"] + t_ext["wall_s"]) / n,
            "with_convert_s_per_mic": (t_conv["wall_s"] + t_pre["wall_s"] + t_ext["wall_s"]) / n,
            "peak_rss_mb": max(t_pre["peak_rss_mb"], t_ext["peak_rss_mb"])}


def bench_dog(mics: list[str], threads: int, work: Path, radius: float) -> dict:
    cmd = [sys.executable, str(HERE / "peers" / "dog_picker.py"), *mics, "--radius", str(radius),
           "--out", str(work / "dog_picks.tsv")]
    r = run_timed(cmd, threads, work / "dog.log")
    return {**r, "process_s_per_mic": r["wall_s"] / len(mics)}


def bench_big(big: str, model: str, threads: int, work: Path) -> dict:
    """cryopick pick on one large micrograph, under a pseudo-terminal: its tqdm bars are drawn."""
    out, log = work / "cryopick_big", work / "cryopick_big.log"
    cmd = [str(BIN / "cryopick"), "pick", "--model", model, "--out", str(out), "--overwrite", "--verbose",
           "--device", "cpu", big]
    r = run_timed(cmd, threads, log, tty=True)
    s = json.loads((out / "pick_summary.json").read_text())
    text = log.read_text(errors="replace")
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)  # cursor moves between the two bars
    bars = [b.strip() for b in re.split(r"[\r\n]", text) if "tile/s" in b or "s/tile" in b]
    import mrcfile

    with mrcfile.mmap(big, permissive=True) as m:
        shape = list(m.data.shape[-2:])
    return {**r, "shape": shape, "n_picks": s["n_picks"], "stage_s": s["stage_seconds"],
            "in_process_s": s["seconds"], "tile_bar_updates": len(bars), "last_tile_bar": bars[-1] if bars else None,
            "tiles": int(re.search(r"/(\d+)", bars[-1]).group(1)) if bars else None}


# --------------------------------------------------------------------------- report


def markdown(res: dict) -> str:
    c, t, d = res["cryopick"], res.get("topaz"), res.get("dog")
    st = c["stage_s_per_mic"]
    lines = [f"# Picking speed, {res['date']}", "", f"Machine: {res['machine']}", "",
             f"Micrographs: {res['n_micrographs']} x {res['micrograph_shape']} ({' '.join(res['mics'])}), model "
             f"{res['model_desc']}; {res['threads']} threads for every picker.", "",
             "| picker | s / micrograph (process wall, amortised) | in-process s / mic | peak RSS MB | vs cryopick |",
             "|---|---|---|---|---|",
             f"| cryopick | {c['process_s_per_mic']:.2f} | {c['in_process_s_per_mic']:.3f} | "
             f"{c['peak_rss_mb']:.0f} | 1 |"]
    if t:
        lines.append(f"| Topaz 0.3.20 ({t['model']}; preprocess + extract) | {t['process_s_per_mic']:.2f} | | "
                     f"{t['peak_rss_mb']:.0f} | {t['process_s_per_mic'] / c['process_s_per_mic']:.1f}x slower |")
    if d:
        lines.append(f"| DoG (benchmarks/peers/dog_picker.py) | {d['process_s_per_mic']:.2f} | | "
                     f"{d['peak_rss_mb']:.0f} | {c['process_s_per_mic'] / d['process_s_per_mic']:.1f}x faster |")
    lines += ["", "cryopick stages, s per micrograph: " + ", ".join(f"{k} {v:.3f}" for k, v in st.items())
              + f"; process start-up (imports, model load) {c['startup_s']:.2f} s once.", ""]
    if res.get("ablation"):
        lines += ["| cryopick variant (in-process, after a warm-up) | s / mic | network s | picks = straightforward | "
                  "max score diff | picks in common |", "|---|---|---|---|---|---|"]
        for a in res["ablation"]:
            lines.append(f"| {a['variant']} | {a['s_per_mic']:.3f} | {a['stage_s_per_mic'].get('network', 0):.3f} | "
                         f"{'yes' if a['coordinates_equal'] else 'no'} | "
                         f"{a['max_score_diff']:.1e} | {a['picks_in_common']} |")
        lines.append("")
    if res.get("big"):
        b = res["big"]
        lines += [f"Large micrograph {b['shape'][0]} x {b['shape'][1]} float32 MRC: peak RSS {b['peak_rss_mb']:.0f} MB,"
                  f" wall {b['wall_s']:.0f} s ({b['tiles']} tiles), {b['n_picks']} picks; stages "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in b["stage_s"].items()) + ".",
                  f"Tile bar (last update of {b['tile_bar_updates']}): `{b['last_tile_bar']}`", ""]
    lines.append(f"Machine state: {res['machine_state']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mics", nargs="+", required=True, help="micrographs or globs")
    p.add_argument("--model", required=True, help="cryopick checkpoint")
    p.add_argument("--model-desc", default="U-Net base 16 (cryopick defaults on CPU)")
    p.add_argument("--radius", type=float, default=29.85, help="particle radius, px (Topaz -r, DoG)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--topaz-model", default="resnet8_u32", help="Topaz model (pretrained name or .sav)")
    p.add_argument("--topaz-downsample", type=int, default=2)
    p.add_argument("--big", help="a large MRC micrograph for the memory figure")
    p.add_argument("--skip", nargs="*", default=[], choices=["topaz", "dog", "ablation"])
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--machine-state", default="")
    p.add_argument("--out", help="results prefix (writes .json and .md)")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--variant-out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    mics = sorted({f for m in a.mics for f in (glob.glob(m) or [m])})
    if a.variant:
        variant_main(a.variant, a.model, mics, a.threads, Path(a.variant_out))
        return 0
    work = Path(tempfile.mkdtemp(prefix="speed_pickers_"))
    from PIL import Image

    res = {"date": time.strftime("%Y-%m-%d"), "threads": a.threads, "mics": a.mics, "n_micrographs": len(mics),
           "micrograph_shape": "x".join(map(str, Image.open(mics[0]).size)) if mics[0].endswith(".png") else "?",
           "model": a.model, "model_desc": a.model_desc, "load_average_start": os.getloadavg()[0],
           "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
           "machine_state": a.machine_state, "work": str(work)}
    print(f"work: {work}", flush=True)
    res["cryopick"] = bench_cryopick(mics, a.model, a.threads, work)
    print(f"cryopick: {res['cryopick']['process_s_per_mic']:.3f} s/mic process, stages {res['cryopick']['stage_s_per_mic']}")
    if "topaz" not in a.skip:
        res["topaz"] = bench_topaz(mics, a.threads, work, a.topaz_downsample, a.radius, a.topaz_model)
        print(f"topaz: {res['topaz']['process_s_per_mic']:.3f} s/mic", flush=True)
    if "dog" not in a.skip:
        res["dog"] = bench_dog(mics, a.threads, work, a.radius)
        print(f"dog: {res['dog']['process_s_per_mic']:.3f} s/mic", flush=True)
    res["cryopick_again"] = bench_cryopick(mics, a.model, a.threads, work, "again")  # drift check
    if "ablation" not in a.skip:
        res["ablation"] = bench_ablation(mics, a.model, a.threads, work, a.variants)
    if a.big:
        res["big"] = bench_big(a.big, a.model, a.threads, work)
        print(f"big: {res['big']['peak_rss_mb']:.0f} MB, {res['big']['wall_s']:.0f} s", flush=True)
    res["load_average_end"] = os.getloadavg()[0]
    md = markdown(res)
    print(md)
    if a.out:
        Path(a.out + ".json").write_text(json.dumps(res, indent=2))
        Path(a.out + ".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
