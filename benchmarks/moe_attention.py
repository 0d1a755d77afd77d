"""Throughput of the quadratic-gating paper's proposals against their baselines, in one run (issue 7's goals):
the MoE block with the quadratic router against the linear router (goal: at most 3 % slower), and active attention
(a value activation) against plain attention.

    python -m benchmarks.moe_attention [tokens=2048] [steps=5] [repeats=5] [size=base]

MoE: GPT2-MoE's block (width 768, 8 experts of 1536, top-2; quadratic rank 32). Attention: a 12-head, width-768
self-attention over sequences of 256 tokens, identity vs GELU values. A step is forward + backward. Variants are
timed interleaved, `repeats` rounds of `steps` steps, and the median round is reported as tokens per second and as
a ratio to the baseline. `size=tiny` runs the same code on tiny shapes (a smoke check). Writes
`results/benchmarks/moe_attention.json`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from common.config import ConfigError, cli_config
from common.layers.attention import MultiHeadAttention
from common.layers.moe import MoEFeedForward
from common.runs import atomic_write_json, environment_record

SIZES = {
    "base": {"dim": 768, "hidden": 1536, "heads": 12, "rank": 32},
    "tiny": {"dim": 32, "hidden": 64, "heads": 4, "rank": 4},
}


@dataclass
class BenchConfig:
    tokens: int = 2048  # per step
    sequence: int = 256  # attention sequence length
    steps: int = 5
    repeats: int = 5
    size: str = "base"
    out_dir: str = "results/benchmarks"

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ConfigError.invalid("size", self.size, f"one of {', '.join(SIZES)}")
        for name in ("tokens", "sequence", "steps", "repeats"):
            if getattr(self, name) < 1:
                raise ConfigError.invalid(name, getattr(self, name), "a positive integer")
        if self.tokens % self.sequence:
            raise ConfigError.invalid("tokens", self.tokens, f"a multiple of sequence = {self.sequence}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step: Callable[[], None], steps: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def compare(variants: dict[str, Callable[[], None]], bench: BenchConfig, device: torch.device, baseline: str) -> dict:
    for step in variants.values():  # warm-up
        step()
    rounds = {name: [] for name in variants}
    for _ in range(bench.repeats):
        for name, step in variants.items():
            rounds[name].append(time_steps(step, bench.steps, device))
    seconds = {name: statistics.median(times) / bench.steps for name, times in rounds.items()}
    return {
        "tokens_per_second": {name: bench.tokens / s for name, s in seconds.items()},
        "time_ratio_to_" + baseline: {name: s / seconds[baseline] for name, s in seconds.items()},
    }


def main(bench: BenchConfig) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = SIZES[bench.size]
    torch.manual_seed(0)
    x = torch.randn(bench.tokens // bench.sequence, bench.sequence, shape["dim"], device=device)

    def training_step(module: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            out = module(x)
            out = out[0] + out[1] if isinstance(out, tuple) else out
            out.float().pow(2).mean().backward()

        return step

    moe = {
        router: MoEFeedForward(shape["dim"], shape["hidden"], 8, 2, router, shape["rank"]).to(device)
        for router in ("linear", "quadratic")
    }
    attention = {
        activation: MultiHeadAttention(shape["dim"], shape["heads"], activation).to(device)
        for activation in ("identity", "gelu")
    }
    results = {
        "moe": compare({k: training_step(m) for k, m in moe.items()}, bench, device, "linear"),
        "attention": compare({k: training_step(m) for k, m in attention.items()}, bench, device, "identity"),
    }
    record = {"bench": asdict(bench), "device": str(device), "torch_threads": torch.get_num_threads(),
              "results": results, "environment": environment_record()}  # fmt: skip
    out = Path(bench.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "moe_attention.json", record)
    print("| block | variant | tokens/s | time / baseline |")
    print("|---|---|---:|---:|")
    for block, row in results.items():
        ratios = next(v for k, v in row.items() if k.startswith("time_ratio"))
        for name, rate in row["tokens_per_second"].items():
            print(f"| {block} | {name} | {rate:,.0f} | {ratios[name]:.3f} |")
    return record


if __name__ == "__main__":
    main(cli_config(BenchConfig, description=__doc__))
