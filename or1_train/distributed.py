"""Ranks, collectives and the two things the trainer shares across them: rollouts and ZeRO-3 weights.

One trainer process runs per rank (torchrun on one node, `srun` + torchrun across nodes; see docs/scaling.md).
Every rank holds the whole rollout batch after each step, so the loop's bookkeeping (groups, filters,
advantages, the entropy controller, metrics) runs identically everywhere and needs no broadcast:

- generation and scoring are *sharded*: each rollout group (``group_size`` ranks that form one vLLM
  tensor-parallel instance) takes a contiguous share of the prompts and the results are all-gathered in
  prompt order. Sampling seeds are per (step, sample index), so the samples are those one process would draw.
- the actor engine splits each mini-batch across ranks itself (or1_train.engine.deepspeed).
- ZeRO-3 weights leave the shards one parameter at a time (`full_parameters`), for the vLLM push and the HF
  export, so no rank ever holds a second full copy of the model.

Before `init`, rank and world size come from the launcher's environment (RANK, WORLD_SIZE), so the trainer can
decide who writes telemetry before any process group exists. With no launcher (plain ``or1-train run``) a
world of one is set up on a free local port, which DeepSpeed needs even then (runtime notes §3).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init() -> None:
    """Join the launcher's process group (nccl on GPUs, gloo on CPUs); idempotent.

    Without a launcher, RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT are set for a world of one: DeepSpeed
    otherwise falls back to MPI discovery and fails ("No module named 'mpi4py'").
    """
    if initialized():
        return
    if "RANK" not in os.environ:
        os.environ.update(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
        )
    import deepspeed

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    deepspeed.init_distributed(dist_backend=backend)


def comm_device() -> torch.device:
    """Where collective tensors must live: the rank's GPU under nccl, else the CPU."""
    if initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if initialized() and world_size() > 1:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as rank ``src`` holds it, on every rank."""
    if not initialized() or world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order."""
    if not initialized() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any: a SIGTERM seen by one rank stops all at the same step."""
    if not initialized() or world_size() == 1:
        return flag
    value = torch.tensor([1 if flag else 0], device=comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over ranks (a new tensor on ``tensor``'s device)."""
    if not initialized() or world_size() == 1:
        return tensor
    work = tensor.to(comm_device(), copy=True)
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def sum_metrics(values: dict[str, float]) -> dict[str, float]:
    """Per-name sums over ranks; every rank must pass the same names."""
    if not initialized() or world_size() == 1:
        return dict(values)
    names = sorted(values)
    summed = all_reduce_sum(torch.tensor([values[n] for n in names], dtype=torch.float64))
    return dict(zip(names, summed.tolist()))


# ----------------------------------------------------------------------------------- sharded rollouts


def shard_bounds(count: int, parts: int, index: int) -> tuple[int, int]:
    """[lo, hi) of part ``index`` when ``count`` items are split into ``parts`` contiguous, balanced parts."""
    base, extra = divmod(count, parts)
    lo = index * base + min(index, extra)
    return lo, lo + base + (1 if index < extra else 0)


def _gather_groups(local: list[T], group_size: int) -> list[T]:
    """Concatenate each rollout group's results in group order (ranks of one group hold the same results)."""
    everyone = all_gather_objects(local)
    return [item for leader in range(0, len(everyone), group_size) for item in everyone[leader]]


def _group(group_size: int) -> tuple[int, int]:
    world = world_size()
    if group_size < 1 or world % group_size:
        raise ValueError(f"rollout group size {group_size} must divide the world size {world}")
    return world // group_size, rank() // group_size


def sharded_generate(generate: Callable[..., list], group_size: int = 1) -> Callable[..., list]:
    """``generate(prompts, *, seeds, **kw)`` run by each rollout group on its share of the prompts.

    The ranks of one group (one tensor-parallel vLLM instance) get the same share and produce the same
    output; the result on every rank is the whole batch in prompt order. With one rank it is ``generate``.
    """
    if world_size() == 1:
        return generate

    def run(prompts: list, *, seeds: list, **kwargs: Any) -> list:
        groups, index = _group(group_size)
        lo, hi = shard_bounds(len(prompts), groups, index)
        local = generate(prompts[lo:hi], seeds=seeds[lo:hi], **kwargs) if hi > lo else []
        return _gather_groups(local, group_size)

    return run


def sharded_score(score: Callable[[list, list], list], group_size: int = 1) -> Callable[[list, list], list]:
    """``score(texts, owners)`` on this group's share of the samples, the results gathered in order."""
    if world_size() == 1:
        return score

    def run(texts: list, owners: list) -> list:
        groups, index = _group(group_size)
        lo, hi = shard_bounds(len(texts), groups, index)
        local = list(score(texts[lo:hi], owners[lo:hi])) if hi > lo else []
        return _gather_groups(local, group_size)

    return run


def balanced_split(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Sample indices per rank with near-equal token totals (longest first onto the lightest rank).

    Deterministic, so every rank computes every rank's share without communicating; each share keeps the
    original order.
    """
    loads = [0] * parts
    shares: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        target = min(range(parts), key=lambda r: (loads[r], r))
        shares[target].append(i)
        loads[target] += lengths[i]
    return [sorted(share) for share in shares]


# ------------------------------------------------------------------------------------ ZeRO-3 weights


def is_partitioned(param: torch.Tensor) -> bool:
    """A parameter ZeRO-3 has split across ranks (DeepSpeed tags those with ``ds_id``)."""
    return hasattr(param, "ds_id")


def full_shape(param: torch.Tensor) -> torch.Size:
    return param.ds_shape if is_partitioned(param) else param.shape


def full_parameters(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Each parameter whole, one at a time, then the persistent buffers (a ``state_dict`` in pieces).

    A ZeRO-3 shard is gathered (a collective: every rank must iterate, in the same order), copied out and
    released before the next one, so at most one gathered parameter is alive at a time on top of what the
    consumer keeps. Parameters that are not partitioned are yielded as they are, without a copy.
    """
    for name, param in module.named_parameters():
        if is_partitioned(param):
            import deepspeed

            with deepspeed.zero.GatheredParameters([param]):
                whole = param.data.detach().clone()
            yield name, whole
        else:
            yield name, param.detach()
    for prefix, sub in module.named_modules():
        for name, buffer in sub.named_buffers(recurse=False):
            if buffer is not None and name not in sub._non_persistent_buffers_set:
                yield (f"{prefix}.{name}" if prefix else name), buffer.detach()
