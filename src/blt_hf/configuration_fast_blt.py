"""Configuration of the Fast Byte Latent Transformer.

One strict-dataclass sub-config per component (entropy patcher, local encoder, global
transformer, local decoder), field-for-field the same as transformers' `BltConfig` so that a
checkpoint written by `BltForCausalLM` converts by renaming `model_type` only. The top config
adds the special-token ids of the byte vocabulary (PAD 0, BOS 1, EOS 2, MASK 3, byte b -> b+4)
and `diffusion_block_size` (B of BLT-D; 0 = a plain BLT). Every invalid value raises a
`ValueError` that names the field. Decoding knobs live in `GenerationConfig`, not here.
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

BLOCK_INPUTS = ("bytes", "encoder")
# Fields a trained checkpoint cannot do without: a default would load without a word and give
# different logits (patching, hashing) or build a table of another size. Required in a saved
# config (from_dict / from_pretrained); a config built in code keeps its defaults.
REQUIRED_WHEN_LOADING = ("patching_threshold", "max_patch_length", "cross_attn_k", "encoder_hash_byte_group_size",
                         "encoder_hash_byte_group_vocab", "encoder_hash_byte_group_nb_functions", "encoder_config",
                         "decoder_config", "global_config")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@strict
class FastBltStackConfig(PreTrainedConfig):
    """Fields shared by every transformer stack (RMSNorm, SwiGLU, RoPE blocks)."""

    model_type = "fast_blt_stack"
    default_theta = 500000.0

    hidden_size: int = 256
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    num_hidden_layers: int = 2
    intermediate_size: int | None = None
    rms_norm_eps: float = 1e-5
    dropout: float | int | None = 0.0
    max_position_embeddings: int = 8192
    rope_parameters: dict | None = None
    hidden_act: str = "silu"
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        # None means "derive it"; any other value (0 included) is the user's and gets validated.
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = int(8 * self.hidden_size / 3)
        self.rope_parameters = {"rope_type": "default", "rope_theta": self.default_theta, **(self.rope_parameters or {})}
        kwargs.pop("head_dim", None)  # derived (a property); older files store it
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        """Derived on every read, so a width or head count edited after construction cannot leave it stale."""
        return self.hidden_size // self.num_attention_heads if self.num_attention_heads else 0

    def validate_rope(self):
        # Runs before transformers' own RoPE check so that a bad width is reported by its field name.
        name = self.model_type
        for field in ("hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers",
                      "intermediate_size", "max_position_embeddings"):
            value = getattr(self, field)
            _require(value > 0, f"{name}.{field} must be a positive integer, got {value}")
        _require(self.hidden_size % self.num_attention_heads == 0,
                 f"{name}.hidden_size ({self.hidden_size}) must be divisible by "
                 f"{name}.num_attention_heads ({self.num_attention_heads})")
        _require(self.num_attention_heads % self.num_key_value_heads == 0,
                 f"{name}.num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                 f"{name}.num_key_value_heads ({self.num_key_value_heads})")
        _require((self.hidden_size // self.num_attention_heads) % 2 == 0,
                 f"{name}: head dim hidden_size/num_attention_heads must be even for RoPE")
        _require(self.rms_norm_eps > 0, f"{name}.rms_norm_eps must be > 0, got {self.rms_norm_eps}")
        theta = self.rope_parameters.get("rope_theta")
        _require(isinstance(theta, (int, float)) and theta > 0,
                 f"{name}.rope_parameters['rope_theta'] must be > 0, got {theta}")
        _require(0 <= (self.dropout or 0) < 1, f"{name}.dropout must be in [0, 1), got {self.dropout}")
        _require(self.rope_parameters.get("rope_type") == "default",
                 f"{name}.rope_parameters: only rope_type 'default' is supported, got {self.rope_parameters}")
        _require(self.hidden_act == "silu", f"{name}.hidden_act must be 'silu' (SwiGLU), got {self.hidden_act!r}")
        super().validate_rope()


@strict
class FastBltPatcherConfig(FastBltStackConfig):
    """The entropy model: a small causal byte LM whose next-byte entropy places patch boundaries."""

    model_type = "fast_blt_patcher"
    default_theta = 10000.0  # as transformers' BltPatcherConfig
    vocab_size: int = 260
    sliding_window: int | None = 512


@strict
class FastBltLocalEncoderConfig(FastBltStackConfig):
    """Byte layers + hash n-gram embeddings + cross-attention pooling of bytes into patches."""

    model_type = "fast_blt_local_encoder"
    vocab_size: int = 260
    num_hidden_layers: int = 1
    cross_attn_all_layers: bool | None = False
    cross_attn_k: int | None = 2
    hidden_size_global: int | None = None
    sliding_window: int | None = None


@strict
class FastBltGlobalTransformerConfig(FastBltStackConfig):
    """Causal transformer over patch latents (the expensive part)."""

    model_type = "fast_blt_global_transformer"
    hidden_size: int = 512
    num_hidden_layers: int = 4
    encoder_cross_output_size: int | None = None


@strict
class FastBltLocalDecoderConfig(FastBltStackConfig):
    """Byte layers, each preceded by cross-attention from bytes to patch latents."""

    model_type = "fast_blt_local_decoder"
    vocab_size: int = 260
    cross_attn_all_layers: bool | None = True
    cross_attn_k: int | None = 2
    hidden_size_global: int | None = None


@strict
class FastBltConfig(PreTrainedConfig):
    """Top-level config: patching, hashing, component configs, special ids and the BLT-D block size."""

    model_type = "fast_blt"
    # Trainer's evaluation gathers every output tensor except these (the BLT-D block tensors are large).
    keys_to_ignore_at_inference = ["loss_clean", "loss_mask", "block_logits", "block_targets", "block_masked"]
    sub_configs_defaults = {
        "patcher_config": FastBltPatcherConfig,
        "encoder_config": FastBltLocalEncoderConfig,
        "decoder_config": FastBltLocalDecoderConfig,
        "global_config": FastBltGlobalTransformerConfig,
    }

    vocab_size: int = 260
    max_position_embeddings: int = 4096
    patch_in_forward: bool | None = True
    patch_size: int | None = 4
    patching_mode: str | None = "entropy"
    patching_threshold: float | None = 1.335442066192627
    max_patch_length: int | None = None
    local_attention_window_len: int | None = 512
    cross_attn_k: int | None = 2
    encoder_hash_byte_group_size: list[int] | None = None
    encoder_hash_byte_group_vocab: int | None = 500002
    encoder_hash_byte_group_nb_functions: int | None = 1
    patcher_config: dict | PreTrainedConfig | None = None
    encoder_config: dict | PreTrainedConfig | None = None
    decoder_config: dict | PreTrainedConfig | None = None
    global_config: dict | PreTrainedConfig | None = None
    diffusion_block_size: int = 0
    # Weight of L_mask against L_clean (DESIGN.md §2: 1:1). L_mask is a mean over block positions;
    # the paper's raw sums weigh it about B/4 times more, which this field can reproduce.
    diffusion_loss_weight: float = 1.0
    # What a BLT-D block position feeds the decoder (DESIGN.md §5, open choice): "bytes" = the byte
    # embedding alone (MASK included); "encoder" = byte + hash n-gram embeddings (n-grams reach into
    # the clean bytes before the block) through the local encoder layers, under the block mask.
    diffusion_block_input: str = "bytes"
    # Self-distillation of the block path (DESIGN.md §6; not in the paper): each masked block byte's
    # target becomes (1 - w) * its one-hot byte + w * the model's own next-byte distribution for that
    # byte (the clean stream, which sees every true byte before it; detached). That teacher knows more
    # than the block position does, and averaged over what the block cannot see it is the same
    # conditional as the one-hot target, so the optimum is unchanged and the target's variance is lower.
    diffusion_distill_weight: float = 0.0
    tie_word_embeddings: bool = False
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    mask_token_id: int | None = 3
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        kwargs.pop("patching_batch_size", None)  # BltConfig field that no code path reads
        super().__post_init__(**kwargs)
        if self.encoder_hash_byte_group_size is None:
            self.encoder_hash_byte_group_size = [3, 4, 5, 6, 7, 8]
        self.encoder_hash_byte_group_size = list(self.encoder_hash_byte_group_size)
        # Derived fields: one source of truth for sizes that two components must agree on.
        self.encoder_config.sliding_window = self.local_attention_window_len
        self.encoder_config.cross_attn_k = self.decoder_config.cross_attn_k = self.cross_attn_k
        self.encoder_config.hidden_size_global = self.global_config.hidden_size
        self.decoder_config.hidden_size_global = self.global_config.hidden_size
        cross_out = self.encoder_config.hidden_size * (self.cross_attn_k or 1)
        self.global_config.encoder_cross_output_size = (
            cross_out if cross_out != self.global_config.hidden_size else None
        )

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        missing = [f for f in REQUIRED_WHEN_LOADING if f not in config_dict]
        if config_dict.get("patching_mode", "entropy") == "entropy" and "patcher_config" not in config_dict:
            missing.append("patcher_config")
        if missing:
            raise ValueError(f"the saved config lacks {', '.join(missing)}: a trained checkpoint cannot be loaded "
                             "without them (defaults would change the patches, the hash tables or the sizes)")
        return super().from_dict(config_dict, **kwargs)

    @property
    def max_bytes(self) -> int:
        """The one length limit (prompt + new bytes) that forward, generate and the tokenizer enforce: the
        top-level max_position_embeddings (what lm-eval and pipelines read), never past the local models'
        RoPE range."""
        return min(self.max_position_embeddings, self.encoder_config.max_position_embeddings,
                   self.decoder_config.max_position_embeddings)

    @property
    def entropy_patching(self) -> bool:
        return bool(self.patch_in_forward) and self.patching_mode == "entropy"

    def validate_fast_blt(self):
        for sub in ("patcher_config", "encoder_config", "decoder_config", "global_config"):
            getattr(self, sub).validate()  # sub-configs edited after construction are checked again here
        _require(self.vocab_size >= 5, f"vocab_size must be >= 5 (4 special ids + bytes), got {self.vocab_size}")
        for field in ("pad_token_id", "bos_token_id", "eos_token_id", "mask_token_id"):
            value = getattr(self, field)
            _require(value is None or 0 <= value < self.vocab_size,
                     f"{field}={value} is outside the vocabulary [0, {self.vocab_size})")
        _require(self.cross_attn_k is not None and self.cross_attn_k >= 1,
                 f"cross_attn_k must be >= 1, got {self.cross_attn_k}")
        _require(self.diffusion_block_size >= 0,
                 f"diffusion_block_size must be >= 0 (0 = plain BLT), got {self.diffusion_block_size}")
        _require(self.diffusion_loss_weight > 0,
                 f"diffusion_loss_weight must be > 0, got {self.diffusion_loss_weight}")
        _require(0.0 <= self.diffusion_distill_weight <= 1.0,
                 f"diffusion_distill_weight must be in [0, 1], got {self.diffusion_distill_weight}")
        _require(self.diffusion_block_input in BLOCK_INPUTS,
                 f"diffusion_block_input must be one of {BLOCK_INPUTS}, got {self.diffusion_block_input!r}")
        _require(self.max_position_embeddings > 0,
                 f"max_position_embeddings must be positive, got {self.max_position_embeddings}")
        _require(self.max_patch_length is None or self.max_patch_length >= 1,
                 f"max_patch_length must be None or >= 1, got {self.max_patch_length}")
        _require(self.local_attention_window_len is None or self.local_attention_window_len >= 1,
                 f"local_attention_window_len must be None or >= 1, got {self.local_attention_window_len}")
        _require(self.patching_mode in ("entropy", "byte"),
                 f"patching_mode must be 'entropy' or 'byte', got {self.patching_mode!r}")
        _require(self.patching_threshold is not None and self.patching_threshold == self.patching_threshold,
                 f"patching_threshold must be a number, got {self.patching_threshold}")
        groups = self.encoder_hash_byte_group_size
        _require(len(groups) > 0 and all(g >= 1 for g in groups),
                 f"encoder_hash_byte_group_size must be a non-empty list of sizes >= 1, got {groups}")
        _require((self.encoder_hash_byte_group_vocab or 0) >= 1,
                 f"encoder_hash_byte_group_vocab must be >= 1, got {self.encoder_hash_byte_group_vocab}")
        _require((self.encoder_hash_byte_group_nb_functions or 0) >= 1,
                 f"encoder_hash_byte_group_nb_functions must be >= 1, got "
                 f"{self.encoder_hash_byte_group_nb_functions}")
        _require(self.encoder_config.hidden_size == self.decoder_config.hidden_size,
                 f"decoder_config.hidden_size ({self.decoder_config.hidden_size}) must equal "
                 f"encoder_config.hidden_size ({self.encoder_config.hidden_size}): the decoder reads encoder states")
        for sub in ("patcher_config", "encoder_config", "decoder_config"):
            size = getattr(self, sub).vocab_size
            _require(size == self.vocab_size, f"{sub}.vocab_size ({size}) must equal vocab_size ({self.vocab_size})")


# ----------------------------------------------------------------------------- transformers' BLT config <-> ours
# Parameter names are identical, so a checkpoint converts by its config alone (convert.py copies weights).

_SUBCONFIGS = {
    "patcher_config": "patcher",
    "encoder_config": "local_encoder",
    "decoder_config": "local_decoder",
    "global_config": "global_transformer",
}
# Special ids a BLT checkpoint leaves unset get the byte-vocabulary defaults (DESIGN.md §1).
_DEFAULT_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "mask_token_id": 3}
_SERIALISATION_KEYS = ("transformers_version", "architectures", "_name_or_path", "auto_map", "dtype", "torch_dtype")


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in _SERIALISATION_KEYS and k != "model_type"}


def fast_blt_config_from_blt(blt_config: dict) -> FastBltConfig:
    """A transformers `BltConfig` (as a dict) -> `FastBltConfig`."""
    fields = _strip(blt_config)
    fields.pop("patching_batch_size", None)
    for sub in _SUBCONFIGS:
        if isinstance(fields.get(sub), dict):
            fields[sub] = _strip(fields[sub])
            fields[sub].pop("head_dim", None)
    for name, default in _DEFAULT_IDS.items():
        if fields.get(name) is None:
            fields[name] = default
    fields.setdefault("diffusion_block_size", 0)
    return FastBltConfig(**fields)


def blt_config_from_fast_blt(config: FastBltConfig):
    """`FastBltConfig` -> transformers `BltConfig` (drops BLT-D-only fields)."""
    from transformers import BltConfig

    fields = _strip(config.to_dict())
    for name in ("diffusion_block_size", "mask_token_id", "diffusion_loss_weight", "diffusion_block_input",
                 "diffusion_distill_weight"):
        fields.pop(name, None)
    for sub, prefix in _SUBCONFIGS.items():
        fields[sub] = {k: v for k, v in _strip(fields[sub]).items()
                       if k not in ("head_dim", "encoder_cross_output_size")}
    return BltConfig(**fields)


# Saved configs carry `auto_map` and this code, so they load with `trust_remote_code=True` without blt_hf.
FastBltConfig.register_for_auto_class()
