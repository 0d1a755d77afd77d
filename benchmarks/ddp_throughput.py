"""Data-parallel throughput: tokens/s of a GPT-2-shaped MoE LM and images/s of a ViT per process, for K = 1 and
K = every visible GPU (on a CPU-only machine: K = 1 and 2 gloo processes, a check of the machinery, not a timing).

    python -m benchmarks.ddp_throughput [models=[lm,vit]] [processes=null] [steps=30] [warmup=10] [size=small]
                                        [device=auto] [out_dir=results/benchmarks]

Each K runs ``torchrun --nproc_per_node=K`` on this module (``role=worker``): the entry points' training loop
(``common.training.fit``: DistributedDataParallel, the global batch shared by the K processes) on random tokens or
images held in memory, so the data pipeline is not measured. The throughput is taken over the steps after
``warmup``; ``scaling`` is (throughput at K / K) / throughput at K = 1. ``size=small`` is GPT-2 124M (MoE: 8
experts, top-2, quadratic router) at 1,024 tokens and ViT-B/16 at 224 pixels, for a GPU; ``size=tiny`` fits a CPU.
Writes ``<out_dir>/ddp_throughput.json`` and prints a table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from common.config import ConfigError, cli_config
from common.runs import atomic_write_json, environment_record

MODELS = ("lm", "vit")
SIZES = {  # model shapes and the global batch of one step
    "small": {"lm": {"layers": 12, "dim": 768, "heads": 12, "block": 1024, "batch": 32, "micro": 8},
              "vit": {"name": "vit_base_patch16_224", "image": 224, "batch": 256, "micro": 64}},
    "tiny": {"lm": {"layers": 2, "dim": 64, "heads": 4, "block": 64, "batch": 16, "micro": 4},
             "vit": {"name": "vit_tiny_patch16_224", "image": 32, "batch": 16, "micro": 4}},
}  # fmt: skip


@dataclass
class BenchConfig:
    models: list[str] = field(default_factory=lambda: list(MODELS))
    processes: list[int] | None = None  # None: 1 and every visible GPU (a CPU: 1 and 2)
    steps: int = 30
    warmup: int = 10
    size: str = "small"
    device: str = "auto"
    out_dir: str = "results/benchmarks"
    role: str = "launcher"  # worker: one process of a torchrun launch (internal)
    model: str = "lm"  # worker: which model
    result_file: str = ""  # worker: where rank 0 writes its timing

    def validate(self) -> None:
        if not self.models or any(m not in MODELS for m in self.models):
            raise ConfigError.invalid("models", self.models, f"a subset of {', '.join(MODELS)}")
        if self.size not in SIZES:
            raise ConfigError.invalid("size", self.size, f"one of {', '.join(SIZES)}")
        if not 0 <= self.warmup < self.steps:
            raise ConfigError.invalid("warmup", self.warmup, f"an integer in [0, steps = {self.steps})")
        gpus = torch.cuda.device_count()
        if self.processes is not None and any(k < 1 or (gpus and k > gpus) for k in self.processes):
            raise ConfigError.invalid("processes", self.processes, f"integers in [1, {gpus or 'any'}]")


def lm_problem(shape: dict, device: torch.device):
    from dataclasses import replace

    from common.training.sweeps import autocast
    from quadratic_gating import pretrain
    from quadratic_gating.models import moe_aux_loss, next_token_loss

    cfg = replace(pretrain.Config(), layers=shape["layers"], dim=shape["dim"], heads=shape["heads"],
                  dense_ffn=4 * shape["dim"], expert_ffn=2 * shape["dim"], block_size=shape["block"])  # fmt: skip
    model = pretrain.build(cfg, "moe_quadratic", 50257).to(device)
    data = list(torch.randint(0, 50257, (shape["batch"] * 4, shape["block"])))

    def loss_fn(net, batch):
        with autocast(device, cfg.dtype):
            return next_token_loss(net, batch.to(device)) + cfg.aux_weight * moe_aux_loss(net)

    return model, data, torch.stack, loss_fn, shape["block"]  # units per example: tokens


def vit_problem(shape: dict, device: torch.device):
    import timm

    from common.training.sweeps import autocast

    model = timm.create_model(shape["name"], pretrained=False, num_classes=1000, img_size=shape["image"]).to(device)
    images = torch.randn(shape["batch"] * 2, 3, shape["image"], shape["image"])
    labels = torch.randint(0, 1000, (shape["batch"] * 2,))
    data = list(zip(images, labels, strict=True))

    def loss_fn(net, batch):
        x, y = batch
        with autocast(device):
            return torch.nn.functional.cross_entropy(net(x.to(device)), y.to(device))

    return model, data, torch.utils.data.default_collate, loss_fn, 1  # units per example: images


def worker(cfg: BenchConfig) -> None:
    """One process of a launch: train ``steps`` steps and (rank 0) write the throughput after ``warmup``."""
    from common.training import distributed
    from common.training.loop import Optimization, fit
    from common.training.sweeps import device_of

    device = distributed.setup(device_of(cfg.device))
    shape = SIZES[cfg.size][cfg.model]
    torch.manual_seed(0)
    model, data, collate, loss_fn, units = (lm_problem if cfg.model == "lm" else vit_problem)(shape, device)
    stamps: list[float] = []

    def timed(net, batch):  # the first micro-batch of every step starts its clock
        stamps.append(time.perf_counter())
        return loss_fn(net, batch)

    schedule = Optimization(batch_size=shape["batch"], micro_batch_size=shape["micro"], warmup_steps=2)
    micro_per_step = shape["batch"] // distributed.world_size() // shape["micro"]
    with tempfile.TemporaryDirectory() as run_dir:
        fit(model, data, collate, timed, schedule, cfg.steps, run_dir, seed=0, checkpoint_every=10**9)
    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    if distributed.is_main():
        start = stamps[cfg.warmup * micro_per_step]
        per_s = (cfg.steps - cfg.warmup) * shape["batch"] * units / (end - start)
        memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        atomic_write_json(cfg.result_file, {"per_s": per_s, "max_memory_gib": memory, "device": str(device)})


def launch(cfg: BenchConfig, model: str, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        args = ["role=worker", f"model={model}", f"steps={cfg.steps}", f"warmup={cfg.warmup}", f"size={cfg.size}",
                f"device={cfg.device}", f"result_file={result}"]  # fmt: skip
        command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc_per_node={processes}",
                   "-m", "benchmarks.ddp_throughput", *args]  # fmt: skip
        threads = {} if torch.cuda.is_available() else {"OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **threads})
        if done.returncode != 0:
            raise RuntimeError(f"{model} with {processes} processes failed:\n{done.stderr[-3000:]}")
        return json.loads(result.read_text())


def main(cfg: BenchConfig) -> dict:
    if cfg.role == "worker":
        worker(cfg)
        return {}
    gpus = torch.cuda.device_count()
    processes = cfg.processes or sorted({1, gpus if gpus else 2})
    rows = []
    for model in cfg.models:
        base = None
        for k in processes:
            measured = launch(cfg, model, k)
            base = base if base is not None else measured["per_s"] / k if k == 1 else None
            unit = "tokens/s" if model == "lm" else "images/s"
            rows.append({"model": model, "processes": k, "unit": unit, "total_per_s": measured["per_s"],
                         "per_process_per_s": measured["per_s"] / k,
                         "scaling": measured["per_s"] / k / base if base else None,
                         "max_memory_gib": measured["max_memory_gib"], "device": measured["device"]})  # fmt: skip
            print(f"{model:4s} K={k}: {measured['per_s']:12.1f} {unit} ({measured['per_s'] / k:.1f} per process)")
    out = {"config": asdict(cfg), "rows": rows, "environment": environment_record(seed=0, device=str(gpus))}
    path = Path(cfg.out_dir) / "ddp_throughput.json"
    atomic_write_json(path, out)
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
