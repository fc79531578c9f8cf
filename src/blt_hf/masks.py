"""Every attention mask of the model, one named function each.

Masks are boolean, shape (B, 1, Q, K), True = may attend; `additive` turns one into the float
form (0 / dtype-min) that both the eager and SDPA paths take. A row with no allowed key (a padding
query, e.g. the pooling slots of the patches a shorter row lacks) is opened to every key instead, as
transformers' own SDPA masks do for the memory-efficient kernel: its output is never read, and an
all-masked row would become all -inf wherever the mask is cast down (CUDA autocast runs SDPA in
bf16, where fp32's min rounds to -inf), a row fused kernels need not answer with finite gradients.
Positions are per-row position ids, not tensor indices, so a left-padded row sees exactly the
mask it would see alone.
"""

from dataclasses import dataclass

import torch


def start_indices(starts, count: int):
    """(B, N) bool -> (B, count) indices of the True entries in order, N where a row has fewer."""
    N = starts.shape[1]
    index = torch.arange(N, device=starts.device).expand_as(starts)
    return torch.where(starts, index, N).sort(-1).values[:, :count]


def additive(mask, dtype: torch.dtype):
    """Boolean mask -> additive float mask for attention scores; rows with no allowed key see every key."""
    if isinstance(mask, BlockDiffusionMask):
        return mask.additive(dtype)
    return fill_masked(mask | ~mask.any(-1, keepdim=True), dtype)


def fill_masked(mask, dtype: torch.dtype):
    """Boolean mask -> 0 where allowed, dtype-min elsewhere (fully masked rows stay so)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def causal_mask(q_pos, k_pos, k_valid, window: int | None = None, q_doc=None, k_doc=None):
    """Causal (optionally sliding-window) self-attention over bytes or patches.

    q_pos (B, Q), k_pos (B, K): position ids (restarting at each packed document);
    k_valid (B, K): False for padding keys; q_doc/k_doc: document ids, None = one document.
    Example, 4 positions, window 2 (rows = queries):
        1 0 0 0
        1 1 0 0
        0 1 1 0
        0 0 1 1
    """
    q, k = q_pos[:, :, None], k_pos[:, None, :]
    not_future = k <= q
    in_window = (q - k < window) if window is not None else torch.ones_like(not_future)
    real_key = k_valid[:, None, :]
    same_doc = (q_doc[:, :, None] == k_doc[:, None, :]) if q_doc is not None else torch.ones_like(not_future)
    return (not_future & in_window & real_key & same_doc)[:, None]


def patch_pool_mask(patch_ids: torch.Tensor, num_patches: int, k: int) -> torch.Tensor:
    """Encoder cross-attention: each of a patch's k query slots sees only that patch's bytes.

    patch_ids (B, N), -1 for padding bytes. Returns (B, 1, M*k, N). Example, bytes in patches
    [0, 1, 1, 2], k = 1:
        1 0 0 0
        0 1 1 0
        0 0 0 1
    """
    patches = torch.arange(num_patches, device=patch_ids.device).repeat_interleave(k)
    own_bytes = patches[None, :, None] == patch_ids[:, None, :]
    return own_bytes[:, None]


def decoder_cross_mask(latent_ids: torch.Tensor, num_patches: int, k: int) -> torch.Tensor:
    """Decoder cross-attention: byte i sees the k slots of latent `latent_ids[:, i]`.

    latent_ids (B, N) comes from `decoder_latent_ids`; returns (B, 1, N, M*k).
    """
    patches = torch.arange(num_patches, device=latent_ids.device).repeat_interleave(k)
    own_latent = latent_ids[:, :, None] == patches[None, None, :]
    return own_latent[:, None]


def decoder_latent_ids(patch_ids: torch.Tensor, next_starts: torch.Tensor) -> torch.Tensor:
    """Index of the global latent each byte's prediction may read (BLT's decoder alignment).

    Byte i predicts byte i+1, so it may read o_p only if patch p is complete, i.e. if byte i+1
    opens a new patch (`next_starts[:, i]`, known from bytes <= i): non-final bytes of patch p
    read o_{p-1}, the final byte reads o_p. o_p for a non-final byte would leak the future.
    patch_ids, next_starts (B, N) -> (B, N) long; negative for padding.
    """
    return patch_ids + next_starts.long() - 1


def block_diffusion_mask(q: dict, k: dict, window: int | None = None):
    """Decoder self-attention over [clean stream; noised blocks] for the BLT-D objective (DESIGN §2.4).

    `q` and `k` describe query and key positions, each a dict of (B, T) tensors: `order` the byte
    index in the row, `start` the block's first byte index (= order for clean bytes), `block` the
    block id (-1 = clean), `pos` the RoPE position, `doc` the document id, `valid` False on padding.
    Pass the same stream twice for the dense mask, or sub-streams for its parts. Terms:
      clean_sees_clean  -- ordinary causal attention between clean bytes;
      block_sees_prefix -- a block sees clean bytes strictly before its start (those at or after
                           the start hold the answers);
      block_sees_itself -- bidirectional inside the block, never another block.
    Example: 4 clean bytes, one block of 2 starting at byte 2 (rows = queries):
        c0 c1 c2 c3 b2 b3
        1  0  0  0  0  0      c0
        1  1  0  0  0  0      c1
        1  1  1  0  0  0      c2
        1  1  1  1  0  0      c3
        1  1  0  0  1  1      b2
        1  1  0  0  1  1      b3
    """
    col = lambda name: q[name][:, :, None]  # noqa: E731  (B, Q, 1)
    row = lambda name: k[name][:, None, :]  # noqa: E731  (B, 1, K)
    q_clean, k_clean = col("block") < 0, row("block") < 0
    clean_sees_clean = q_clean & k_clean & (row("order") <= col("order"))
    block_sees_prefix = ~q_clean & k_clean & (row("order") < col("start"))
    block_sees_itself = ~q_clean & (col("block") == row("block"))
    same_doc = col("doc") == row("doc")
    in_window = (col("pos") - row("pos") < window) if window is not None else True
    allowed = ((clean_sees_clean | block_sees_prefix) & same_doc & in_window) | block_sees_itself
    return (allowed & row("valid"))[:, None]


@dataclass
class BlockDiffusionMask:
    """`block_diffusion_mask` in the parts that are not all-False, for [clean (N); nb blocks of Bs]:
    clean (B,1,N,N), prefix (B,1,nb*Bs,N) and own (B,1,nb,1,Bs) (a block sees itself). Dense
    attention over the whole stream would spend most of its work on block-to-other-block pairs."""

    clean: torch.Tensor
    prefix: torch.Tensor
    own: torch.Tensor
    num_blocks: int
    block_size: int

    @classmethod
    def from_stream(cls, s: dict, num_clean: int, num_blocks: int, block_size: int, window=None):
        clean = {name: t[:, :num_clean] for name, t in s.items()}
        blocks = {name: t[:, num_clean:] for name, t in s.items()}
        B = s["valid"].shape[0]
        own = blocks["valid"].view(B, 1, num_blocks, 1, block_size)
        return cls(block_diffusion_mask(clean, clean, window), block_diffusion_mask(blocks, clean, window), own,
                   num_blocks, block_size)

    def additive(self, dtype):
        # The clean part goes through SDPA; prefix and own share one fp32 softmax per block query
        # (`block_diffusion_attention`), where a block with no prefix still sees itself: no row opening there.
        return BlockDiffusionMask(additive(self.clean, dtype), fill_masked(self.prefix, dtype),
                                  fill_masked(self.own, dtype), self.num_blocks, self.block_size)
