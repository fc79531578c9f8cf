"""What the CPU can say about the NaN gradients of the GPU session (MODEL_CARD.md, "GPU session").

1. The attention rows that meet pytorch/pytorch#196678's third condition: the logsumexp of every SDPA
   call's rows in one training forward of the model on real rows, counting rows below -88.7 (= ln of
   the largest float32), per (queries, keys, head dim) shape.
2. The patch count M (the global transformer's sequence length) of each of the first batches of the GPU
   run's data order (Trainer's own sampler, `--seed`, `--batch` rows of 512 bytes), with the patcher in
   fp32 and under bf16 autocast: the issue's cuDNN bug needs a length of 64 modulo 128.

    python benchmarks/probe_gpu_nan.py src/blt_hf/default_model --batches 7
"""

import argparse
import collections
import itertools

import torch
import torch.nn.functional as F

from blt_hf import FastBltForCausalLM
from blt_hf import training as T
from blt_hf.data import build_corpus
from blt_hf.modeling_fast_blt import document_ids, positions_in_document

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


def run_batches(model_path: str, seed: int, batch: int, count: int):
    """The first `count` batches of `blt-hf train`'s data order for this seed and batch size."""
    m, d, args = T.parse_args(["--output_dir", "/tmp/probe_gpu_nan", "--seq_len", "512", "--seed", str(seed),
                               "--per_device_train_batch_size", str(batch), "--use_cpu", "true", "--report_to",
                               "none", "--model_name_or_path", model_path, "--function_fraction", "0.25"])
    corpus = build_corpus(None, d.seq_len, d.validation_fraction, seed=0, function_fraction=d.function_fraction)
    trainer = T.FastBltTrainer(T.build_model(corpus, m, args, d.seq_len), args, train_dataset=corpus["train"],
                               data_collator=T.collator())
    return corpus, [b["input_ids"] for b in itertools.islice(trainer.get_train_dataloader(), count)]


def patch_count(model, ids, bf16: bool) -> int:
    valid = torch.ones_like(ids, dtype=torch.bool)
    doc = document_ids(ids, valid, model.config.bos_token_id)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model.model.patch(ids, valid, positions_in_document(doc, valid), doc).num_patches


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=7)
    a = p.parse_args()
    corpus, batches = run_batches(a.model, a.seed, a.batch, a.batches)
    model = FastBltForCausalLM.from_pretrained(a.model)
    train = corpus["train"]
    rows = torch.tensor(train.select(range(0, len(train), len(train) // 16)[:16])["input_ids"])
    print("attention rows with logsumexp < -88.7 (16 training rows spread over the corpus):")
    for (q, k, d), (low, total, least) in sorted(lse_counts(model, rows).items()):
        print(f"  Q={q:5d} K={k:5d} d={d:3d}: {low:6d} of {total:7d} rows, min {least:8.1f}")
    print(f"patch count M per batch (seed {a.seed}, {a.batch} rows), fp32 / bf16-autocast patcher, M % 128:")
    for i, ids in enumerate(batches, 1):
        counts = [patch_count(model, ids, bf16) for bf16 in (False, True)]
        print(f"  batch {i}: M = {counts}, M % 128 = {[c % 128 for c in counts]}")


if __name__ == "__main__":
    main()
