"""RepLoRA on LLaMA-7B/13B: commonsense reasoning (Table 1, Table 8 settings; Table 14 linear vs non-linear).

    python -m replora.commonsense --config replora/configs/commonsense_llama7b.yaml data_root=/data/commonsense

The implementation is shared with HyRA (`common.finetune.commonsense`); see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.commonsense import Finetune


@register("replora.commonsense")
class Commonsense(Finetune):
    """RepLoRA's LLaMA runs: the shared fine-tuning entry point under this paper's name and configs."""


if __name__ == "__main__":
    Commonsense.cli()
