"""Bits per byte of a model on each held-out standard-library file, next to `xz -9e` on the same file.

    python benchmarks/eval_heldout.py MODEL_DIR [--max-files 40] [--window 512] [--json out.json]

Held-out files are the validation split of blt_hf.data (split by file name hash, never seen in
training). Each file is scored as one document `<s> bytes </s>` with a sliding window: windows of
`--window` bytes advancing by half a window, each byte scored once with at least half a window of
context (the first window scores everything). xz uses Python's lzma with preset 9|EXTREME and the
xz container, i.e. what `xz -9e` writes. Last line: JSON.
"""

import argparse
import json
import lzma
import math

import torch
import torch.nn.functional as F

from blt_hf import FastBltForCausalLM
from blt_hf.data import split_documents, stdlib_documents
from blt_hf.tokenization_fast_blt import encode_bytes


@torch.no_grad()
def document_nats(model, ids: torch.Tensor, window: int) -> tuple[float, int]:
    """Sum of next-byte CE (nats) over every target of `ids` (1-D), and the number of targets."""
    total, count, stride = 0.0, 0, window // 2
    for begin in range(0, max(len(ids) - 1, 1), stride):
        chunk = ids[begin:begin + window][None]
        logits = model(chunk).logits[0, :-1]
        first = 0 if begin == 0 else window - stride - 1  # score only bytes not scored before
        targets = chunk[0, 1:]
        total += F.cross_entropy(logits[first:], targets[first:], reduction="sum").item()
        count += len(targets) - first
        if begin + window >= len(ids):
            break
    return total, count


def xz_bits_per_byte(data: bytes) -> float:
    return 8 * len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)) / len(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--max-files", type=int, default=40)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()

    model = FastBltForCausalLM.from_pretrained(args.model).eval()
    _, held_out = split_documents(stdlib_documents())
    held_out = [d for d in held_out if d.name.endswith(".py")][: args.max_files]
    rows, nats, targets, xz_bits, raw_bytes = [], 0.0, 0, 0.0, 0
    print(f"{'file':48s} {'bytes':>8s} {'model bpb':>10s} {'xz -9e bpb':>11s}")
    for doc in held_out:
        data = doc.text.encode("utf-8")
        ids = torch.from_numpy(encode_bytes([doc.text], add_bos=True, add_eos=True)[0])
        n, c = document_nats(model, ids, args.window)
        row = dict(file=doc.name, bytes=len(data), model_bpb=n / c / math.log(2), xz_bpb=xz_bits_per_byte(data))
        rows.append(row)
        nats, targets = nats + n, targets + c
        xz_bits, raw_bytes = xz_bits + row["xz_bpb"] * len(data), raw_bytes + len(data)
        print(f"{doc.name[:48]:48s} {len(data):8d} {row['model_bpb']:10.3f} {row['xz_bpb']:11.3f}", flush=True)
    summary = dict(files=len(rows), bytes=raw_bytes, model_bpb=nats / targets / math.log(2),
                   xz_bpb=xz_bits / raw_bytes, files_below_xz=sum(r["model_bpb"] < r["xz_bpb"] for r in rows))
    print(f"overall: model {summary['model_bpb']:.3f} bpb, xz -9e {summary['xz_bpb']:.3f} bpb, "
          f"model below xz on {summary['files_below_xz']}/{len(rows)} files")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(summary=summary, files=rows), f, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
