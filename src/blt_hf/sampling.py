"""Samplers and BLT-D unmasking rules as pure tensor functions (no host sync, no per-row loops).

Every function works on any leading shape (B, ...) and is vectorised over batch and block.
Unmasking rules take the still-masked positions `masked` (B, Bs) and a per-position score and
return the positions to fill this pass (B, Bs) bool; a row with any masked position always gets
at least one, so a block is full after at most Bs passes (Fast BLT, Section 3 / DESIGN.md §3).
"""

import torch


def process_logits(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Temperature, top-k and top-p (nucleus) filtering of (..., V) logits; removed entries -> -inf."""
    logits = logits / max(temperature, 1e-6)
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


def sample(logits, do_sample: bool, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """(..., V) logits -> (ids (...), probability of each chosen id under the processed distribution)."""
    if not do_sample:
        probs = logits.float().softmax(-1)
        ids = logits.argmax(-1)
    else:
        probs = process_logits(logits.float(), temperature, top_k, top_p).softmax(-1)
        flat = probs.reshape(-1, probs.shape[-1])
        ids = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
    return ids, probs.gather(-1, ids[..., None])[..., 0]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(..., V) -> (...) entropy in nats of softmax(logits), computed as torch.distributions does.

    The one entropy of the package: the patcher's boundaries (equal to transformers' BLT) and the
    entropy-bound unmasking rule both use it."""
    logits = logits.float()
    logp = logits - logits.logsumexp(-1, keepdim=True)
    return -(logp.clamp(min=torch.finfo(logp.dtype).min) * logp.softmax(-1)).sum(-1)


def first_true(mask):
    """(B, Bs) bool -> one-hot of the first True per row (all False where a row has none)."""
    cum = mask.long().cumsum(-1)
    return mask & (cum == 1)


# "end_block" and "next_or_end" (ours, not the paper's) are applied by the decoder, which alone knows where a
# block's decided prefix ends (generation_fast_blt.denoise): a pass where nothing passes the threshold ends
# the block there ("next_or_end": unless the most confident masked byte is the next one in order, which
# is then committed, so blocks are cut only where the paper's fallback would jump ahead).
FALLBACKS = ("most_confident", "leftmost", "end_block", "next_or_end")


def unmask_confidence(confidence, masked, alpha: float, fallback: str = "most_confident"):
    """Paper rule: every masked position whose confidence > alpha; if none, the single most confident
    (ties to the leftmost: argmax returns the first maximum) or, with fallback="leftmost", the
    leftmost masked position (left-to-right decoding whenever the model is unsure)."""
    chosen = masked & (confidence > alpha)
    if fallback == "leftmost":
        extra = first_true(masked)
    else:
        best = torch.where(masked, confidence, float("-inf")).argmax(-1, keepdim=True)
        extra = torch.zeros_like(masked).scatter(-1, best, True) & masked
    return chosen | (extra & ~chosen.any(-1, keepdim=True))


def unmask_entropy_bound(entropies, masked, gamma: float):
    """Paper rule: sort masked positions by entropy (ascending), take the longest prefix whose summed
    entropy <= gamma, at least one. We bound the plain sum (not sum - max as DiffusionGemma's
    EntropyBoundSampler does); equal entropies keep left-to-right order (stable sort)."""
    ent = torch.where(masked, entropies.float(), float("inf"))
    sorted_ent, order = ent.sort(dim=-1, stable=True)
    rank = torch.arange(ent.shape[-1], device=ent.device)
    take_sorted = ((sorted_ent.cumsum(-1) <= gamma) | (rank == 0)) & sorted_ent.isfinite()
    return torch.zeros_like(masked).scatter(-1, order, take_sorted)


def unmask_all(masked):
    """One-step rule: every masked position in a single pass."""
    return masked.clone()


def select_positions(rule: str, masked, confidence, entropies, alpha: float, gamma: float,
                     fallback: str = "most_confident"):
    if rule == "confidence":
        return unmask_confidence(confidence, masked, alpha, fallback)
    if rule == "entropy_bound":
        return unmask_entropy_bound(entropies, masked, gamma)
    return unmask_all(masked)
