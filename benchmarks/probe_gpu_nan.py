"""Attention rows that could trip cuDNN's NaN backward (pytorch/pytorch#196678), counted on the CPU.

For the NaN gradients of the GPU session (MODEL_CARD.md, "GPU session"): the issue's third condition is a
query row whose logsumexp is below -88.7 (= ln of the largest float32). This counts such rows over every
SDPA call of one training forward of the model on 16 real rows spread over the corpus, per (queries,
keys, head dim) shape. (The GPU run's batches cannot be rebuilt here: the device's corpus is its own
Python's standard library, 3.12, not this one.)

    python benchmarks/probe_gpu_nan.py src/blt_hf/default_model
"""

import argparse
import collections

import torch
import torch.nn.functional as F

from blt_hf import FastBltForCausalLM
from blt_hf.data import build_corpus

LN_FLOAT32_MAX = 88.7


def lse_counts(model, rows) -> dict:
    """{(Q, K, d): [rows below -88.7, rows, min logsumexp]} over one forward (no gradient) on `rows`."""
    stats = collections.defaultdict(lambda: [0, 0, float("inf")])
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        k_all = k.float().repeat_interleave(q.shape[1] // k.shape[1], 1)
        scores = q.float() @ k_all.transpose(-1, -2) * kw.get("scale", q.shape[-1] ** -0.5)
        lse = torch.logsumexp(scores if attn_mask is None else scores + attn_mask.float(), -1)
        s = stats[(q.shape[-2], k.shape[-2], q.shape[-1])]
        s[0], s[1], s[2] = s[0] + int((lse < -LN_FLOAT32_MAX).sum()), s[1] + lse.numel(), min(s[2], float(lse.min()))
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    F.scaled_dot_product_attention = spy  # transformers' sdpa_attention_forward looks it up at each call
    try:
        with torch.no_grad():
            model.train()(input_ids=rows, labels=rows)
    finally:
        F.scaled_dot_product_attention = sdpa
    return dict(stats)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    a = p.parse_args()
    train = build_corpus(seq_len=512, function_fraction=0.25)["train"]
    rows = torch.tensor(train.select(range(0, len(train), len(train) // 16)[:16])["input_ids"])
    model = FastBltForCausalLM.from_pretrained(a.model)
    print("attention rows with logsumexp < -88.7 (16 training rows spread over the corpus):")
    for (q, k, d), (low, total, least) in sorted(lse_counts(model, rows).items()):
        print(f"  Q={q:5d} K={k:5d} d={d:3d}: {low:6d} of {total:7d} rows, min {least:8.1f}")


if __name__ == "__main__":
    main()
