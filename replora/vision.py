"""RepLoRA on ViT-B/16: VTAB-1K (Table 3), FGVC (Table 2) and FGVC sample efficiency (Figure 2 / Table 10).

    python -m replora.vision --config replora/configs/vtab.yaml data_root=/data/vtab-1k
    python -m replora.vision --config replora/configs/fgvc_sample_efficiency.yaml data_root=/data/fgvc

The implementation is shared with HyRA (`common.finetune.vision`); see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.vision import Finetune


@register("replora.vision")
class Vision(Finetune):
    """RepLoRA's ViT-B/16 runs: the shared fine-tuning entry point under this paper's name and configs."""


if __name__ == "__main__":
    Vision.cli()
