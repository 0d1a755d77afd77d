"""RepLoRA's sample-efficiency experiment at CPU scale: adapters on a local HF encoder, any labelled CSV.

    python -m common.data.wordnet --out results/data/wordnet_supersenses
    python -m replora.text_classification --config replora/configs/text_minilm.yaml

The implementation is shared with HyRA (`common.finetune.text`); see its docstring for the protocol.
"""

from common.config import cli_config
from common.finetune.text import Config, Point, is_done, main, point_dir, run_point, sweep

__all__ = ["Config", "Point", "is_done", "main", "point_dir", "run_point", "sweep"]

if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
