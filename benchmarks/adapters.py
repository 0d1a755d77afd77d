"""Cost of the adapters: training-step time and peak memory against our LoRA and peft's LoRA / DoRA, and merged
inference against the bare base model (issue 4's goals: RepLoRA and HyRA <= 1.05x our LoRA's step time; merged
inference 1.00x the base model).

    python -m benchmarks.adapters [backbones=[vit,bert]] [batch=16] [steps=10] [repeats=3] [size=base]

Backbones: a ViT-B/16-shaped timm model (224 x 224 images), a BERT-base-shaped transformers model (128 tokens) and,
for a GPU, `llama`: LLaMA-7B-shaped layers (4 of the 32, 256 tokens, the commonsense cutoff); random weights,
adapters on Q and V with rank 8. A training step is forward + backward + AdamW step. The methods are timed
interleaved, ``repeats`` rounds of ``steps`` steps each, and the median round is reported, so that load drift on
the machine hits every method alike. Peak memory: on a GPU, the peak allocated memory of a training
step; on a CPU, the peak resident memory of a child process that builds the model and runs the steps (the
ratio to the LoRA child's peak). ``size=tiny`` runs the same code on tiny shapes (a smoke check). Writes
``results/benchmarks/adapters.json``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from benchmarks.memory import peak_resident_bytes
from common.adapters import apply_adapters, merge_adapters
from common.config import ConfigError, cli_config
from common.runs import atomic_write_json, environment_record

BACKBONES = ("vit", "bert", "llama")
LLAMA_7B_LAYER = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32}
LLAMA_LAYERS = 4  # a LLaMA-7B-shaped stack (hidden 4096, MLP 11008, 32 heads) cut to this many layers
METHODS = ("lora", "replora", "hyra", "peft_lora", "dora")
HYRA_HIDDEN = {"vit": 16, "bert": 16, "llama": 40}


def check_choices(backbones: list[str], all_backbones, methods: list[str], all_methods) -> None:
    """A benchmark's backbones (a non-empty subset) and methods (a subset including our LoRA, the baseline)."""
    if not backbones or any(b not in all_backbones for b in backbones):
        raise ConfigError.invalid("backbones", backbones, f"a non-empty subset of {', '.join(all_backbones)}")
    if "lora" not in methods or any(m not in all_methods for m in methods):
        raise ConfigError.invalid("methods", methods, f"a subset of {', '.join(all_methods)} including lora")


@dataclass
class BenchConfig:
    backbones: list[str] = field(default_factory=lambda: ["vit", "bert"])  # llama: for a GPU
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    batch: int = 16
    steps: int = 10
    repeats: int = 3
    size: str = "base"  # base | tiny
    memory: bool = True
    out_dir: str = "results/benchmarks"

    def validate(self) -> None:
        check_choices(self.backbones, BACKBONES, self.methods, METHODS)
        if self.size not in ("base", "tiny"):
            raise ConfigError.invalid("size", self.size, "base or tiny")
        for name in ("batch", "steps", "repeats"):
            if getattr(self, name) <= 0:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")


def build(backbone: str, size: str, device: torch.device) -> tuple[torch.nn.Module, callable]:
    """The backbone with random weights and a function batch -> scalar training loss."""
    torch.manual_seed(0)
    tiny = size == "tiny"
    if backbone == "vit":
        model = timm.create_model(
            "vit_base_patch16_224",
            pretrained=False,
            num_classes=10,
            **({"embed_dim": 64, "depth": 2, "num_heads": 4} if tiny else {}),
        )
        return model.to(device), lambda m, x: m(x).logsumexp(-1).mean()
    if backbone == "llama":
        shape = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4} if tiny else LLAMA_7B_LAYER
        cfg = LlamaConfig(vocab_size=32000, num_hidden_layers=2 if tiny else LLAMA_LAYERS, **shape)
        cfg.num_key_value_heads = cfg.num_attention_heads
        return LlamaForCausalLM(cfg).to(device), lambda m, x: m(input_ids=x, labels=x).loss
    cfg = BertConfig(**({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4} if tiny else {}))
    return BertModel(cfg).to(device), lambda m, x: m(input_ids=x).last_hidden_state.pow(2).mean()


def inputs(backbone: str, batch: int, size: str, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if backbone == "vit":
        return torch.randn(batch, 3, 224, 224, generator=generator).to(device)
    tokens = 32 if size == "tiny" else 256 if backbone == "llama" else 128  # LLaMA: the commonsense cutoff
    return torch.randint(0, 30522, (batch, tokens), generator=generator).to(device)


def adapted(backbone: str, method: str, size: str, device: torch.device):
    model, loss = build(backbone, size, device)
    kwargs = {"hidden_dim": HYRA_HIDDEN[backbone]} if method == "hyra" else {}
    model = apply_adapters(model, method, targets=("q", "v"), rank=8, alpha=8, **kwargs).to(device)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return model.train(), loss, optimiser


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_steps(model, loss, optimiser, x, steps: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        loss(model, x).backward()
        optimiser.step()
    sync(device)
    return (time.perf_counter() - start) / steps


@torch.no_grad()
def inference_steps(model, x, steps: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model(x) if x.dtype.is_floating_point else model(input_ids=x)
    sync(device)
    return (time.perf_counter() - start) / steps


def peak_memory_child(backbone: str, method: str, bench: BenchConfig) -> float:
    """Peak memory (bytes) of ``steps`` training steps: GPU peak allocation, or the CPU child's peak RSS."""
    code = (
        "import json, sys; from benchmarks.adapters import child_peak; "
        f"print(json.dumps(child_peak({backbone!r}, {method!r}, {bench.batch}, {bench.steps}, {bench.size!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_peak(backbone: str, method: str, batch: int, steps: int, size: str) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, loss, optimiser = adapted(backbone, method, size, device)
    x = inputs(backbone, batch, size, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        train_steps(model, loss, optimiser, x, steps, device)
        return float(torch.cuda.max_memory_allocated())
    train_steps(model, loss, optimiser, x, steps, device)
    return peak_resident_bytes()


def main(bench: BenchConfig) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {}
    for backbone in bench.backbones:
        x = inputs(backbone, bench.batch, bench.size, device)
        runs = {method: adapted(backbone, method, bench.size, device) for method in bench.methods}
        rounds = {method: [] for method in runs}
        for model, loss, optimiser in runs.values():  # warm-up
            train_steps(model, loss, optimiser, x, 1, device)
        for _ in range(bench.repeats):
            for method, (model, loss, optimiser) in runs.items():
                rounds[method].append(train_steps(model, loss, optimiser, x, bench.steps, device))
        step = {method: statistics.median(times) for method, times in rounds.items()}
        row = {
            "step_seconds": step,
            "step_ratio_to_lora": {m: t / step["lora"] for m, t in step.items()},
        }
        # merged inference: HyRA merged and unloaded against the bare base model, interleaved
        base, _ = build(backbone, bench.size, device)
        merged = merge_adapters(runs["hyra" if "hyra" in runs else "lora"][0], unload=True)
        for model in (base, merged):
            model.eval()
            inference_steps(model, x, 1, device)
        infer = {"base": [], "merged": []}
        for _ in range(bench.repeats):
            infer["base"].append(inference_steps(base, x, bench.steps, device))
            infer["merged"].append(inference_steps(merged, x, bench.steps, device))
        row["inference_seconds"] = {k: statistics.median(v) for k, v in infer.items()}
        row["merged_inference_ratio"] = row["inference_seconds"]["merged"] / row["inference_seconds"]["base"]
        if bench.memory:
            peak = {method: peak_memory_child(backbone, method, bench) for method in bench.methods}
            row["peak_memory_bytes"] = peak
            row["peak_memory_ratio_to_lora"] = {m: v / peak["lora"] for m, v in peak.items()}
        results[backbone] = row
    record = {
        "bench": asdict(bench),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "environment": environment_record(),
    }
    print("| backbone | method | step (s) | / our LoRA | peak memory / our LoRA |\n|---|---|---:|---:|---:|")
    for backbone, row in results.items():
        for method, seconds in row["step_seconds"].items():
            memory = f"{row['peak_memory_ratio_to_lora'][method]:.3f}" if "peak_memory_ratio_to_lora" in row else ""
            print(f"| {backbone} | {method} | {seconds:.4f} | {row['step_ratio_to_lora'][method]:.3f} | {memory} |")
        print(
            f"| {backbone} | merged inference / base | {row['inference_seconds']['merged']:.4f} | "
            f"{row['merged_inference_ratio']:.3f} | |"
        )
    path = Path(bench.out_dir) / "adapters.json"
    atomic_write_json(path, record)
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
