"""RepLoRA on Video Swin-B: Something-Something v2 and HMDB51 (Table 4; linear vs non-linear, Table 13).

    python -m replora.video --config replora/configs/video_ssv2.yaml data_root=/data/ssv2
    python -m replora.video --config replora/configs/video_hmdb51.yaml data_root=/data/hmdb51

The implementation is `common.finetune.video`; see its docstring for the protocol.
"""

from common.experiment import register
from common.finetune.video import Finetune


@register("replora.video")
class Video(Finetune):
    """RepLoRA's Video Swin-B runs under this paper's name and configs."""


if __name__ == "__main__":
    Video.cli()
