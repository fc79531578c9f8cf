"""Pre-allocated generation state for FastBltForCausalLM: every buffer is written by index, nothing grows.

Layout: row b of the batch owns columns 0..T-1 ("slots"); slot j holds the j-th byte of that row
as generation laid it out (left padding included). `SlotKV` holds one component's keys/values for
all of its layers; a component call writes its new entries at explicit per-row columns
(`SlotKV.at(cols, hi)`), so rows advance independently (BLT-S / BLT-DV accept different byte counts
per row). Rollback = moving a row's `length` back: columns at or past it are stale and every mask
admits only columns below it, so nothing is copied or cleared. The global transformer's cache
works the same way with one slot per patch.

Static shapes (`static=True`, generate's `cache_implementation="static"`): attention reads every
column (`view()` = capacity) and masks admit the committed ones, so a decoding step's tensors keep
one shape from step to step and the step can be compiled or graph-captured.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import torch


class SlotKV:
    """Keys/values of one component: per layer, (B, h_kv, T, d) each. One tensor per layer, not views of
    one stacked tensor: a compiled step then updates them in place (a write into a view of a graph
    input is functionalized into a copy of the whole base)."""

    def __init__(self, num_layers, batch, heads, length, head_dim, dtype, device):
        shape = (batch, heads, length, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    def at(self, cols: torch.Tensor, hi: int) -> "SlotWrite":
        """The cache argument of one component call: its Q new entries go to columns `cols` (B, Q) of
        each row, and attention reads columns [0, hi) (hi >= every row's end)."""
        return SlotWrite(self, cols, hi, row_index(cols))


class SlotWrite(NamedTuple):
    """DynamicCache's `update(k, v, layer_idx) -> (k_all, v_all)` contract, on SlotKV's buffers."""

    kv: SlotKV
    cols: torch.Tensor
    hi: int
    rows: torch.Tensor  # row_index(cols), once per call rather than per layer

    def update(self, k, v, layer_idx):
        # k, v (B, h, Q, d) -> written into each row's own columns; return (B, h, hi, d) views.
        self.kv.k[layer_idx][self.rows, :, self.cols] = k.transpose(1, 2)  # (B, Q, h, d): indexed dims first
        self.kv.v[layer_idx][self.rows, :, self.cols] = v.transpose(1, 2)
        return self.kv.k[layer_idx][:, :, : self.hi], self.kv.v[layer_idx][:, :, : self.hi]


def row_index(cols: torch.Tensor) -> torch.Tensor:
    """(B, 1) row numbers to pair with per-row columns (B, Q) in an indexed write.

    Every write into the pre-allocated buffers is an indexed assignment (`index_put_`), not a
    `scatter_`: in a compiled step inductor updates the former in place, while a scatter into a graph
    input becomes a copy of the whole buffer (measured: the caches' size copied at every step)."""
    return torch.arange(cols.shape[0], device=cols.device)[:, None]


def put_columns(buffer: torch.Tensor, cols: torch.Tensor, values: torch.Tensor) -> None:
    """buffer[b, cols[b, q]] = values[b, q] for (B, T, ...) buffers (see row_index)."""
    buffer[row_index(cols), cols] = values


def stack_cache(stack_config, batch, length, dtype, device) -> SlotKV:
    c = stack_config
    return SlotKV(c.num_hidden_layers, batch, c.num_key_value_heads, length, c.head_dim, dtype, device)


class Tail(NamedTuple):
    """Per-byte fields (each (B,)) of every row's last committed byte; EMPTY for a row with none."""

    pos: torch.Tensor  # position in the document
    valid: torch.Tensor  # 0 on padding
    pid: torch.Tensor  # patch id, -1 on padding
    nstart: torch.Tensor  # 1 if the NEXT byte opens a patch
    dist: torch.Tensor  # distance of the next byte from the last entropy (or forced) patch start


EMPTY = Tail(0, 0, -1, 1, 0)  # a row with no byte yet: the first byte opens patch 0
BYTE_FIELDS = Tail._fields


@dataclass
class DecodeState:
    """Per-slot byte buffers (B, T), per-patch latents, the four caches and per-row progress.

    ids, pos, valid, pid, nstart, dist (B, T) long: the byte and its `Tail` fields, per slot.
    enc (B, T, He): encoder states. lat (B, T, k, Hd): decoder-side latent slots of every patch the
    global model has processed. length (B,): committed columns (patcher + encoder done); glob (B,):
    patches through the global model.
    """

    ids: torch.Tensor
    pos: torch.Tensor
    valid: torch.Tensor
    pid: torch.Tensor
    nstart: torch.Tensor
    dist: torch.Tensor
    enc: torch.Tensor
    lat: torch.Tensor
    length: torch.Tensor
    glob: torch.Tensor
    patcher: SlotKV | None
    encoder: SlotKV
    decoder: SlotKV
    global_: SlotKV
    static: bool = False  # attention over every column (fixed shapes) instead of the used ones
    compile_config: object = None  # transformers CompileConfig of the decoding steps (static only), None = eager
    compiled: dict = field(default_factory=dict)  # step function -> its compiled form, for this generation
    len_hi: int = 0  # host-side upper bound of length.max()
    slack: int = 0  # columns past len_hi that a draft or a BLT-D block may occupy
    patch_hi: int = 0  # host-side upper bound of the patch count

    @classmethod
    def empty(cls, config, batch: int, capacity: int, slack: int, dtype, device, with_patcher: bool,
              static: bool = False) -> "DecodeState":
        """State for `batch` rows of at most `capacity` slots (prompt + new bytes + a draft/block)."""
        dec = config.decoder_config
        fields = {name: torch.zeros(batch, capacity, dtype=torch.long, device=device) for name in ("ids", *BYTE_FIELDS)}
        return cls(
            **fields, enc=torch.zeros(batch, capacity, config.encoder_config.hidden_size, dtype=dtype, device=device),
            lat=torch.zeros(batch, capacity, config.cross_attn_k, dec.hidden_size, dtype=dtype, device=device),
            length=torch.zeros(batch, dtype=torch.long, device=device),
            glob=torch.zeros(batch, dtype=torch.long, device=device),
            patcher=stack_cache(config.patcher_config, batch, capacity, dtype, device) if with_patcher else None,
            encoder=stack_cache(config.encoder_config, batch, capacity, dtype, device),
            decoder=stack_cache(dec, batch, capacity, dtype, device),
            global_=stack_cache(config.global_config, batch, capacity, dtype, device), static=static, slack=slack,
        )

    def buffers(self) -> list[torch.Tensor]:
        """Every pre-allocated tensor (what a compiled step updates in place)."""
        tensors = [getattr(self, name) for name in ("ids", *BYTE_FIELDS, "enc", "lat")]
        for kv in (self.patcher, self.encoder, self.decoder, self.global_):
            if kv is not None:
                tensors += kv.k + kv.v
        return tensors

    @property
    def capacity(self) -> int:
        return self.ids.shape[1]

    def view(self) -> int:
        """Columns byte-level attention reads: every committed byte plus room for a draft / block
        (all of them with static shapes)."""
        return self.capacity if self.static else min(self.len_hi + self.slack, self.capacity)

    def tail(self) -> Tail:
        """Each row's last committed byte (EMPTY for rows with none)."""
        col = (self.length - 1).clamp(min=0)[:, None]
        some = self.length > 0
        return Tail(*(torch.where(some, getattr(self, name).gather(1, col)[:, 0], empty)
                      for name, empty in zip(BYTE_FIELDS, EMPTY)))

    def set_tail(self, name: str, value: torch.Tensor) -> None:
        """Write (B,) `value` into one byte field at each row's last committed byte (rows with none: no-op)."""
        col = (self.length - 1).clamp(min=0)[:, None]
        field = getattr(self, name)
        put_columns(field, col, torch.where(self.length > 0, value, field.gather(1, col)[:, 0])[:, None])

    def write(self, cols: torch.Tensor, **values) -> None:
        """Store (B, Q) values of the named byte fields at columns `cols` (B, Q)."""
        for name, value in values.items():
            put_columns(getattr(self, name), cols, value)

    def read(self, name: str, cols: torch.Tensor) -> torch.Tensor:
        return getattr(self, name).gather(1, cols)

    def complete_patches(self, t: Tail | None = None) -> torch.Tensor:
        """(B,) patches whose every byte is known: the last byte's patch counts if the next byte opens one."""
        t = self.tail() if t is None else t
        return t.pid + t.nstart

    def latest_latent(self) -> torch.Tensor:
        """(B,) the last complete patch: the latent a draft or a BLT-D block reads."""
        return (self.complete_patches() - 1).clamp(min=0)

    def rollback(self, keep: torch.Tensor) -> None:
        """Keep only the first `keep` (B,) committed columns of each row; nothing is copied."""
        self.length = keep
        self.glob = torch.minimum(self.glob, self.complete_patches())
        self.len_hi = int(keep.max())
