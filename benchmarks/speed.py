"""Speed benchmark: training and picking throughput, peak memory, and achieved FLOP/s.

For each architecture and base width it measures

- training throughput, patches/s: (a) ``model``: forward + loss + backward + AdamW step on
  batches already on the device; (b) ``pipeline``: the same through ``train_one_epoch`` with
  the real ``PatchDataset`` (random windows, CryoEM augmentation) and DataLoader;
- picking throughput, micrographs/s, at 1024x1024 and 4096x4096 px (``Picker.pick_image``:
  downsampling, normalisation, tiled inference, smoothing, peak finding), at a fixed
  downsampling factor (``--downsample``, default 4: the factor for ~110 px particles);
- peak memory of each phase: resident set size (the process's high-water mark VmHWM,
  reset before each phase where Linux allows it, else ``resource``'s ru_maxrss) and, on
  CUDA, ``torch.cuda.max_memory_allocated``;
- achieved FLOP/s: the model's FLOPs counted with ``torch.utils.flop_counter.FlopCounterMode``
  (a training step forward + backward, a picking tile forward) divided by the measured
  time, against the machine's measured peak: a large matmul and a large 3x3 convolution
  timed in the same run (same dtype as the run: fp32, or bf16/fp16 with ``--amp``).

usage:
  python benchmarks/speed.py                      # CPU, widths 8 16 32
  python benchmarks/speed.py --quick              # CI-sized, < 1 min on 2 cores
  python benchmarks/speed.py --device cuda --amp  # GPU, widths 32 64, bf16 autocast, channels-last
  python benchmarks/speed.py --json out.json      # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from cryopick.augment import default_train_transform
from cryopick.config import PickConfig
from cryopick.data import PatchDataset, Preprocessing, Sample
from cryopick.inference import amp_dtype, autocast_context
from cryopick.losses import build_loss
from cryopick.models import build_model, count_parameters
from cryopick.picking import Picker
from cryopick.targets import particle_mask
from cryopick.train import make_grad_scaler, optimizer_step, train_one_epoch

# --------------------------------------------------------------------------- measurement helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peaks(device: torch.device) -> None:
    """Start a phase: reset the RSS high-water mark (Linux: write 5 to clear_refs) and CUDA's peak counter."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_rss_mb() -> float:
    """The process's RSS high-water mark since the last reset (VmHWM), else ru_maxrss (since start)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / (1024 if sys.platform == "darwin" else 1)


def peak_gpu_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def best_time(fn, device: torch.device, repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def machine(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU used"
    return (f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {gpu}, torch {torch.__version__}")


def load_average() -> str:
    """The 1-minute load average: on a shared machine, figures taken under load > cores are low and noisy."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "n/a"


# --------------------------------------------------------------------------- machine peak


def measure_peak(device: torch.device, dtype: torch.dtype, n: int, conv_shapes: list[tuple[int, int, int, int]],
                 channels_last: bool, repeat: int) -> dict:
    """FLOP/s of a large n x n matmul and of 3x3 convolutions (C -> C channels) in ``dtype``.

    Several convolution shapes, because the attainable rate grows with the channel count
    (on one AVX-512 core: ~100 GFLOP/s at 64 channels, ~190 at 256); the best one counts.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t_mm = best_time(lambda: a @ b, device, repeat)
    convs = []
    for batch, ch, h, w in conv_shapes:
        conv = torch.nn.Conv2d(ch, ch, 3, padding=1, bias=False).to(device=device, dtype=dtype)
        x = torch.randn(batch, ch, h, w, device=device, dtype=dtype)
        if channels_last:
            conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            t_conv = best_time(lambda: conv(x), device, repeat)
        convs.append({"shape": [batch, ch, h, w], "flops": 2 * batch * ch * h * w * ch * 9 / t_conv})
        del conv, x
    best = max(convs, key=lambda c: c["flops"])
    return {"matmul_n": n, "matmul_flops": 2 * n**3 / t_mm, "convs": convs, "conv_shape": best["shape"],
            "conv_flops": best["flops"], "dtype": str(dtype).replace("torch.", "")}


# --------------------------------------------------------------------------- training


def synthetic_micrograph(size: int, diameter: float, rng: np.random.Generator) -> Sample:
    image = rng.standard_normal((size, size)).astype(np.float32)
    n = int(0.2 * size * size / (np.pi * (diameter / 2) ** 2))
    xy = rng.uniform(diameter, size - diameter, (n, 2))
    return Sample("bench", image, particle_mask(image.shape, xy, diameter / 2), xy, image.shape)


@dataclass
class TrainSettings:
    patch: int
    batch: int
    steps: int
    amp: bool
    channels_last: bool
    compile: bool
    workers: int


def bench_training(arch: str, width: int, device: torch.device, s: TrainSettings, sample: Sample) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, width).to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if s.compile else model
    loss_fn = build_loss("combined")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = make_grad_scaler(device, s.amp)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(s.batch, 1, s.patch, s.patch, generator=g).to(device)
    y = (torch.rand(s.batch, 1, s.patch, s.patch, generator=g) > 0.8).float().to(device)
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with autocast_context(device, s.amp):
            logits = step_model(x)
        loss = loss_fn(logits.float(), y)
        optimizer_step(loss, opt, scaler)

    flops_step = count_flops(step)  # also a warm-up step (and the compile, if any)
    reset_peaks(device)
    step()
    times = []
    for _ in range(s.steps):
        sync(device)
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))  # the median step: robust to other processes' bursts on a shared machine
    out = {"params": count_parameters(model), "train_gflop_per_patch": flops_step / s.batch / 1e9,
           "train_patches_per_s": s.batch / dt, "train_flops": flops_step / dt,
           "train_peak_rss_mb": peak_rss_mb(), "train_peak_gpu_mb": peak_gpu_mb(device)}

    # the same steps through the real data pipeline (PatchDataset + augmentation + DataLoader)
    from cryopick.distributed import EpochDataset, GlobalBatchSampler

    n = s.batch * s.steps
    ds = PatchDataset([sample], s.patch, n, 0, default_train_transform(True), batch_size=s.batch)
    sampler = GlobalBatchSampler(n, s.batch)
    loader = DataLoader(EpochDataset(ds), batch_size=s.batch, sampler=sampler, num_workers=s.workers,
                        pin_memory=device.type == "cuda", persistent_workers=s.workers > 0)
    ds.set_epoch(1)
    sampler.set_epoch(1)
    t = time.perf_counter()
    train_one_epoch(step_model, loader, loss_fn, opt, device, s.amp, scaler=scaler, channels_last=s.channels_last,
                    progress=False)
    sync(device)
    out["pipeline_patches_per_s"] = n / (time.perf_counter() - t)
    del loader
    return out


# --------------------------------------------------------------------------- picking


def _n_windows(length: int, tile: int, overlap: int) -> int:
    if length <= tile:
        return 1
    step = tile - overlap
    return len(set(range(0, length - tile, step)) | {length - tile})


def bench_picking(arch: str, width: int, device: torch.device, sizes: list[int], downsample: float, tile: int,
                  batch: int, amp: bool, channels_last: bool, repeat: int, quick: bool = False) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, width).to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    prep = Preprocessing(downsample, "robust", radius=55.0)
    cfg = PickConfig(tile_size=tile, batch_size=batch, threshold=0.5)
    picker = Picker([model], prep, cfg, device=device, amp=amp)
    out = {}
    rng = np.random.default_rng(0)
    for size in sizes:
        image = rng.standard_normal((size, size)).astype(np.float32)
        side = int(np.ceil(size / downsample))
        t_eff = min(tile, side) + (-min(tile, side)) % 16
        windows = _n_windows(max(side, t_eff), t_eff, min(cfg.overlap, t_eff // 4)) ** 2
        with torch.no_grad():
            probe = torch.zeros(1, 1, t_eff, t_eff, device=device)
            with autocast_context(device, amp):
                flops_tile = count_flops(lambda: model(probe))
        reset_peaks(device)
        warmup = 0 if quick and size > 2048 else 1  # quick: the large size runs once (its tiles are warm anyway)
        dt = best_time(lambda: picker.pick_image(image, "bench"), device, repeat, warmup=warmup)
        out[size] = {"mics_per_s": 1 / dt, "seconds": dt, "inference_px": side, "tiles": windows,
                     "flops": flops_tile * windows / dt, "peak_rss_mb": peak_rss_mb(),
                     "peak_gpu_mb": peak_gpu_mb(device)}
    return out


# --------------------------------------------------------------------------- main


def fmt_flops(f: float) -> str:
    return f"{f / 1e12:.2f} TFLOP/s" if f >= 1e12 else f"{f / 1e9:.1f} GFLOP/s"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda[:N] (default cpu)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                   help="bf16 (fp16 where bf16 is unsupported) autocast on CUDA; ignored on CPU")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC (default: on for CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training model")
    p.add_argument("--quick", action="store_true", help="CI-sized settings (< 1 min on 2 CPU cores)")
    p.add_argument("--archs", nargs="+", default=["unet", "attention-unet"])
    p.add_argument("--widths", nargs="+", type=int, help="base widths (default 8 16 32 on CPU, 32 64 on CUDA; 8 quick)")
    p.add_argument("--patch", type=int, help="training patch side (default 128 CPU, 256 CUDA; 64 quick)")
    p.add_argument("--batch", type=int, help="training batch (default 8 CPU, 32 CUDA; 4 quick)")
    p.add_argument("--steps", type=int, help="timed training steps, the median counts (default 5 CPU, 20 CUDA; 3 quick)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the pipeline figure")
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 4096], help="micrograph sides for picking")
    p.add_argument("--downsample", type=float, default=4.0, help="picking downsampling factor (default 4)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--pick-batch", type=int, help="tiles per forward pass (default 4 CPU, 16 CUDA)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return p


def _warn_if_busy() -> None:
    try:
        busy = os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except (AttributeError, OSError):
        busy = False
    if busy and torch.get_num_threads() > 1:
        print("warning: other processes are using the CPU; with several torch threads every operator waits at an "
              "OpenMP barrier for a descheduled thread (measured 25x slower on 2 shared cores): use --threads 1")


def _row(arch: str, width: int, tr: dict, pk: dict, sizes, ref: float, cuda: bool) -> str:
    """One line of the table: training figures, then picking per micrograph size."""
    line = (f"{arch:15s} {width:5d} {tr['params']:9d} | {tr['train_patches_per_s']:9.1f} "
            f"{tr['pipeline_patches_per_s']:8.1f} {tr['train_gflop_per_patch']:7.2f} "
            f"{fmt_flops(tr['train_flops']):>13s} {100 * tr['train_flops'] / ref:5.1f} "
            f"{tr['train_peak_rss_mb']:7.0f}" + (f" {tr['train_peak_gpu_mb']:6.0f}" if cuda else ""))
    for sz in sizes:
        r = pk[sz]
        line += (f" | {r['mics_per_s']:11.3f} {fmt_flops(r['flops']):>13s} {100 * r['flops'] / ref:5.1f} "
                 f"{r['peak_rss_mb']:6.0f}" + (f" GPU {r['peak_gpu_mb']:.0f}" if cuda else ""))
    return line


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available on this machine")
    cuda = device.type == "cuda"
    amp = bool(args.amp and cuda)
    channels_last = cuda if args.channels_last is None else args.channels_last
    q = args.quick
    widths = args.widths or ([8] if q else ([32, 64] if cuda else [8, 16, 32]))
    s = TrainSettings(patch=args.patch or (64 if q else (256 if cuda else 128)),
                      batch=args.batch or (4 if q else (32 if cuda else 8)),
                      steps=args.steps or (3 if q else (20 if cuda else 5)),
                      amp=amp, channels_last=channels_last, compile=args.compile, workers=args.workers)
    pick_batch = args.pick_batch or (16 if cuda else 4)
    repeat = 1 if q or not cuda else 3
    dtype = amp_dtype() if amp else torch.float32
    if cuda:
        torch.backends.cudnn.benchmark = True

    print(f"machine: {machine(device)}; load average {load_average()}")
    _warn_if_busy()
    print(f"device {device}, {'amp ' + str(dtype).replace('torch.', '') if amp else 'fp32'}, "
          f"channels-last {'on' if channels_last else 'off'}, compile {'on' if args.compile else 'off'}"
          f"{', quick' if q else ''}")
    n_mm = 8192 if cuda else (1024 if q else 2048)
    if cuda:
        conv_shapes = [(32, 128, 128, 128), (32, 512, 64, 64)]
    else:
        conv_shapes = [(4, 64, 64, 64), (4, 256, 32, 32)] if q else [(8, 64, 128, 128), (8, 256, 32, 32)]
    peak = measure_peak(device, dtype, n_mm, conv_shapes, channels_last, 3 if cuda else 2)
    ref = max(peak["matmul_flops"], peak["conv_flops"])
    print(f"measured peak ({peak['dtype']}): matmul {n_mm}x{n_mm} {fmt_flops(peak['matmul_flops'])}, 3x3 conv "
          + ", ".join(f"{tuple(c['shape'])} {fmt_flops(c['flops'])}" for c in peak["convs"]))
    print(f"training: patch {s.patch}, batch {s.batch}, {s.steps} timed steps; picking: downsample {args.downsample:g}, "
          f"tile {args.tile}, {pick_batch} tiles/batch")

    sample = synthetic_micrograph(512 if q else 1024, 28.0, np.random.default_rng(0))
    # warm-up: the first convolutions of a process pay for allocator growth and kernel selection
    bench_training(args.archs[0], widths[0], device, TrainSettings(**{**s.__dict__, "steps": 1}), sample)
    bench_picking(args.archs[0], widths[0], device, args.sizes[:1], args.downsample, args.tile, pick_batch, amp,
                  channels_last, 1, True)
    results = {"machine": machine(device), "device": str(device), "amp": amp, "dtype": peak["dtype"],
               "channels_last": channels_last, "compile": args.compile, "quick": q, "peak": peak,
               "train_settings": s.__dict__, "runs": []}
    head = (f"{'arch':15s} {'width':>5s} {'params':>9s} | {'train p/s':>9s} {'pipe p/s':>8s} {'GFLOP/p':>7s} "
            f"{'achieved':>13s} {'%peak':>5s} {'RSS MB':>7s}" + (" GPU MB" if cuda else ""))
    pick_head = " | " + " | ".join(f"pick {sz}: mic/s  achieved %peak RSS MB" for sz in args.sizes)
    print(head + pick_head)
    for arch in args.archs:
        for width in widths:
            tr = bench_training(arch, width, device, s, sample)
            pk = bench_picking(arch, width, device, args.sizes, args.downsample, args.tile, pick_batch, amp,
                               channels_last, repeat, q)
            results["runs"].append({"arch": arch, "width": width, **tr, "picking": pk})
            print(_row(arch, width, tr, pk, args.sizes, ref, cuda), flush=True)
    print(f"load average at the end: {load_average()}")
    results["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (resource.ru_maxrss): {results['max_rss_mb']:.0f} MB"
          + (f"; peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB" if cuda else ""))
    print("%peak = achieved / the best of the matmul and convolutions measured above. train p/s: median model step on resident "
          "batches; pipe p/s: through PatchDataset + augmentation + DataLoader (an epoch of --steps batches).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
