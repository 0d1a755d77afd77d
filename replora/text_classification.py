"""RepLoRA's sample-efficiency experiment at CPU scale: adapters on a local HF encoder, any labelled CSV.

    python -m common.data.wordnet --out results/data/wordnet_supersenses
    python -m replora.text_classification --config replora/configs/text_minilm.yaml

The implementation is shared with HyRA (`common.finetune.text`); see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.text import TextClassification


@register("replora.text_classification")
class Text(TextClassification):
    """RepLoRA's CPU-scale reproduction: the shared text-classification entry point under this paper's name."""


if __name__ == "__main__":
    Text.cli()
