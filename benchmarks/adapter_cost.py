"""HyRA Table 6: the cost of a training step with LoRA, HyRA, DoRA (peft) and full fine-tuning, as ratios to LoRA.

    python -m benchmarks.adapter_cost [backbones=[vit,llama]] [time_vit_batch=8] [time_llama_layers=2] [steps=2]

FLOPs per training step (forward + backward, torch's `FlopCounterMode`) are counted on the meta device, so at the
papers' shapes whatever the machine: ViT-B/16 at batch 64 (HyRA App. C.1) and all 32 LLaMA-7B layers at a
micro-batch of 4 sequences of 256 tokens (the commonsense cutoff; the papers' batch of 32 is 8 such micro-batches,
which scales every method alike). Adapters on Q and V, rank 8 (ViT) and 32 (LLaMA), HyRA's hidden size 16 / 40, as
in the papers. "Extra GFLOPs" is a method's step minus LoRA's, the part the adapters add (the papers' GFLOPs
column, 6.6 / 25.4 / 41.3 for LoRA / DoRA / HyRA on LLaMA-7B, is too small to include the 7 B backbone: it can
only count the adapter modules). Step time (median of interleaved rounds) and peak memory (GPU: peak allocation;
CPU: a child's peak resident memory) are measured on this machine at shapes that fit it: ViT-B/16 at
`time_vit_batch` images, a LLaMA-7B-shaped stack cut to `time_llama_layers` layers at one 256-token sequence (CPU)
or four (GPU). Writes `results/benchmarks/adapter_cost.json`; `python -m hyra.tables` prints it beside Table 6.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.adapters import LLAMA_7B_LAYER, check_choices, sync, train_steps
from benchmarks.memory import peak_resident_bytes
from common.adapters import apply_adapters
from common.config import ConfigError, cli_config
from common.runs import atomic_write_json, environment_record

BACKBONES = ("vit", "llama")
METHODS = ("lora", "hyra", "dora", "full")
RANK = {"vit": 8, "llama": 32}
HYRA_HIDDEN = {"vit": 16, "llama": 40}
FLOP_SHAPES = {"vit": {"batch": 64}, "llama": {"batch": 4, "tokens": 256, "layers": 32}}
OUT_FILE = "adapter_cost.json"


@dataclass
class CostConfig:
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    time_vit_batch: int = 8
    time_llama_layers: int = 2
    time_llama_batch: int = 0  # 0: 1 on a CPU, 4 on a GPU
    steps: int = 2
    repeats: int = 3
    memory: bool = True
    tiny: bool = False  # tiny shapes everywhere (a smoke check of the code)
    out_dir: str = "results/benchmarks"

    def validate(self) -> None:
        check_choices(self.backbones, BACKBONES, self.methods, METHODS)
        for name in ("time_vit_batch", "time_llama_layers", "steps", "repeats"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")


def backbone_and_input(name: str, batch: int, layers: int, tokens: int, tiny: bool):
    """The model (random weights) on the current default device, an input batch, and the step's loss."""
    torch.manual_seed(0)
    if name == "vit":
        shape = {"embed_dim": 64, "depth": 2, "num_heads": 4} if tiny else {}
        model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10, **shape)
        return model, torch.randn(batch, 3, 224, 224), lambda m, x: m(x).logsumexp(-1).mean()
    shape = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4} if tiny else LLAMA_7B_LAYER
    cfg = LlamaConfig(vocab_size=32000, num_hidden_layers=layers, **shape)
    cfg.num_key_value_heads = cfg.num_attention_heads
    x = torch.randint(0, 32000, (batch, tokens))
    return LlamaForCausalLM(cfg), x, lambda m, x: m(input_ids=x, labels=x).loss


def adapt(model: torch.nn.Module, name: str, method: str) -> torch.nn.Module:
    if method == "full":
        return model.requires_grad_(True)
    kwargs = {"hidden_dim": HYRA_HIDDEN[name]} if method == "hyra" else {}
    return apply_adapters(model, method, targets=("q", "v"), rank=RANK[name], alpha=2 * RANK[name], **kwargs)


def step_flops(name: str, method: str, tiny: bool) -> int:
    """FLOPs of one forward + backward at the papers' shape, counted on the meta device."""
    shape = FLOP_SHAPES[name]
    with torch.device("meta"):
        model, x, loss = backbone_and_input(
            name, shape["batch"], 2 if tiny else shape.get("layers", 0), shape.get("tokens", 0), tiny
        )
        model = adapt(model, name, method)
    with FlopCounterMode(display=False) as counter:
        loss(model, x).backward()
    return counter.get_total_flops()


def timing_shape(cost: CostConfig, name: str, device: torch.device) -> dict:
    if name == "vit":
        return {"batch": cost.time_vit_batch, "layers": 0, "tokens": 0}
    batch = cost.time_llama_batch or (4 if device.type == "cuda" else 1)
    return {"batch": batch, "layers": cost.time_llama_layers, "tokens": 32 if cost.tiny else 256}


def prepared(cost: CostConfig, name: str, method: str, device: torch.device):
    model, x, loss = backbone_and_input(name, tiny=cost.tiny, **timing_shape(cost, name, device))
    model = adapt(model.to(device), name, method).to(device).train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, x.to(device), loss, optimiser


def child_peak(cost: dict, name: str, method: str) -> float:
    """Peak memory (bytes) of ``steps`` training steps in this process: GPU allocation or resident memory."""
    cost = CostConfig(**cost)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, x, loss, optimiser = prepared(cost, name, method, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_steps(model, loss, optimiser, x, cost.steps, device)
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated())
    return peak_resident_bytes()


def peak_memory(cost: CostConfig, name: str, method: str) -> float:
    code = (
        "import json; from benchmarks.adapter_cost import child_peak; "
        f"print(json.dumps(child_peak({asdict(cost)!r}, {name!r}, {method!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(cost: CostConfig) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {}
    for name in cost.backbones:
        flops = {method: step_flops(name, method, cost.tiny) for method in cost.methods}
        runs = {method: prepared(cost, name, method, device) for method in cost.methods}
        for model, x, loss, optimiser in runs.values():  # warm-up
            train_steps(model, loss, optimiser, x, 1, device)
        rounds = {method: [] for method in runs}
        for _ in range(cost.repeats):  # interleaved: load drift hits every method alike
            for method, (model, x, loss, optimiser) in runs.items():
                rounds[method].append(train_steps(model, loss, optimiser, x, cost.steps, device))
        del runs
        sync(device)
        seconds = {method: statistics.median(times) for method, times in rounds.items()}
        row = {
            "flop_shape": FLOP_SHAPES[name],
            "timing_shape": timing_shape(cost, name, device),
            "gflops": {m: f / 1e9 for m, f in flops.items()},
            "extra_gflops_over_lora": {m: (f - flops["lora"]) / 1e9 for m, f in flops.items()},
            "flops_ratio_to_lora": {m: f / flops["lora"] for m, f in flops.items()},
            "step_seconds": seconds,
            "step_ratio_to_lora": {m: s / seconds["lora"] for m, s in seconds.items()},
        }
        if cost.memory:
            peak = {method: peak_memory(cost, name, method) for method in cost.methods}
            row["peak_memory_bytes"] = peak
            row["peak_memory_ratio_to_lora"] = {m: v / peak["lora"] for m, v in peak.items()}
        results[name] = row
    record = {
        "cost": asdict(cost),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "environment": environment_record(),
    }
    print(markdown(record))
    path = Path(cost.out_dir) / OUT_FILE
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


def markdown(record: dict) -> str:
    lines = [
        "| backbone | method | GFLOPs / step | extra GFLOPs over LoRA | FLOPs / LoRA | step time / LoRA | "
        "peak memory / LoRA |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in record["results"].items():
        for method in row["gflops"]:
            memory = row.get("peak_memory_ratio_to_lora", {}).get(method)
            lines.append(
                f"| {name} | {method} | {row['gflops'][method]:.1f} | {row['extra_gflops_over_lora'][method]:.2f} | "
                f"{row['flops_ratio_to_lora'][method]:.4f} | {row['step_ratio_to_lora'][method]:.3f} | "
                + ("" if memory is None else f"{memory:.3f}")
                + " |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main(cli_config(CostConfig, description=__doc__))
