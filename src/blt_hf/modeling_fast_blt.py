"""The Byte Latent Transformer (Pagnoni et al. 2024) as a transformers `PreTrainedModel`.

Data flow: entropy patcher -> patch starts; bytes + hash n-gram embeddings -> local encoder
-> cross-attention pooling into one latent per patch -> global transformer over patches ->
local decoder (bytes cross-attend the latent of the last *complete* patch) -> next-byte logits.
Module and parameter names equal transformers' `BltForCausalLM`, so its checkpoints load
unchanged and the logits agree to fp32 round-off. Components take explicit masks, positions
and an optional KV cache so that `generation_fast_blt.py` can run them on a few new bytes.
Shapes: B batch, N bytes, M patches, k = cross_attn_k, He/Hg/Hd encoder/global/decoder width.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_fast_blt import FastBltConfig, fast_blt_config_from_blt
from .diffusion_objective import cut_blocks, ids_before, masked_block_loss, noise, stream, teacher_logits
from .generation_config_fast_blt import FastBltGenerationConfig
from .generation_fast_blt import generate
from .inputs import byte_ids
from .masks import (BlockDiffusionMask, additive, causal_mask, decoder_cross_mask, decoder_latent_ids, patch_pool_mask,
                    start_indices)
from .patching import patch_starts_from_entropies
from .sampling import entropy
from .tokenization_fast_blt import BYTE_OFFSET

# Where from_pretrained looks for a file: passed through when reading a checkpoint's config first.
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")

# ----------------------------------------------------------------------------- primitives


class FastBltRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x32.to(x.dtype)


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """RoPE tables (B, N, head_dim), *interleaved* pairs (2i, 2i+1) as in the released BLT weights."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=position_ids.device) / head_dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.repeat_interleave(freqs, 2, dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


class FastBltMLP(nn.Module):
    """SwiGLU feed-forward."""

    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Reference attention. query (B, h, Q, d); key/value (B, h_kv, K, d); mask additive (B, 1, Q, K)."""
    groups = module.num_key_value_groups
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


# cuDNN's SDPA backward returns NaN on H100/H200 for some shapes when a mask is given and a query row's
# logsumexp is below ln(FLT_MAX) = -88.7 (pytorch/pytorch#196678: a regression since torch 2.11, where cuDNN
# became the default backend there). Our global transformer has such rows (a patch that sees only itself
# at a very negative score: below -260 on the shipped model), and bf16 runs on an H200 got NaN gradients
# from finite losses (MODEL_CARD.md, "GPU session"). So a call with a backward to run leaves cuDNN out of
# the backends enabled at the time; inference (no backward) keeps PyTorch's choice. False lets cuDNN back
# in (blt_hf.nonfinite's replay does, to compare).
AVOID_CUDNN_IN_BACKWARD = True


def sdpa_backends_for_backward():
    """The SDPA backends a call with a backward may use: the enabled ones without cuDNN; None = leave
    the choice as it is (the guard is off, cuDNN is not enabled, or it is the only one enabled: asked for)."""
    cuda = torch.backends.cuda
    if not (AVOID_CUDNN_IN_BACKWARD and cuda.cudnn_sdp_enabled()):
        return None
    enabled = [backend for backend, on in ((SDPBackend.FLASH_ATTENTION, cuda.flash_sdp_enabled()),
                                          (SDPBackend.EFFICIENT_ATTENTION, cuda.mem_efficient_sdp_enabled()),
                                          (SDPBackend.MATH, cuda.math_sdp_enabled())) if on]
    return enabled or None


def attention(module, query, key, value, attention_mask):
    """Dispatch through transformers' attention interface (`sdpa` default, `eager` reference)."""
    # Sub-configs only learn the implementation when it is *changed*; a fresh model defaults to sdpa.
    impl = module.config._attn_implementation or "sdpa"
    fn = ALL_ATTENTION_FUNCTIONS.get_interface(impl, eager_attention_forward)
    dropout = module.config.dropout if module.training else 0.0
    backward = query.is_cuda and query.requires_grad and torch.is_grad_enabled()
    backends = sdpa_backends_for_backward() if backward else None
    with sdpa_kernel(backends) if backends else nullcontext():
        out, _ = fn(module, query, key, value, attention_mask, scaling=module.head_dim**-0.5, dropout=dropout or 0.0)
    return out.reshape(*out.shape[:2], -1)


def block_diffusion_attention(module, q, k, v, mask: BlockDiffusionMask):
    """Self-attention over [clean (N); nb blocks of Bs] with additive `mask` parts, exactly equal to
    dense attention under `masks.block_diffusion_mask` but without the block x other-block work:
    clean queries attend causally to clean keys; each block query takes one softmax over the clean
    prefix and its own block. q/k/v (B, h, T, d) -> (B, T, h*d)."""
    B, h, T, d = q.shape
    nb, Bs = mask.num_blocks, mask.block_size
    N = T - nb * Bs
    k, v = k.repeat_interleave(module.num_key_value_groups, 1), v.repeat_interleave(module.num_key_value_groups, 1)
    out_clean = attention(module, q[:, :, :N], k[:, :, :N], v[:, :, :N], mask.clean)  # (B, N, h*d)
    qb = q[:, :, N:] * module.head_dim**-0.5
    prefix = (qb @ k[:, :, :N].transpose(2, 3) + mask.prefix).view(B, h, nb, Bs, N)
    kb, vb = k[:, :, N:].view(B, h, nb, Bs, d), v[:, :, N:].view(B, h, nb, Bs, d)
    own = qb.view(B, h, nb, Bs, d) @ kb.transpose(3, 4) + mask.own  # (B, h, nb, Bs, Bs)
    probs = torch.cat([prefix, own], -1).softmax(-1, dtype=torch.float32).to(q.dtype)
    probs = F.dropout(probs, p=module.config.dropout or 0.0, training=module.training)
    out_blocks = probs[..., :N].reshape(B, h, nb * Bs, N) @ v[:, :, :N] + (probs[..., N:] @ vb).view(B, h, nb * Bs, d)
    return torch.cat([out_clean, out_blocks.transpose(1, 2).reshape(B, nb * Bs, h * d)], 1)


class FastBltAttentionBase(nn.Module):
    """q/k/v/o projections and the head bookkeeping transformers' attention interface reads."""

    is_causal = True

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.num_key_value_groups = self.num_heads // self.num_kv_heads
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)


class FastBltSelfAttention(FastBltAttentionBase):

    def forward(self, hidden_states, rotary, attention_mask, cache=None):
        B, N, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(B, N, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(B, N, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is not None:  # any object with DynamicCache's update(k, v, layer_idx) -> (k_all, v_all)
            k, v = cache.update(k, v, self.layer_idx)
        if isinstance(attention_mask, BlockDiffusionMask):
            return self.o_proj(block_diffusion_attention(self, q, k, v, attention_mask))
        return self.o_proj(attention(self, q, k, v, attention_mask))


class FastBltCrossAttention(FastBltAttentionBase):
    """Queries attend to a second sequence; no positions. q and kv are RMS-normalised first."""

    is_causal = False

    def __init__(self, config, layer_idx: int):
        super().__init__(config, layer_idx)
        self.q_norm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.k_norm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, kv_states, attention_mask):
        B, Q, _ = hidden_states.shape
        q = self.q_proj(self.q_norm(hidden_states)).view(B, Q, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.k_norm(kv_states)
        k = self.k_proj(kv).view(B, -1, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(kv).view(B, -1, self.num_kv_heads, self.head_dim).transpose(1, 2)
        # The residual is added here AND by the caller (h <- 2h + attn): a quirk of the released
        # weights that transformers' port reproduces; the weights were trained with it.
        return self.o_proj(attention(self, q, k, v, attention_mask)) + hidden_states


class FastBltTransformerLayer(GradientCheckpointingLayer):
    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.self_attn = FastBltSelfAttention(config, layer_idx)
        self.mlp = FastBltMLP(config)
        self.input_layernorm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, rotary, attention_mask, cache=None):
        h = hidden_states + self.self_attn(self.input_layernorm(hidden_states), rotary, attention_mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class FastBltStack(nn.Module):
    """A stack of transformer layers with RoPE; the shared body of every component."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(FastBltTransformerLayer(config, i) for i in range(config.num_hidden_layers))

    def rotary(self, position_ids, dtype):
        return rotary_cos_sin(position_ids, self.config.head_dim, self.config.rope_parameters["rope_theta"], dtype)

    def run_layers(self, h, position_ids, mask, cache=None):
        rotary = self.rotary(position_ids, h.dtype)
        mask = additive(mask, h.dtype)
        for layer in self.layers:
            h = layer(h, rotary, mask, cache)
        return h


# ----------------------------------------------------------------------------- entropy patcher


class FastBltPatcher(FastBltStack):
    """Small causal byte LM; its next-byte entropy decides where patches start. Frozen."""

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.norm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids, position_ids, mask, cache=None):
        h = self.run_layers(self.embed_tokens(input_ids), position_ids, mask, cache)
        return self.lm_head(self.norm(h))


def document_ids(input_ids, valid, bos_token_id):
    """(B, N) -> (B, N) index of the packed document of each byte: every BOS opens a new one."""
    return ((input_ids == bos_token_id) & valid).long().cumsum(-1)


def positions_in_document(doc_ids, valid):
    """(B, N) position of each byte inside its document; padding after a row's last byte gets
    the position the next byte would have."""
    before = valid.long().cumsum(-1) - valid.long()  # real bytes before i
    opens = F.pad(doc_ids[:, 1:] != doc_ids[:, :-1], (1, 0), value=False)
    return before - torch.where(opens, before, 0).cummax(-1).values


# ----------------------------------------------------------------------------- hash n-gram embeddings

HASH_PRIMES = [1000000007, 5915587277, 1500450271, 3267000013, 5754853343, 4093082899,
               9576890767, 3628273133, 2860486313, 5463458053, 3367900313]


def hash_ngram_ids(input_ids: torch.Tensor, group_sizes, nb_functions: int, table_size: int, doc_ids=None):
    """(B, N) ids -> (B, N, G) rows of the fused hash table, G = nb_functions * len(group_sizes).

    Each byte's n-gram (itself and the n-1 bytes before it, PAD=0 before the start of its
    document) is hashed with a polynomial in int64 whose overflow wraps around exactly as in
    the released weights.
    """
    out = []
    for f in range(nb_functions):
        prime = torch.tensor(HASH_PRIMES[f % len(HASH_PRIMES)], dtype=torch.int64, device=input_ids.device)
        for n in group_sizes:
            windows = F.pad(input_ids.long(), (n - 1, 0)).unfold(1, n, 1)  # (B, N, n)
            if doc_ids is not None:  # bytes of an earlier packed document read as PAD
                doc_windows = F.pad(doc_ids, (n - 1, 0), value=-1).unfold(1, n, 1)
                windows = windows.masked_fill(doc_windows != doc_ids[..., None], 0)
            powers = prime ** torch.arange(n, device=input_ids.device)
            out.append((windows * powers).sum(-1) % table_size + len(out) * table_size)
    return torch.stack(out, dim=-1)


# ----------------------------------------------------------------------------- local encoder


class FastBltLocalEncoder(FastBltStack):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.patch_embedding_projection = nn.Linear(config.hidden_size, config.hidden_size * config.cross_attn_k,
                                                    bias=False)
        n_cross = config.num_hidden_layers if config.cross_attn_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(FastBltCrossAttention(config, i) for i in range(n_cross))

    def forward(self, embeds, position_ids, mask, cache=None):
        """(B, N, He) byte embeddings -> (B, N, He) byte states."""
        return self.run_layers(embeds, position_ids, mask, cache)

    def pool(self, byte_states, patch_ids, num_patches: int):
        """Byte states -> one latent per patch, (B, M, k*He).

        Queries start as the max over the patch's bytes, split into k slots. With
        `cross_attn_all_layers`, transformers' port recomputes the queries after every layer and
        keeps only the last layer's result, so only the last cross-attention layer matters.
        """
        B, _, He = byte_states.shape
        k = self.config.cross_attn_k
        index = torch.where(patch_ids >= 0, patch_ids, num_patches)[..., None].expand_as(byte_states)
        empty = byte_states.new_zeros(B, num_patches + 1, He)
        queries = empty.scatter_reduce(1, index, byte_states, reduce="amax", include_self=False)[:, :num_patches]
        queries = self.patch_embedding_projection(queries).reshape(B, num_patches * k, He)
        mask = additive(patch_pool_mask(patch_ids, num_patches, k), byte_states.dtype)
        latents = queries + self.cross_attn_layers[-1](queries, byte_states, mask)
        return latents.reshape(B, num_patches, k * He)


# ----------------------------------------------------------------------------- global transformer


class FastBltGlobalTransformer(FastBltStack):
    def __init__(self, config):
        super().__init__(config)
        self.token_embedding_projection = (
            nn.Linear(config.encoder_cross_output_size, config.hidden_size, bias=False)
            if config.encoder_cross_output_size is not None else nn.Identity()
        )

    def forward(self, patch_embeds, position_ids, mask, cache=None):
        """(B, M, k*He) -> (B, M, Hg); no final norm, as in the released weights."""
        return self.run_layers(self.token_embedding_projection(patch_embeds), position_ids, mask, cache)


# ----------------------------------------------------------------------------- local decoder


class FastBltLocalDecoder(FastBltStack):
    def __init__(self, config):
        super().__init__(config)
        self.patch_embedding_projection = nn.Linear(config.hidden_size_global, config.hidden_size * config.cross_attn_k,
                                                    bias=False)
        self.norm = FastBltRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        n_cross = config.num_hidden_layers if config.cross_attn_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(FastBltCrossAttention(config, i) for i in range(n_cross))

    def latent_slots(self, global_states):
        """(B, M, Hg) -> (B, M*k, Hd): the keys/values bytes cross-attend to."""
        B, M, _ = global_states.shape
        return self.patch_embedding_projection(global_states).reshape(B, M * self.config.cross_attn_k, -1)

    def forward(self, byte_states, position_ids, mask, slots, cross_mask, cache=None):
        """(B, N, Hd) -> (B, N, Hd) normed states. mask (B,1,N,K) bool; cross_mask (B,1,N,M*k) bool."""
        h = byte_states
        rotary = self.rotary(position_ids, h.dtype)
        mask, cross_mask = additive(mask, h.dtype), additive(cross_mask, h.dtype)
        for i, layer in enumerate(self.layers):
            if i < len(self.cross_attn_layers):
                h = h + self.cross_attn_layers[i](h, slots, cross_mask)
            h = layer(h, rotary, mask, cache)
        return self.norm(h)


# ----------------------------------------------------------------------------- the model

# A cached decoder step of at most this many queries (a byte, a draft, a block) gathers each query's own
# latent slots instead of masking all of them: fixed shapes for the static cache, fewer keys.
OWN_SLOTS_MAX_QUERIES = 16


@dataclass
class Patching:
    """Patch structure of a batch. starts (B, N) bool; ids (B, N), -1 on padding; latent_ids (B, N)
    the latent each byte's prediction reads; patch_pos / patch_doc / patch_valid (B, M)."""

    starts: torch.Tensor
    ids: torch.Tensor
    num_patches: int
    latent_ids: torch.Tensor
    patch_pos: torch.Tensor
    patch_doc: torch.Tensor
    patch_valid: torch.Tensor


@dataclass
class Context:
    """Everything the decoder needs: the clean bytes encoded and the patches run through the global model."""

    valid: torch.Tensor
    position_ids: torch.Tensor
    doc_ids: torch.Tensor
    patching: Patching
    h_bytes: torch.Tensor
    global_states: torch.Tensor


class FastBltPreTrainedModel(PreTrainedModel):
    config: FastBltConfig
    config_class = FastBltConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["FastBltTransformerLayer", "FastBltCrossAttention"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _can_compile_fullgraph = False

    def _init_weights(self, module):
        # BLT's scheme: truncated normal with std 1/sqrt(fan_in), norms at one.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            fan_in = module.in_features if isinstance(module, nn.Linear) else module.embedding_dim
            std = fan_in**-0.5
            init.trunc_normal_(module.weight, mean=0.0, std=std, a=-3 * std, b=3 * std)
        elif isinstance(module, FastBltRMSNorm):
            init.ones_(module.weight)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        # transformers builds loaded parameters trainable again: the frozen patcher would otherwise join the
        # optimizer (no gradient, but DDP without find_unused_parameters stops on it).
        for module in model.modules():
            if isinstance(module, FastBltModel):
                module.freeze_patcher()
        return model


class FastBltModel(FastBltPreTrainedModel):
    def __init__(self, config: FastBltConfig):
        config.validate()  # fields edited after construction are checked before any weight is built
        super().__init__(config)
        self.local_encoder = FastBltLocalEncoder(config.encoder_config)
        self.global_transformer = FastBltGlobalTransformer(config.global_config)
        self.local_decoder = FastBltLocalDecoder(config.decoder_config)
        tables = config.encoder_hash_byte_group_nb_functions * len(config.encoder_hash_byte_group_size)
        self.encoder_hash_tok_embedding = nn.Embedding(tables * config.encoder_hash_byte_group_vocab,
                                                       config.encoder_config.hidden_size)
        self.patcher = FastBltPatcher(config.patcher_config) if config.entropy_patching else None
        self.freeze_patcher()
        self.post_init()

    def freeze_patcher(self) -> None:
        """The entropy model is trained separately and never updated here."""
        if self.patcher is not None:
            self.patcher.requires_grad_(False)

    def get_input_embeddings(self):
        return self.local_encoder.embed_tokens

    def set_input_embeddings(self, value):
        self.local_encoder.embed_tokens = value

    def train(self, mode: bool = True):
        super().train(mode)
        if self.patcher is not None:
            self.patcher.eval()
        return self

    def embed(self, input_ids, doc_ids=None):
        """Byte embedding plus the sum of its hash n-gram embeddings, (B, N) -> (B, N, He)."""
        c = self.config
        hash_ids = hash_ngram_ids(input_ids, c.encoder_hash_byte_group_size,
                                  c.encoder_hash_byte_group_nb_functions, c.encoder_hash_byte_group_vocab, doc_ids)
        return self.local_encoder.embed_tokens(input_ids) + self.encoder_hash_tok_embedding(hash_ids).sum(-2)

    def embed_blocks(self, before, blocks):
        """Hash-n-gram embeddings of BLT-D blocks: before (..., w) the w = max n - 1 clean ids preceding
        each block (PAD where outside its document), blocks (..., Bs) -> (..., Bs, He)."""
        w, Bs = before.shape[-1], blocks.shape[-1]
        ids = torch.cat([before, blocks], -1)
        return self.embed(ids.reshape(-1, w + Bs))[:, w:].reshape(*blocks.shape, -1)

    @torch.no_grad()
    def patch(self, input_ids, valid, position_ids, doc_ids=None) -> Patching:
        c = self.config
        doc_ids = torch.zeros_like(input_ids) if doc_ids is None else doc_ids
        doc_ext = torch.cat([doc_ids, doc_ids[:, -1:]], 1)
        pos_ext = positions_in_document(doc_ext, F.pad(valid, (0, 1), value=False))
        if self.patcher is None:  # one patch per byte: every patch is complete
            starts_ext = F.pad(valid, (0, 1), value=False) | F.pad(valid, (1, 0), value=False)
        else:
            window = c.patcher_config.sliding_window
            window = window if window is not None and window < input_ids.shape[1] else None
            mask = causal_mask(position_ids, position_ids, valid, window, doc_ids, doc_ids)
            ent = self.entropies(input_ids, position_ids, mask)
            starts_ext = patch_starts_from_entropies(ent, valid, pos_ext, c.patching_threshold, c.max_patch_length)
        starts = starts_ext[:, :-1] & valid
        ids = torch.where(valid, starts.long().cumsum(-1) - 1, -1)
        latent_ids = torch.where(valid, decoder_latent_ids(ids, starts_ext[:, 1:]), -1)
        M = int(starts.sum(-1).max())
        first_byte = start_indices(starts, M)  # (B, M)
        patch_valid = first_byte < input_ids.shape[1]
        patch_doc = doc_ids.gather(1, first_byte.clamp(max=input_ids.shape[1] - 1))
        patch_pos = positions_in_document(patch_doc, patch_valid)
        return Patching(starts, ids, M, latent_ids, patch_pos, patch_doc, patch_valid)

    def contextualize(self, input_ids, valid) -> Context:
        """Patch, encode and run the global transformer over clean bytes (BLT and BLT-D alike).
        input_ids (B, N) int64 and valid (B, N) bool as `inputs.byte_ids` returns them (checked once)."""
        doc_ids = document_ids(input_ids, valid, self.config.bos_token_id)
        position_ids = positions_in_document(doc_ids, valid)
        patching = self.patch(input_ids, valid, position_ids, doc_ids)
        h_bytes, latents = self.encode(input_ids, valid, position_ids, doc_ids, patching)
        global_states = self.global_step(latents, patching.patch_pos, self.patch_mask(patching))
        return Context(valid, position_ids, doc_ids, patching, h_bytes, global_states)

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        ctx = self.contextualize(*byte_ids(self.config, input_ids, attention_mask))
        mask = self.byte_mask(ctx)
        return BaseModelOutput(last_hidden_state=self.decode(ctx.h_bytes, ctx.position_ids, mask,
                                                             self.latent_slots(ctx.global_states),
                                                             ctx.patching.latent_ids))

    def encode(self, input_ids, valid, position_ids, doc_ids, patching: Patching):
        """Local encoder: bytes -> byte states (B, N, He) and patch latents (B, M, k*He)."""
        mask = causal_mask(position_ids, position_ids, valid, self.window(valid.shape[1]), doc_ids, doc_ids)
        h_bytes = self.byte_states(input_ids, position_ids, mask, doc_ids)
        return h_bytes, self.local_encoder.pool(h_bytes, patching.ids, patching.num_patches)

    def patch_mask(self, p: Patching):
        """The global attention: causal over each row's patches within a document; padding masked."""
        return causal_mask(p.patch_pos, p.patch_pos, p.patch_valid, None, p.patch_doc, p.patch_doc)

    # The components, each used alike by the full-sequence passes above (training, forward) and by the
    # cached decoding steps of generation_fast_blt.py, which pass `cache`: a SlotKV.at(cols, hi) of
    # cache_fast_blt.py, so the new keys/values land at explicit columns of pre-allocated buffers.

    def entropies(self, input_ids, position_ids, mask, cache=None):
        """Entropy patcher: next-byte entropies (B, N) in nats, what the patch rule (patching.py) reads."""
        return entropy(self.patcher(input_ids, position_ids, mask, cache))

    def byte_states(self, input_ids, position_ids, mask, doc_ids=None, cache=None, context: int = 0):
        """Hash n-gram embeddings + local encoder layers -> (B, N - context, He). The first `context` ids
        only lend their bytes to the others' n-grams (a cached step's window of earlier bytes)."""
        return self.local_encoder(self.embed(input_ids, doc_ids)[:, context:], position_ids, mask, cache)

    def global_step(self, latents, position_ids, mask, cache=None):
        """Global transformer over patch latents (B, M, k*He) at patch positions (B, M) -> (B, M, Hg)."""
        return self.global_transformer(latents, position_ids, mask, cache)

    def latent_slots(self, global_states):
        """(B, M, Hg) -> (B, M, k, Hd): the k keys/values each patch offers the bytes that read it."""
        slots = self.local_decoder.latent_slots(global_states)
        return slots.unflatten(1, (global_states.shape[1], self.config.cross_attn_k))

    def window(self, length: int):
        """The local sliding window, or None when no position can fall outside it (saves the term)."""
        window = self.config.local_attention_window_len
        return window if window is not None and window < length else None

    def byte_mask(self, ctx: Context):
        pos, doc = ctx.position_ids, ctx.doc_ids
        return causal_mask(pos, pos, ctx.valid, self.window(pos.shape[1]), doc, doc)

    def decode(self, h, position_ids, mask, slots, latent_ids, cache=None):
        """Local decoder over any stream of byte states h (B, Q, Hd); `latent_ids` (B, Q) picks each one's
        patch among `slots` (B, M, k, Hd). A cached step of a few queries cross-attends only to its
        queries' own k slots (O(Q*k) keys, whatever M), the full sequence to all of them, masked."""
        k, Q = self.config.cross_attn_k, h.shape[1]
        if cache is not None and Q <= OWN_SLOTS_MAX_QUERIES:
            own = slots.gather(1, latent_ids[..., None, None].expand(-1, -1, k, slots.shape[-1])).flatten(1, 2)
            cross = torch.eye(Q, dtype=torch.bool, device=h.device).repeat_interleave(k, 1)
            return self.local_decoder(h, position_ids, mask, own, cross[None, None].expand(len(h), 1, Q, Q * k), cache)
        cross = decoder_cross_mask(latent_ids, slots.shape[1], k)
        return self.local_decoder(h, position_ids, mask, slots.flatten(1, 2), cross, cache)


@dataclass
class FastBltCausalLMOutput(ModelOutput):
    """`loss` = `loss_clean` (+ `loss_mask` for a BLT-D model); `logits` (B, N, V) next-byte logits.
    With the diffusion objective also the blocks: logits (B, nb, Bs, V), targets and masked (B, nb, Bs)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    loss_clean: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None
    block_logits: torch.Tensor | None = None
    block_targets: torch.Tensor | None = None
    block_masked: torch.Tensor | None = None


class FastBltForCausalLM(FastBltPreTrainedModel, GenerationMixin):
    generation_config_class = FastBltGenerationConfig
    def __init__(self, config: FastBltConfig):
        super().__init__(config)  # generation_config = FastBltGenerationConfig.from_model_config(config)
        self.model = FastBltModel(config)
        self.lm_head = nn.Linear(config.decoder_config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, logits_to_keep: int = 0,
                diffusion_t: float | None = None, **kwargs):
        """Next-byte logits. With `labels`: the shifted next-byte loss (Trainer's `num_items_in_batch`
        aware), plus, in training mode, the BLT-D masked-block loss when `config.diffusion_block_size` > 0
        (noise t ~ U(0, 1) per sequence). In eval mode `loss` is the next-byte loss alone, so evaluation
        repeats and exp(eval_loss) is the per-byte perplexity; `diffusion_t` asks for the masked-block
        loss at that fixed noise level in either mode."""
        inner = self.model
        input_ids, valid = byte_ids(self.config, input_ids, attention_mask)
        if labels is not None:
            labels = labels.long()
        ctx = inner.contextualize(input_ids, valid)
        block_size = self.config.diffusion_block_size
        if labels is None or block_size == 0 or (diffusion_t is None and not self.training):
            hidden = inner.decode(ctx.h_bytes, ctx.position_ids, inner.byte_mask(ctx),
                                  inner.latent_slots(ctx.global_states), ctx.patching.latent_ids)
            logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden).float()
            loss = None if labels is None else self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
            return FastBltCausalLMOutput(loss=loss, logits=logits, loss_clean=loss)
        return self.diffusion_forward(ctx, input_ids, labels, block_size, diffusion_t, **kwargs)

    def diffusion_forward(self, ctx, input_ids, labels, block_size, t=None, num_items_in_batch=None, **kwargs):
        """L_clean + L_mask over the decoder stream [clean; noised blocks] (DESIGN.md §2)."""
        inner, N = self.model, input_ids.shape[1]
        blocks = cut_blocks(input_ids, labels, ctx, block_size, self.config.mask_token_id)
        noisy, masked, t = noise(blocks, self.config.mask_token_id, t)
        s = stream(ctx, blocks)
        mask = BlockDiffusionMask.from_stream(s, N, *noisy.shape[1:], inner.window(N + block_size))
        if self.config.diffusion_block_input == "encoder":  # blocks through the encoder, under the block mask
            w = max(self.config.encoder_hash_byte_group_size) - 1
            block_embeds = inner.embed_blocks(ids_before(input_ids, ctx, blocks, w), noisy)
            embeds = torch.cat([inner.embed(input_ids, ctx.doc_ids), block_embeds.flatten(1, 2)], 1)
            h_blocks = inner.local_encoder(embeds, s["pos"], mask)[:, N:]  # (the clean part equals ctx.h_bytes)
        else:
            h_blocks = inner.local_encoder.embed_tokens(noisy).flatten(1, 2)  # (B, nb*Bs, Hd)
        h = torch.cat([ctx.h_bytes, h_blocks], 1)
        hidden = inner.decode(h, s["pos"], mask, inner.latent_slots(ctx.global_states), s["latent"])
        logits = self.lm_head(hidden[:, :N]).float()
        block_logits = self.lm_head(hidden[:, N:]).view(*noisy.shape, -1)
        loss_clean = self.loss_function(logits, labels, self.config.vocab_size,
                                        num_items_in_batch=num_items_in_batch, **kwargs)
        distill = self.config.diffusion_distill_weight
        teacher = teacher_logits(logits, blocks, masked) if distill > 0 else None
        loss_mask = masked_block_loss(block_logits, blocks, masked, t, teacher, distill)
        loss_mask = loss_mask * self.config.diffusion_loss_weight
        if num_items_in_batch is not None:
            # Trainer sums micro-batch losses under gradient accumulation when it passes the count;
            # weight this micro-batch's mean by its share of the counted tokens, as L_clean is.
            loss_mask = loss_mask * (labels[:, 1:] != -100).sum() / num_items_in_batch
        return FastBltCausalLMOutput(loss=loss_clean + loss_mask, logits=logits, loss_clean=loss_clean,
                                     loss_mask=loss_mask, block_logits=block_logits, block_targets=blocks.targets,
                                     block_masked=masked)

    def generate(self, input_ids=None, attention_mask=None, generation_config=None, streamer=None, **kwargs):
        """Cached AR, BLT-D, BLT-S and BLT-DV decoding; see generation_fast_blt.py."""
        return generate(self, input_ids, attention_mask=attention_mask, generation_config=generation_config,
                        streamer=streamer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Also loads a checkpoint written by transformers' `BltForCausalLM` (model_type "blt"), from a
        local directory, a hub id or the hub cache alike; config kwargs (`diffusion_block_size=8`, the
        natural way to turn a BLT into a BLT-D) then go to the converted config, as transformers does."""
        converted = False
        if kwargs.get("config") is None:
            hub = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
            config_dict, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub)
            if config_dict.get("model_type") == "blt":
                config = fast_blt_config_from_blt(config_dict)
                for key in [k for k in kwargs if k in config.to_dict()]:
                    setattr(config, key, kwargs.pop(key))
                config.validate()
                kwargs["config"], converted = config, True
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if converted:  # BLT's own generation_config knows none of our decoders: ours, for the converted config
            model.generation_config = FastBltGenerationConfig.from_model_config(model.config)
        probe_finite(model, pretrained_model_name_or_path)
        return model

    def adjust_generation_fn(self, *args, **kwargs):
        """transformers loads generation_config.json as a plain GenerationConfig: make it ours (typed, validated)."""
        super().adjust_generation_fn(*args, **kwargs)
        if not isinstance(self.generation_config, FastBltGenerationConfig):
            self.generation_config = FastBltGenerationConfig.from_dict(self.generation_config.to_dict())

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' save, plus `auto_map["AutoModel"]`: register_for_auto_class records one Auto class
        per saved object, and the base model loads from the same copied modeling file."""
        auto_map = getattr(self.config, "auto_map", None) or {}
        self.config.auto_map = {**auto_map, "AutoModel": f"{MODULE}.{FastBltModel.__name__}"}
        return super().save_pretrained(save_directory, *args, **kwargs)


@torch.no_grad()
def probe_finite(model, source) -> None:
    """Fail at load time, naming the tensors, if the weights give non-finite logits (a corrupt file)."""
    params = dict(model.named_parameters())
    if any(p.device.type == "meta" for p in params.values()):
        return
    device = next(iter(params.values())).device
    probe = torch.tensor([[model.config.bos_token_id] + [b + BYTE_OFFSET for b in b"def f(x):\n    return x\n"]],
                         device=device)
    was_training = model.training
    logits = model.eval()(input_ids=probe).logits
    model.train(was_training)
    if not torch.isfinite(logits).all():
        bad = [n for n, p in params.items() if not torch.isfinite(p).all()]
        raise ValueError(f"{source}: the weights give non-finite logits on a probe input, so the checkpoint is corrupt "
                         f"(non-finite values in {bad[:5] or 'no single tensor: check the values'})")


# save_pretrained copies this file and everything it imports relatively (hence `from .x import y`
# everywhere: transformers' copier does not see `from . import x`) and writes `auto_map`, so a saved
# model loads with `trust_remote_code=True` in a process that never imports blt_hf.
MODULE = __name__.rsplit(".", 1)[-1]
FastBltModel.register_for_auto_class("AutoModel")
FastBltForCausalLM.register_for_auto_class("AutoModelForCausalLM")
