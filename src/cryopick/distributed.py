"""Multi-process (multi-GPU, multi-node) runs with PyTorch's own engine: ``torchrun`` + DDP.

``torchrun --nproc_per_node=N -m cryopick.cli train ...`` starts N copies of the command
and sets RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR / MASTER_PORT) in each one's
environment. ``init_from_env`` reads them and joins the process group (NCCL on CUDA,
Gloo on CPU); without them every function here is a cheap single-process no-op, so the
same code runs unchanged under plain ``python``.

What is split across ranks (see ``train.fit``, ``selftrain``, ``picking.pick_to_files``):

- training: every global batch of the epoch's patch plan (identical on all ranks, as it
  is a function of (seed, epoch)) is cut into ``world`` equal slices, one per rank;
  DDP averages the gradients, BatchNorm statistics are synchronised, and each rank's
  loss is weighted by its share of valid pixels, so a step equals the single-process
  step at the same global batch (up to float summation order; see ``train.fit``);
- validation, self-training's pseudo-labelling pass and picking: the micrographs are
  sharded with :func:`shard`, and the counts / masks / picks are merged on every rank;
- files (checkpoints, metrics.json, summaries, pick files) are written by rank 0 only,
  followed by a :func:`barrier` so no rank reads a file before it exists.

A run joins the group once (``train.setup_compute``) and hands the :class:`DistInfo` down.
BatchNorm over the global batch lives in :mod:`cryopick.distributed_bn` (re-exported here).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .distributed_bn import AllReduceBatchNorm2d, sync_batchnorm, unsync_batchnorm  # noqa: F401 (re-exported)
from .errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: not distributed

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_cleanup_registered = False


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when not launched by torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def env_local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def launched_distributed() -> bool:
    """True when this process was started by torchrun (or alike) with more than one process."""
    return env_world_size() > 1


def info() -> DistInfo:
    """Rank, world size, local rank and backend of the current process group (defaults when none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), env_local_rank(), dist.get_backend())
    return DistInfo()


def init_from_env(device: torch.device | str | None = None) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    No-op (returns rank 0 of 1) when WORLD_SIZE is unset or 1, and idempotent when the
    group already exists. Backend: NCCL when ``device`` is CUDA, Gloo otherwise; on CUDA
    the process binds to ``cuda:LOCAL_RANK`` (or to ``device``'s index when it has one).
    """
    if dist.is_available() and dist.is_initialized():
        return info()
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise InputError("this PyTorch build has no torch.distributed; run without torchrun")
    rank, local_rank = _env_int("RANK", 0), env_local_rank()
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device.index if device.index is not None else local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise InputError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set; launch with torchrun "
                         "(e.g. torchrun --nproc_per_node=2 -m cryopick.cli train ...)")
    kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world}
    if backend == "nccl":
        kwargs["device_id"] = torch.device("cuda", torch.cuda.current_device())
    try:
        dist.init_process_group(**kwargs)
    except TypeError:  # older torch without device_id
        kwargs.pop("device_id", None)
        dist.init_process_group(**kwargs)
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(cleanup)
        _cleanup_registered = True
    return info()


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return info().enabled


def rank() -> int:
    return info().rank


def world_size() -> int:
    return info().world


def is_main() -> bool:
    """True on rank 0 (and in every single-process run): the rank that writes files and logs."""
    return info().is_main


def barrier() -> None:
    if is_distributed():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def _collective_device() -> torch.device:
    """Where tensors must live for collectives: the current GPU for NCCL, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_tensor(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``t`` reduced over ranks (sum | max | min), as a new tensor on ``t``'s device; ``t`` itself when single-process."""
    if not is_distributed():
        return t
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    work = t.detach().to(_collective_device(), copy=True)
    dist.all_reduce(work, op=ops[op])
    return work.to(t.device)


def all_reduce_array(a: np.ndarray, op: str = "sum") -> np.ndarray:
    """A numpy array reduced element-wise over ranks (dtype kept; int64 counts stay exact)."""
    if not is_distributed():
        return a
    return all_reduce_tensor(torch.from_numpy(np.ascontiguousarray(a)), op).numpy()


def all_reduce_sum(x: float) -> float:
    return float(all_reduce_array(np.array([x], np.float64))[0])


def all_reduce_max(x: float) -> float:
    return float(all_reduce_array(np.array([x], np.float64), "max")[0])


def all_reduce_mean(x: float) -> float:
    return all_reduce_sum(x) / world_size()


def all_reduce_accumulator(acc):
    """Merge a ``metrics.PixelAccumulator`` over ranks in place (its tp/fp/fn and histograms are summed)."""
    if not is_distributed():
        return acc
    counts = all_reduce_array(np.array([acc.tp, acc.fp, acc.fn], np.int64))
    acc.tp, acc.fp, acc.fn = (int(v) for v in counts)
    acc.hist_pos = all_reduce_array(acc.hist_pos.astype(np.int64))
    acc.hist_neg = all_reduce_array(acc.hist_neg.astype(np.int64))
    return acc


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` when single-process."""
    if not is_distributed():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """Rank ``rank``'s share of ``items``: every ``world``-th item starting at ``rank``.

    Strided rather than contiguous, so that sizes that grow along the list spread evenly;
    shares differ in length by at most one and together hold every item exactly once.
    Defaults are the current process's rank and world size.
    """
    d = info()
    rank = d.rank if rank is None else rank
    world = d.world if world is None else world
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: need 0 <= rank < world, got rank {rank}, world {world}")
    return list(items[rank::world])


def shard_indices(n: int, rank: int | None = None, world: int | None = None) -> list[int]:
    return shard(range(n), rank, world)


def merge_shards(parts: list[list[tuple[int, T]]]) -> list[T]:
    """Gathered ``[(index, value), ...]`` lists of every rank -> values ordered by index."""
    flat = sorted((pair for part in parts for pair in part), key=lambda p: p[0])
    return [v for _, v in flat]


def per_rank_batch(batch_size: int, world: int) -> int:
    """The per-rank batch of a global ``batch_size`` over ``world`` processes (must divide)."""
    if batch_size % world:
        raise InputError(f"--batch-size {batch_size} is the global batch and must be divisible by the number of "
                         f"processes ({world}); use e.g. --batch-size {max(world, batch_size - batch_size % world)}")
    return batch_size // world


# --------------------------------------------------------------------------- sampling


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Indices of the epoch's plan for one rank, as ``(epoch, index)`` keys.

    Global batch k covers plan indices [k*B, (k+1)*B); rank r takes the r-th of its
    ``world`` equal slices, so the ranks' batches together are exactly the single-process
    batch. Single-process (world 1) it yields 0..n-1 in order, the last batch may be short.
    The epoch travels with each key so persistent DataLoader workers, which hold their
    own copy of the dataset, follow ``set_epoch`` too.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.epoch = 0
        if world > 1:
            self.local = per_rank_batch(batch_size, world)
            if n % batch_size:
                raise InputError(f"--patches-per-epoch {n} must be a multiple of the global --batch-size {batch_size} "
                                 f"when training on {world} processes (every rank must take the same number of steps)")
        else:
            self.local = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        if self.world == 1:
            return list(range(self.n))
        out = []
        for start in range(0, self.n, self.batch_size):
            s = start + self.rank * self.local
            out += range(s, s + self.local)
        return out

    def __iter__(self):
        return iter([(self.epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        return self.n if self.world == 1 else self.n // self.world


class EpochDataset(torch.utils.data.Dataset):
    """``dataset[(epoch, i)]``: item ``i`` of epoch ``epoch`` of a dataset with ``set_epoch`` (e.g. PatchDataset)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[i]
