"""Bits per byte (bpb = nats / ln 2) of a BLT / BLT-D model on packed validation rows.

Two numbers, each an average per predicted byte over the whole split:
  * `next_byte_bpb`: the causal path, -log2 p(x_{i+1} | x_<=i) at every position whose target
    is a byte or EOS. BOS targets are skipped (the byte after EOS is always BOS in packed data,
    a free prediction that would flatter the number) and so is PAD.
  * `masked_block_bpb[t]` (BLT-D only): the model's own training forward with the mask rate
    fixed at t instead of t ~ U(0, 1): every block (B bytes at each patch start, DESIGN.md §2)
    has each real byte masked with probability t; the number is the *unweighted* mean CE of the
    masked bytes, predicted from the clean prefix before the block plus the unmasked block bytes.
    t = 1 is "predict the whole block from the prefix" (one-step decoding); smaller t is easier.
    The masking draws come from a seeded generator, so the numbers repeat.
"""

import math

import torch
import torch.nn.functional as F

from .tokenization_fast_blt import BOS_ID, PAD_ID

DEFAULT_MASK_RATES = (0.25, 0.5, 0.75, 1.0)


def _next_byte_nats(model, ids):
    """(sum of CE nats, number of targets) for one batch on the causal path."""
    logits = model(input_ids=ids).logits[:, :-1]
    targets = ids[:, 1:]
    keep = (targets != BOS_ID) & (targets != PAD_ID)
    ce = F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum")
    return ce.item(), keep.sum().item()


def _masked_block_nats(model, ids, t: float):
    out = model(input_ids=ids, labels=ids, diffusion_t=t)
    masked = out.block_masked
    ce = F.cross_entropy(out.block_logits[masked].float(), out.block_targets[masked], reduction="sum")
    return ce.item(), masked.sum().item()


@torch.no_grad()
def bits_per_byte(model, dataset, batch_size: int = 8, max_rows: int | None = None,
                  mask_rates=DEFAULT_MASK_RATES, seed: int = 0, next_byte: bool = True, progress: bool = False) -> dict:
    """{"next_byte_bpb", "masked_block_bpb": {t: bpb}, "bytes", "rows"} over `dataset["input_ids"]`
    (next_byte=False: the masked-block numbers only); `progress`: a tqdm bar of batches on stderr."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    rows = torch.tensor(dataset["input_ids"][:max_rows])
    diffusion = getattr(model.config, "diffusion_block_size", 0) > 0
    totals = ({"next": [0.0, 0]} if next_byte else {}) | ({t: [0.0, 0] for t in mask_rates} if diffusion else {})
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in tqdm(range(0, len(rows), batch_size), desc="bits per byte (batches)", disable=not progress):
            ids = rows[i:i + batch_size].to(device)
            for key in totals:
                nats, count = _next_byte_nats(model, ids) if key == "next" else _masked_block_nats(model, ids, key)
                totals[key][0] += nats
                totals[key][1] += count
    bpb = {k: nats / max(count, 1) / math.log(2) for k, (nats, count) in totals.items()}
    return dict(next_byte_bpb=bpb.pop("next", None), masked_block_bpb=bpb, bytes=totals.get("next", [0, 0])[1],
                rows=len(rows))
