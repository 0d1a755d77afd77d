"""Data-parallel training over K processes (torch.distributed): who this process is, and the few collectives the
training loop needs.

One process per device, started by ``torchrun --nproc_per_node=K python -m <entry point> ...`` on one machine, or by
``slurm.submit`` as one job of K tasks (the rendezvous from the SLURM environment, through submitit). Every process
runs the same entry point on the same config: ``setup`` joins the process group (NCCL on GPUs, gloo on CPUs) and
names this process's device (``cuda:<local rank>``). The training loop (``common.training.loop.fit``) then gives
each rank its share of every step's batch and averages the gradients (DistributedDataParallel); rank 0 alone writes
logs, checkpoints and results. With one process nothing here does anything: ``world_size() == 1``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from common.config import ConfigError

ENV_WORLD = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def world_size() -> int:
    """The number of processes training together (1 outside torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process writes (logs, checkpoints, results): rank 0."""
    return rank() == 0


def active() -> bool:
    """Whether this process trains with others (a process group of more than one)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def from_job_tasks() -> None:
    """In a submitit job of several tasks (SLURM's, or the local executor's), set torch.distributed's environment
    (rank, world size, local rank, the job's first node as the rendezvous) unless a launcher (torchrun) has."""
    tasks = os.environ.get("SLURM_NTASKS") or os.environ.get("SUBMITIT_LOCAL_NTASKS") or "1"
    if "WORLD_SIZE" in os.environ or int(tasks) <= 1:
        return
    import submitit

    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def check_devices(device: torch.device, processes: int) -> None:
    """K processes on GPUs need K visible GPUs on each machine (one each)."""
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    if device.type == "cuda" and per_machine > torch.cuda.device_count():
        raise ConfigError(
            f"{per_machine} processes per machine need as many GPUs, but {torch.cuda.device_count()} are visible: "
            "use --nproc_per_node (torchrun) or tasks_per_node (slurm.submit) <= the GPUs of a machine"
        )


def setup(device: torch.device) -> torch.device:
    """Join the process group when this process is one of several (idempotent); returns this process's device:
    ``cuda:<local rank>`` on GPUs, else ``device``."""
    from_job_tasks()
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes <= 1:
        return device
    check_devices(device, processes)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def barrier() -> None:
    if active():
        dist.barrier()


def _collective_device() -> torch.device:
    """Where a collective's tensors live: this process's GPU under NCCL, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_scalar(value: float) -> float:
    """The sum of ``value`` over the processes (in float64)."""
    if not active():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return float(total.item())


def max_int(value: int) -> int:
    """The largest ``value`` of the processes."""
    if not active():
        return value
    largest = torch.tensor([value], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    return int(largest.item())


def gather(value: Any) -> list[Any]:
    """Every process's ``value``, by rank (picklable objects)."""
    if not active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def shard(batch: list[int], ranks: int, index: int) -> list[int]:
    """Rank ``index``'s contiguous part of a step's batch: sizes differ by at most one, earlier ranks larger."""
    size, extra = divmod(len(batch), ranks)
    start = index * size + min(index, extra)
    return batch[start : start + size + (index < extra)]


def check_batches(num_examples: int, batch_size: int, micro_batch_size: int, ranks: int) -> None:
    """A global batch the processes can share: each rank gets at least one example of every step, and whole
    micro-batches of the per-rank batch."""
    if ranks <= 1:
        return
    if batch_size % ranks:
        raise ConfigError.invalid(
            "optimization.batch_size", batch_size, f"a multiple of the {ranks} processes (the global batch is shared)"
        )
    per_rank = batch_size // ranks
    if micro_batch_size and per_rank % micro_batch_size:
        raise ConfigError.invalid(
            "optimization.micro_batch_size", micro_batch_size,
            f"a divisor of the per-process batch {per_rank} (global batch {batch_size} / {ranks} processes)",
        )  # fmt: skip
    last = num_examples % batch_size
    if 0 < last < ranks:
        raise ConfigError(
            f"the last batch of an epoch has {last} examples ({num_examples} % {batch_size}), fewer than the "
            f"{ranks} processes: choose a batch size or a process count that leaves each process an example"
        )
