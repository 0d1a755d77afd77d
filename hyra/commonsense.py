"""HyRA on LLaMA-7B/13B: commonsense reasoning (Table 3; Table 5 with up/down; Figure 2 sample efficiency).

    python -m hyra.commonsense --config hyra/configs/commonsense_llama7b.yaml data_root=/data/commonsense

The implementation is shared with RepLoRA (`common.finetune.commonsense`); see its docstring for the protocol.
"""

from common.config import cli_config
from common.finetune.commonsense import Config, Point, check_inputs, is_done, main, point_dir, run_point, sweep

__all__ = ["Config", "Point", "check_inputs", "is_done", "main", "point_dir", "run_point", "sweep"]

if __name__ == "__main__":
    main(cli_config(Config, description=__doc__))
