"""Self-checks for lesson 09 (scaling out with ``torchrun`` and DDP).

``check_shard_indices`` compares a student's sharding with ``DistributedSampler`` itself and,
when they differ, replays the usual mistakes (no shuffle, the same shuffle every epoch, a
contiguous block per rank, no padding) to say which one it was. ``check_train_rank`` runs a
student's rank function for rank 1 and rank 0 of a simulated two-process run, in this process,
records which samples each rank loads and which files it writes, and checks the properties a
real run needs: a new shuffle every epoch, disjoint shards that cover the data, and a checkpoint
written by rank 0 alone.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

from lesson_utils.checks._core import call_student, fail, passed

__all__ = ["check_shard_indices", "check_train_rank", "reference_shard_indices"]

# (num_samples, world_size): divisible, padded by 1 and 2, more ranks than usual.
_SHARD_CASES: list[tuple[int, int]] = [(12, 2), (10, 3), (7, 4), (9, 2)]
_SEEDS = (0, 5)
_EPOCHS = (0, 1, 2)


def reference_shard_indices(num_samples: int, rank: int, world_size: int, epoch: int,
                            seed: int = 0) -> list[int]:
    """The positions ``DistributedSampler(range(num_samples), num_replicas=world_size,
    rank=rank, shuffle=True, seed=seed)`` yields after ``set_epoch(epoch)``.

    Example:
        >>> [reference_shard_indices(5, rank, world_size=2, epoch=0) for rank in (0, 1)]
        [[4, 1, 2], [0, 3, 4]]
    """
    for name, value, minimum in (("num_samples", num_samples, 1), ("world_size", world_size, 1),
                                 ("epoch", epoch, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, world_size={world_size}), got {rank!r}")
    sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank,
                                 shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return list(sampler)


def _order(num_samples: int, seed: int) -> list[int]:
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.randperm(num_samples, generator=g).tolist()


def _padded(order: list[int], world_size: int) -> list[int]:
    total = math.ceil(len(order) / world_size) * world_size
    return order + order[:total - len(order)]


def _mistakes(n: int, rank: int, ws: int, epoch: int, seed: int) -> list[tuple[list[int], str]]:
    """What the usual wrong answers return for this case, each with its hint."""
    shuffled = _order(n, seed + epoch)
    padded = _padded(shuffled, ws)
    per_rank = len(padded) // ws
    return [
        (_padded(list(range(n)), ws)[rank::ws],
         "the positions are not shuffled: DistributedSampler(shuffle=True) first draws "
         "torch.randperm(num_samples, generator=g) with g seeded by seed + epoch"),
        (_padded(_order(n, seed), ws)[rank::ws],
         "same order every epoch: the shuffle must depend on the epoch (seed the generator "
         "with seed + epoch, which is what set_epoch(epoch) does)"),
        (_padded(_order(n, epoch), ws)[rank::ws],
         "the seed is ignored: seed the generator with seed + epoch, not epoch alone"),
        (padded[rank * per_rank:(rank + 1) * per_rank],
         "each rank got a contiguous block: DistributedSampler deals the shuffled list out "
         "round-robin, rank r takes positions r, r + N, r + 2N, ... (order[rank::world_size])"),
        (shuffled[rank::ws],
         f"the shards have unequal lengths: every rank must get ceil({n}/{ws}) = {per_rank} "
         f"positions, so pad the shuffled list with its first {len(padded) - n} element(s) "
         f"before dealing it out (drop_last=False)"),
        (shuffled[:n - n % ws][rank::ws],
         f"samples were dropped: with drop_last=False nothing is left out; pad the shuffled "
         f"list with its first {len(padded) - n} element(s) instead, so every rank gets "
         f"{per_rank}"),
    ]


def _as_int_list(what: str, got: Any) -> list[int]:
    if got is None:
        fail(what, "got None: did the function forget to `return` the list?")
    if isinstance(got, torch.Tensor):
        got = got.tolist()
    try:
        values = list(got)
    except TypeError:
        fail(what, f"return a list of ints, got {type(got).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        fail(what, f"return a list of ints (use .tolist() on a tensor), got {values[:5]!r}...")
    return values


def check_shard_indices(shard_indices: Callable[..., Any]) -> bool:
    """Check ``shard_indices(num_samples, rank, world_size, epoch, seed=0) -> list[int]``.

    It must return exactly what ``DistributedSampler(range(num_samples),
    num_replicas=world_size, rank=rank, shuffle=True, seed=seed)`` yields after
    ``set_epoch(epoch)``: a shuffle seeded by ``seed + epoch``, padded by repeating its first
    positions to a multiple of ``world_size``, dealt out round-robin.

    Example:
        >>> check_shard_indices(reference_shard_indices)
        ✅ shard_indices: correct: equals DistributedSampler for 4 sizes x 3 epochs x 2 seeds x every rank
        True
    """
    what = "shard_indices"
    for n, ws in _SHARD_CASES:
        for seed in _SEEDS:
            for epoch in _EPOCHS:
                for rank in range(ws):
                    expected = reference_shard_indices(n, rank, ws, epoch, seed)
                    got = _as_int_list(what, call_student(what, shard_indices, n, rank, ws,
                                                          epoch, seed=seed))
                    if got == expected:
                        continue
                    case = (f"shard_indices({n}, rank={rank}, world_size={ws}, epoch={epoch}, "
                            f"seed={seed})")
                    for wrong, hint in _mistakes(n, rank, ws, epoch, seed):
                        if got == wrong:
                            fail(what, f"{case}: {hint}")
                    fail(what, f"{case} should be {expected} (DistributedSampler's: "
                               f"torch.randperm with a generator seeded by seed + epoch, padded "
                               f"with its first elements, then order[rank::world_size]), got {got}")
    return passed(what, f"correct: equals DistributedSampler for {len(_SHARD_CASES)} sizes x "
                        f"{len(_EPOCHS)} epochs x {len(_SEEDS)} seeds x every rank")


class _RecordingDataset(Dataset):
    """Tiny labelled images, 3 x 4 x 4 in 3 classes, that log the index of every sample a
    DataLoader fetches (``dataset[i]`` written by hand, e.g. to size a model, is not logged)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.X = torch.rand(n, 3, 4, 4, generator=g)  # (n, 3, 4, 4)
        self.y = torch.arange(n) % 3  # (n,)
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # DataLoader fetches a batch through this method when a dataset has it.
        self.loaded.extend(int(i) for i in indices)
        return [self[i] for i in indices]


def _run_rank(train_rank: Callable[..., Any], rank: int, world_size: int, num_epochs: int,
              n: int, out_dir: Path) -> tuple[list[list[int]], list[str]]:
    """Run one rank in the empty folder ``out_dir``: what it loaded per epoch, the files it
    left."""
    what = "train_rank"
    dataset = _RecordingDataset(n)
    out_dir.mkdir()
    call_student(what, train_rank, rank, world_size, dataset, num_epochs, out_dir)
    loaded = dataset.loaded
    if len(loaded) % num_epochs:
        fail(what, f"rank {rank} loaded {len(loaded)} samples in {num_epochs} epochs, not the "
                   f"same number every epoch: iterate over the loader once per epoch")
    per_epoch = len(loaded) // num_epochs
    epochs = [loaded[e * per_epoch:(e + 1) * per_epoch] for e in range(num_epochs)]
    files = sorted(p.name for p in out_dir.rglob("*") if p.is_file())
    return epochs, files


def _check_shards(epochs: dict[int, list[list[int]]], n: int, world_size: int) -> None:
    what = "train_rank"
    for rank, seen in epochs.items():
        if not seen[0]:
            fail(what, f"rank {rank} loaded no samples: iterate over the DataLoader in every "
                       f"epoch")
        if len(seen[0]) == n:
            fail(what, f"rank {rank} loaded all {n} samples every epoch: a DataLoader with "
                       f"shuffle=True gives every rank the whole dataset; pass "
                       f"sampler=DistributedSampler(dataset, num_replicas=world_size, "
                       f"rank=rank) instead")
    for e in range(len(epochs[0])):
        shards = [set(epochs[r][e]) for r in range(world_size)]
        if set.intersection(*shards):
            fail(what, f"shards overlap in epoch {e}: ranks 0 and 1 both loaded samples "
                       f"{sorted(set.intersection(*shards))}; every rank must call "
                       f"set_epoch with the same epoch number, and pass its own rank to the "
                       f"sampler")
        if set.union(*shards) != set(range(n)):
            fail(what, f"in epoch {e} the ranks together loaded {len(set.union(*shards))} of "
                       f"{n} samples: with a DistributedSampler they cover the dataset")
    for rank, seen in epochs.items():
        if seen == [sorted(s) for s in seen]:
            fail(what, f"rank {rank} loaded its samples in index order: create the sampler "
                       f"with shuffle=True")
        if all(s == seen[0] for s in seen[1:]):
            fail(what, f"same order every epoch on rank {rank} ({seen[0][:4]}... each time): "
                       f"did you call sampler.set_epoch(epoch) at the start of every epoch?")
        for e in range(1, len(seen)):
            if seen[e] == seen[e - 1]:
                fail(what, f"same order in epochs {e - 1} and {e} on rank {rank}: call "
                           f"sampler.set_epoch(epoch) with the epoch number itself, at the start of "
                           f"every epoch")


def _check_files(files: dict[int, list[str]], rank0_dir: Path) -> None:
    what = "train_rank"
    for rank, names in files.items():
        if rank != 0 and names:
            fail(what, f"rank {rank} also wrote {names}: in a real run every rank writes the "
                       f"same file at the same time; save only on rank 0 (if rank == 0: ...)")
    if "model.pt" not in files[0]:
        fail(what, f"rank 0 did not write model.pt (it wrote {files[0]}): save "
                   f"model.state_dict() to out_dir / 'model.pt' on rank 0")
    try:
        state = torch.load(rank0_dir / "model.pt", weights_only=True)
    except Exception as exc:  # a pickled module or garbage: say so
        fail(what, f"model.pt does not load with weights_only=True ({type(exc).__name__}): "
                   f"save model.state_dict(), not the model object")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        fail(what, "model.pt should hold model.state_dict() (a dict of tensors)")


def check_train_rank(train_rank: Callable[..., Any], *, num_samples: int = 12,
                     num_epochs: int = 3) -> bool:
    """Check ``train_rank(rank, world_size, dataset, num_epochs, out_dir)``, one rank of a
    data-parallel run simulated in this process (no process group).

    The function is run for rank 1, then rank 0, of ``world_size=2``, each in its own empty
    folder, on a dataset that records every sample it serves. Passes when, in every epoch, the
    two ranks load disjoint shards that together cover the data, each rank's order changes from
    epoch to epoch (``set_epoch``), and only rank 0 writes ``out_dir / "model.pt"`` holding a
    ``state_dict``.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> def train_rank(rank, world_size, dataset, num_epochs, out_dir):
        ...     model = torch.nn.Linear(48, 3)
        ...     sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
        ...                                  shuffle=True, seed=0)
        ...     loader = DataLoader(dataset, batch_size=2, sampler=sampler)
        ...     for epoch in range(num_epochs):
        ...         sampler.set_epoch(epoch)
        ...         for X, y in loader:
        ...             pass  # the training step
        ...     if rank == 0:
        ...         torch.save(model.state_dict(), Path(out_dir) / "model.pt")
        >>> check_train_rank(train_rank)
        ✅ train_rank: correct: 3 epochs, new shuffle each epoch, disjoint shards covering 12 samples, only rank 0 saved
        True
    """
    what = "train_rank"
    world_size = 2
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an int >= 2, got {num_samples!r}")
    if num_samples % world_size:
        raise ValueError(f"num_samples must be even (no padded duplicates), got {num_samples}")
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 2:
        raise ValueError(f"num_epochs must be an int >= 2, got {num_epochs!r}")
    epochs: dict[int, list[list[int]]] = {}
    files: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="check09_") as scratch:
        for rank in (1, 0):  # rank 1 first, each in its own empty folder
            epochs[rank], files[rank] = _run_rank(train_rank, rank, world_size, num_epochs,
                                                  num_samples, Path(scratch) / f"rank{rank}")
        _check_shards(epochs, num_samples, world_size)
        _check_files(files, Path(scratch) / "rank0")
    return passed(what, f"correct: {num_epochs} epochs, new shuffle each epoch, disjoint shards "
                        f"covering {num_samples} samples, only rank 0 saved")
