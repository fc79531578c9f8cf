"""Build a small random BLT, save it, reload it through the Auto classes, continue a prompt greedily.

    python examples/quickstart.py [--out DIR]
"""

import argparse
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import blt_hf  # noqa: F401  (registers "fast_blt" with the Auto classes)
from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltTokenizer


def small_config() -> FastBltConfig:
    local = dict(hidden_size=64, num_attention_heads=2)
    return FastBltConfig(
        encoder_hash_byte_group_size=[3, 4, 5], encoder_hash_byte_group_vocab=1024,
        patcher_config=dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2),
        encoder_config=dict(local, num_hidden_layers=1),
        decoder_config=dict(local, num_hidden_layers=2),
        global_config=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="where to save the model (default: a temp dir)")
    parser.add_argument("--prompt", default="def hello(name):")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="blt_hf_")

    torch.manual_seed(0)
    FastBltForCausalLM(small_config()).save_pretrained(out)
    FastBltTokenizer().save_pretrained(out)

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer(args.prompt, return_tensors="pt").input_ids
    new = model.generate(ids, max_new_tokens=32, do_sample=False)[0, ids.shape[1]:]
    print(f"{type(model).__name__} ({model.num_parameters():,} parameters, random weights) saved to {out}")
    print(repr(args.prompt + tokenizer.decode(new, skip_special_tokens=True)))


if __name__ == "__main__":
    main()
