"""The BLT-D block-wise diffusion objective (Fast BLT, DESIGN.md §2).

For every patch that has a latent before it (all but a document's BOS patch), a block of B
bytes is cut at the patch start; blocks overlap later patches. Each block byte is replaced by
MASK with probability t ~ U(0, 1) (one t per sequence, torch RNG, so seeded runs repeat); the
decoder predicts every masked byte at its own position. Encoder and global transformer see only
the clean bytes; the decoder sees [clean stream; all blocks] under `masks.block_diffusion_mask`.
Loss = L_clean (next byte) + L_mask, L_mask = sum over masked positions of CE / t, divided by
the number of real block positions (optionally against a target softened toward the model's own
next-byte prediction: `diffusion_distill_weight`).

Choices where the paper is silent: block bytes are embedded by byte lookup (MASK included,
no hash n-grams); block positions past the end of the document or sequence carry no loss and
are *shown as MASK* rather than PAD, so the input never reveals where the document ends (the
model must learn to emit EOS from content, as it must at inference).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .masks import start_indices

T_MIN = 1e-3


@dataclass
class Blocks:
    """Blocks of one batch: start/latent/valid (B, nb); bytes/targets (B, nb, Bs), targets -100 = no loss."""

    start: torch.Tensor
    latent: torch.Tensor
    valid: torch.Tensor
    bytes: torch.Tensor
    targets: torch.Tensor


def cut_blocks(input_ids, labels, ctx, block_size: int, mask_id: int) -> Blocks:
    """One block of `block_size` bytes at every patch start except a document's first byte."""
    if block_size < 1:
        raise ValueError(f"diffusion block size must be >= 1, got {block_size}")
    B, N = input_ids.shape
    opens = ctx.patching.starts & (ctx.position_ids > 0)  # a document's BOS has no latent before it
    start = start_indices(opens, int(opens.sum(-1).max()))  # (B, nb), N = no block
    valid = start < N
    start_c = start.clamp(max=N - 1)
    index = start[..., None] + torch.arange(block_size, device=input_ids.device)  # (B, nb, Bs)
    index_c = index.clamp(max=N - 1).flatten(1)
    gather = lambda t: t.gather(1, index_c).view(index.shape)  # noqa: E731
    inside = (index < N) & (gather(ctx.doc_ids) == ctx.doc_ids.gather(1, start_c)[..., None])
    inside = inside & gather(ctx.valid) & valid[..., None]
    targets = torch.where(inside, gather(labels), -100)
    block_bytes = torch.where(inside, gather(input_ids), mask_id)
    latent = ctx.patching.ids.gather(1, start_c) - 1  # o_{i-1}: the last complete patch before the block
    return Blocks(start, latent, valid, block_bytes, targets)


def ids_before(input_ids, ctx, blocks: Blocks, w: int):
    """(B, nb, w): the w clean ids before each block start, PAD (0) where before its document."""
    N = input_ids.shape[1]
    index = blocks.start.clamp(max=N - 1)[..., None] - w + torch.arange(w, device=input_ids.device)  # (B, nb, w)
    flat = index.clamp(min=0).flatten(1)
    doc_start = ctx.doc_ids.gather(1, blocks.start.clamp(max=N - 1))[..., None]
    same = (index >= 0) & (ctx.doc_ids.gather(1, flat).view(index.shape) == doc_start)
    return torch.where(same, input_ids.gather(1, flat).view(index.shape), 0)


def noise(blocks: Blocks, mask_id: int, t: float | None = None):
    """Mask each real block byte with probability t, t ~ U(0, 1) per sequence unless given (evaluation
    at a fixed noise level). -> (noisy ids, masked, t (B,))."""
    B = blocks.bytes.shape[0]
    t = torch.rand(B, device=blocks.bytes.device) if t is None else torch.full((B,), float(t), device=blocks.bytes.device)
    t = t.clamp(min=T_MIN)
    masked = (torch.rand(blocks.bytes.shape, device=t.device) < t[:, None, None]) & (blocks.targets >= 0)
    noisy = torch.where(masked | (blocks.targets < 0), mask_id, blocks.bytes)
    return noisy, masked, t


def stream(ctx, blocks: Blocks):
    """Per-position attributes of the decoder stream [clean (N); blocks (nb*Bs)], each (B, T)."""
    B, N = ctx.valid.shape
    Bs = blocks.bytes.shape[-1]
    device = ctx.valid.device
    clean_order = torch.arange(N, device=device).expand(B, N)
    offsets = torch.arange(Bs, device=device)
    start_c = blocks.start.clamp(max=N - 1)
    per_block = lambda t: t[..., None].expand(*t.shape, Bs).flatten(1)  # noqa: E731  (B, nb) -> (B, nb*Bs)
    nb = blocks.start.shape[1]
    block_ids = torch.arange(nb, device=device).expand(B, nb)
    return dict(
        order=torch.cat([clean_order, (blocks.start[..., None] + offsets).flatten(1)], 1),
        start=torch.cat([clean_order, per_block(blocks.start)], 1),
        block=torch.cat([torch.full_like(clean_order, -1), per_block(block_ids)], 1),
        pos=torch.cat([ctx.position_ids, (ctx.position_ids.gather(1, start_c)[..., None] + offsets).flatten(1)], 1),
        doc=torch.cat([ctx.doc_ids, per_block(ctx.doc_ids.gather(1, start_c))], 1),
        valid=torch.cat([ctx.valid, per_block(blocks.valid)], 1),
        latent=torch.cat([ctx.patching.latent_ids, per_block(blocks.latent)], 1),
    )


def teacher_logits(logits, blocks: Blocks, masked):
    """(n_masked, V): the clean stream's next-byte logits for each masked block byte (position start + j
    predicts byte start + j + 1, so byte start + j is read at start + j - 1 >= 0: a block never starts at
    a document's first byte), detached so the teacher is not pulled toward the student."""
    Bs = blocks.bytes.shape[-1]
    source = blocks.start[..., None] - 1 + torch.arange(Bs, device=logits.device)  # (B, nb, Bs)
    batch = torch.arange(logits.shape[0], device=logits.device)[:, None, None].expand_as(source)
    return logits[batch[masked], source[masked]].detach()


def masked_block_loss(block_logits, blocks: Blocks, masked, t, teacher=None, distill: float = 0.0):
    """L_mask: CE of masked bytes at their own position, weighted 1/t, over real block positions. With
    `distill` > 0 the target is (1 - distill) * one-hot + distill * softmax(`teacher`), the next-byte
    logits of each masked byte (`teacher_logits`; FastBltConfig.diffusion_distill_weight says why)."""
    real = (blocks.targets >= 0).sum()
    if not masked.any():
        return block_logits.sum() * 0.0  # keeps the graph (and DDP) happy when nothing is masked
    weights = (1.0 / t)[:, None, None].expand_as(masked)[masked]
    student = block_logits[masked].float()
    ce = F.cross_entropy(student, blocks.targets[masked], reduction="none")
    if distill > 0:
        soft = F.cross_entropy(student, teacher.float().softmax(-1), reduction="none")
        ce = (1 - distill) * ce + distill * soft
    return (ce * weights).sum() / real.clamp(min=1)
