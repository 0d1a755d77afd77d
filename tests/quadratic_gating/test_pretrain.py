"""The GPT2-MoE pre-training entry point (Table 3) on token shards written here: UTF-8 bytes, and a GPT-2-style
byte-level BPE trained on the spot (nothing downloaded); tiny models, a few steps."""

import json

import pytest

from common import runs
from common.config import ConfigError, load_config
from common.data import lm_shards
from quadratic_gating import pretrain

TINY = ["block_size=32", "layers=1", "dim=16", "heads=2", "dense_ffn=32", "expert_ffn=16", "experts=4", "rank=4",
        "steps=6", "val_windows=8", "eval_batch_size=4", "checkpoint_every=3", "optimization.batch_size=8",
        "optimization.micro_batch_size=4", "optimization.warmup_steps=2", "optimization.learning_rate=0.01",
        "min_lr=0.001", "seeds=[0]"]  # fmt: skip
SENTENCES = [
    "The cat sat on the mat and looked at the door.",
    "A dog ran across the field to fetch the ball.",
    "Rain fell on the roof of the old house all night.",
    "She opened the book and began to read aloud.",
]


def write_inputs(tmp_path, tokenizer="bytes"):
    """Shards of a small corpus through `python -m common.data.lm_shards` and a HellaSwag file of 4 examples."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": SENTENCES[i % 4] * 3}) + "\n" for i in range(40)))
    lm_shards.main(["--source", str(corpus), "--tokenizer", tokenizer, "--out", str(tmp_path / "shards"),
                    "--shard-tokens", "1500"])  # fmt: skip
    hellaswag = tmp_path / "hellaswag.jsonl"
    examples = [{"ctx": s[:30], "endings": [t[30:] for t in SENTENCES], "label": i} for i, s in enumerate(SENTENCES)]
    hellaswag.write_text("".join(json.dumps(e) + "\n" for e in examples))  # contexts of 30 bytes + endings > 32
    return tmp_path / "shards", hellaswag


def config(tmp_path, shards, hellaswag, *overrides):
    paths = [f"results_dir={tmp_path / 'r'}", f"shards_dir={shards}", f"hellaswag_path={hellaswag}"]
    return load_config(pretrain.Config, None, [*paths, "tokenizer=bytes", *TINY, *overrides])


def test_dense_and_both_moe_variants_train_evaluate_and_reproduce(tmp_path):
    shards, hellaswag = write_inputs(tmp_path)
    cfg = config(tmp_path, shards, hellaswag)
    pretrain.Pretrain.main(cfg)
    results = {
        p.variant: runs.read_run(pretrain.Pretrain.point_dir(cfg, p))["results"] for p in pretrain.Pretrain.sweep(cfg)
    }
    assert set(results) == {"dense", "moe_linear", "moe_quadratic"}
    for r in results.values():
        assert 0 < r["val_loss"] < 5.6  # log(257) = 5.55: below a uniform guess
        assert r["hellaswag_examples"] == 4 and r["hellaswag"] in (0.0, 25.0, 50.0, 75.0, 100.0)
        assert r["tokens"] == 6 * 8 * 32
    # 4 experts of 16 against a dense FFN of 32: the same active FFN weights; the router and one more output bias
    assert results["moe_linear"]["active_params"] - results["dense"]["active_params"] == 16 * 4 + 16
    assert results["moe_quadratic"]["active_params"] > results["moe_linear"]["active_params"]
    two_blocks = config(tmp_path, shards, hellaswag, "layers=2", "moe_every=2")
    model = pretrain.build(two_blocks, "moe_linear", 257)
    assert [type(block.mlp).__name__ for block in model.transformer.h] == ["GPT2MLP", "MoEMLP"]
    log = (pretrain.Pretrain.point_dir(cfg, pretrain.Point("dense", 0)) / "log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["lr"] == pytest.approx(0.001, rel=0.05)  # the cosine ends at min_lr, not 0

    again = config(tmp_path, shards, hellaswag, f"results_dir={tmp_path / 'again'}", "variants=[moe_quadratic]")
    pretrain.Pretrain.main(again)
    path = pretrain.Pretrain.point_dir(again, pretrain.Point("moe_quadratic", 0))
    assert runs.read_run(path)["results"]["val_loss"] == results["moe_quadratic"]["val_loss"]  # fixed seed
    written = (path / "results.json").stat().st_mtime_ns
    pretrain.Pretrain.main(again)  # done: nothing runs again
    assert (path / "results.json").stat().st_mtime_ns == written

    from quadratic_gating import tables

    tables.main(tables.TablesConfig(results_dir=cfg.results_dir, out_dir=str(tmp_path / "tables")))
    table = (tmp_path / "tables" / "table03_gpt2_moe.md").read_text()
    assert "moe_quadratic" in table and "2.9712" in table and "32.11" in table  # the paper's quadratic-router row


def test_a_local_byte_level_bpe_tokenizer_writes_and_reads_the_shards(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 10, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    folder = tmp_path / "bpe"
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(folder)
    tokenizer = lm_shards.load_tokenizer(str(folder))
    assert tokenizer.eot == 0 and 256 < tokenizer.vocab_size <= 300
    assert len(tokenizer.encode(SENTENCES[0])) < len(SENTENCES[0]) / 2  # merges, not bytes

    shards, hellaswag = write_inputs(tmp_path, tokenizer=str(folder))
    cfg = config(tmp_path, shards, hellaswag, f"tokenizer={folder}", "variants=[moe_linear]", "steps=2")
    pretrain.Pretrain.main(cfg)
    results = runs.read_run(pretrain.Pretrain.point_dir(cfg, pretrain.Point("moe_linear", 0)))["results"]
    assert 0 < results["val_loss"] < 6 and results["hellaswag_examples"] == 4


def test_bad_input_names_the_field_or_file(tmp_path):
    shards, hellaswag = write_inputs(tmp_path)
    with pytest.raises(ConfigError, match="variants"):
        config(tmp_path, shards, hellaswag, "variants=[moe_cosine]")
    with pytest.raises(ConfigError, match="moe_every"):
        config(tmp_path, shards, hellaswag, "moe_every=0")
    with pytest.raises(ConfigError, match="min_lr"):
        config(tmp_path, shards, hellaswag, "min_lr=0.5")
    with pytest.raises(ConfigError, match="no train shards"):
        pretrain.Pretrain.main(config(tmp_path, tmp_path / "nowhere", hellaswag))
    with pytest.raises(ConfigError, match="block_size"):
        pretrain.Pretrain.main(config(tmp_path, shards, hellaswag, "block_size=5000"))  # longer than the shards
    with pytest.raises(ConfigError, match="missing.jsonl"):
        pretrain.Pretrain.main(config(tmp_path, shards, tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="tokenizer"):
        pretrain.Pretrain.main(config(tmp_path, shards, hellaswag, f"tokenizer={tmp_path / 'no_tokenizer'}"))
    # shards of one tokenizer read with another: the ids do not fit
    other = tmp_path / "wide"
    lm_shards.write_shards(["x" * 400] * 4, lambda text: [1000] * len(text), 999, other, shard_tokens=500)
    with pytest.raises(ConfigError, match="ids >= 257"):
        pretrain.Pretrain.main(config(tmp_path, other, hellaswag))
    assert not (tmp_path / "r").exists()  # every check ran before any work
