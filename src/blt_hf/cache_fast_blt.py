"""Pre-allocated generation state for FastBltForCausalLM: every buffer is written by index, nothing grows.

Layout: row b of the batch owns columns 0..T-1 ("slots"); slot j holds the j-th byte of that row
as generation laid it out (left padding included). `SlotKV` holds one component's keys/values for
all of its layers; before each component call the generator sets `cols` (where this call's new
entries go, per row) and `hi` (how many columns the attention reads). Rows therefore advance
independently (BLT-S / BLT-DV accept different byte counts per row). Rollback = moving a row's
`length` back: columns at or past it are stale and every mask admits only columns below it, so
nothing is copied or cleared. The global transformer's cache works the same way with one slot
per patch.
"""

from dataclasses import dataclass

import torch

POS, VALID, PID, NSTART, DIST = range(5)  # fields of DecodeState.meta
EMPTY_ROW = (0, 0, -1, 1, 0)  # a row with no byte yet: the first byte opens patch 0


class SlotKV:
    """Keys/values (layers, B, h_kv, T, d), with DynamicCache's `update(k, v, layer_idx)` contract."""

    def __init__(self, num_layers, batch, heads, length, head_dim, dtype, device):
        self.k = torch.zeros(num_layers, batch, heads, length, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.cols = None  # (B, Q) long: the columns of this call's Q new entries, per row
        self.hi = 0  # host int: attention reads columns [0, hi); >= every row's end

    def update(self, k, v, layer_idx):
        # k, v (B, h, Q, d) -> scattered into each row's own columns; return (B, h, hi, d) views.
        index = self.cols[:, None, :, None].expand_as(k)
        self.k[layer_idx].scatter_(2, index, k)
        self.v[layer_idx].scatter_(2, index, v)
        return self.k[layer_idx, :, :, : self.hi], self.v[layer_idx, :, :, : self.hi]


def stack_cache(stack_config, batch, length, dtype, device) -> SlotKV:
    c = stack_config
    return SlotKV(c.num_hidden_layers, batch, c.num_key_value_heads, length, c.head_dim, dtype, device)


@dataclass
class DecodeState:
    """Per-slot byte buffers (B, T), per-patch latents, the four caches and per-row counters.

    pid: patch id of the byte (-1 padding); nstart: the NEXT byte opens a patch; dist: distance of
    the next byte from the last entropy (or forced) patch start, for the max_patch_length split.
    lat (B, T, k, Hd): decoder-side latent slots of every patch the global model has processed.
    length (B,): committed columns (patcher + encoder done); glob (B,): patches through the global model.
    """

    ids: torch.Tensor
    meta: torch.Tensor  # (B, T, 5) long: pos, valid, pid, nstart, dist -- one tensor, so one gather reads all
    enc: torch.Tensor
    lat: torch.Tensor
    length: torch.Tensor
    glob: torch.Tensor
    patcher: SlotKV | None
    encoder: SlotKV
    decoder: SlotKV
    global_: SlotKV
    len_hi: int = 0  # host-side upper bound of length.max()
    slack: int = 0  # columns past len_hi that a draft or a BLT-D block may occupy
    patch_hi: int = 0  # host-side upper bound of the patch count
    empty_row: torch.Tensor | None = None  # EMPTY_ROW on the device (no host->device copy per step)

    @property
    def capacity(self) -> int:
        return self.ids.shape[1]

    pos = property(lambda self: self.meta[..., POS])
    valid = property(lambda self: self.meta[..., VALID])
    pid = property(lambda self: self.meta[..., PID])
    nstart = property(lambda self: self.meta[..., NSTART])
    dist = property(lambda self: self.meta[..., DIST])


def new_state(config, batch: int, capacity: int, slack: int, dtype, device, with_patcher: bool) -> DecodeState:
    """Empty state for `batch` rows of at most `capacity` slots (prompt + new bytes + a draft/block)."""
    long = dict(dtype=torch.long, device=device)
    dec = config.decoder_config
    return DecodeState(
        ids=torch.zeros(batch, capacity, **long), meta=torch.zeros(batch, capacity, 5, **long),
        enc=torch.zeros(batch, capacity, config.encoder_config.hidden_size, dtype=dtype, device=device),
        lat=torch.zeros(batch, capacity, config.cross_attn_k, dec.hidden_size, dtype=dtype, device=device),
        length=torch.zeros(batch, **long), glob=torch.zeros(batch, **long),
        patcher=stack_cache(config.patcher_config, batch, capacity, dtype, device) if with_patcher else None,
        encoder=stack_cache(config.encoder_config, batch, capacity, dtype, device),
        decoder=stack_cache(dec, batch, capacity, dtype, device),
        global_=stack_cache(config.global_config, batch, capacity, dtype, device), slack=slack,
        empty_row=torch.tensor(EMPTY_ROW, device=device),
    )


def tail(st: DecodeState) -> torch.Tensor:
    """(B, 5) meta of each row's last committed byte (EMPTY_ROW for rows with none), one gather."""
    col = (st.length - 1).clamp(min=0)[:, None, None].expand(-1, 1, 5)
    return torch.where(st.length[:, None] > 0, st.meta.gather(1, col)[:, 0], st.empty_row)


def set_tail(st: DecodeState, field: int, value: torch.Tensor) -> None:
    """Write (B,) `value` into one meta field at each row's last committed byte (rows with none: no-op)."""
    col = (st.length - 1).clamp(min=0)[:, None]
    old = st.meta[..., field].gather(1, col)[:, 0]
    st.meta[..., field].scatter_(1, col, torch.where(st.length > 0, value, old)[:, None])


def complete_patches(st: DecodeState, t=None) -> torch.Tensor:
    """(B,) patches whose every byte is known: the last byte's patch counts if the next byte opens one."""
    t = tail(st) if t is None else t
    return t[:, PID] + t[:, NSTART]


def rollback(st: DecodeState, keep: torch.Tensor) -> None:
    """Keep only the first `keep` (B,) committed columns of each row; nothing is copied."""
    st.length = keep
    st.glob = torch.minimum(st.glob, complete_patches(st))
