"""FastBltGenerationConfig: transformers' GenerationConfig plus the byte decoders' own settings.

The decoders' settings and their defaults are written here once (`DECODER_DEFAULTS`). As for
transformers' own fields, None in an instance means "unset": `generate()` takes an explicit
`generation_config`, then keyword arguments, then the model's `generation_config.json`, then these
defaults (`_get_default_generation_params`). `validate()` checks every set value when the config is
built or updated; checks that need the model (block size against its position range, BLT-D on a
model not trained for it) happen in `generate()`.
"""

from transformers import GenerationConfig

from .sampling import FALLBACKS

DECODINGS = ("autoregressive", "diffusion", "self_speculation", "diffusion_verify")
UNMASKING = ("confidence", "entropy_bound", "one_step")

DECODER_DEFAULTS = {
    "decoding": "autoregressive",  # a BLT-D model's own generation_config.json says "diffusion"
    "block_size": 8,  # BLT-D / BLT-DV block; a BLT-D model's config gives its trained size
    "unmasking": "confidence",
    "unmasking_fallback": "most_confident",
    "first_byte_from_ar": False,
    "repatch_blocks": False,
    "confidence_threshold": 0.7,
    "entropy_bound": 1.0,
    "draft_length": 4,  # BLT-S drafts
}
# Where transformers' global defaults do not suit bytes: 128 new bytes rather than max_length=20,
# and no top-k cut (50 of 256 byte values is not the filter it is over a 50k-token vocabulary).
# None / "dynamic": attention reads the used columns; "static": fixed-shape steps (compiled on CUDA, or
# anywhere with a compile_config), as transformers' static cache.
CACHE_IMPLEMENTATIONS = (None, "dynamic", "static")
BYTE_DEFAULTS = {"max_new_tokens": 128, "top_k": 0}


class FastBltGenerationConfig(GenerationConfig):
    """Generation settings of FastBltForCausalLM.

    Args (beyond `GenerationConfig`'s):
        decoding (`str`): one of "autoregressive", "diffusion" (BLT-D), "self_speculation" (BLT-S),
            "diffusion_verify" (BLT-DV).
        block_size (`int`): bytes per BLT-D block / BLT-DV draft.
        unmasking (`str`): BLT-D rule, "confidence" (`confidence_threshold`), "entropy_bound"
            (`entropy_bound`, nats) or "one_step" (the whole block in one pass).
        unmasking_fallback (`str`): what fills a pass where no position passes the rule,
            "most_confident" or "leftmost"; or "end_block": end the block before its first undecided
            byte (once it has one decided byte), so the next block's first byte comes from the
            next-byte head when `first_byte_from_ar`; or "next_or_end": as "end_block", except that a
            most confident byte that is the block's next undecided one is committed (left to right).
        first_byte_from_ar (`bool`): each block's first byte from the next-byte head.
        repatch_blocks (`bool`): let the entropy patcher re-decide each block start's boundary.
        draft_length (`int`): BLT-S draft length.
    """

    def __init__(self, **kwargs):
        for name in DECODER_DEFAULTS:
            setattr(self, name, kwargs.pop(name, None))
        super().__init__(**kwargs)

    @staticmethod
    def _get_default_generation_params() -> dict:
        return {**GenerationConfig._get_default_generation_params(), **BYTE_DEFAULTS, **DECODER_DEFAULTS}

    @classmethod
    def from_model_config(cls, model_config) -> "FastBltGenerationConfig":
        """The defaults a model saves in generation_config.json: BLT-D with the trained block size for a
        model trained with the diffusion objective, autoregressive decoding otherwise."""
        block = model_config.diffusion_block_size
        return cls(bos_token_id=model_config.bos_token_id, eos_token_id=model_config.eos_token_id,
                   pad_token_id=model_config.pad_token_id, do_sample=False,
                   max_new_tokens=BYTE_DEFAULTS["max_new_tokens"],  # not top_k: a sampling flag, unset when greedy
                   **{**DECODER_DEFAULTS, "decoding": "diffusion" if block > 0 else "autoregressive",
                      "block_size": block or DECODER_DEFAULTS["block_size"]})

    def to_diff_dict(self) -> dict:
        # Unset decoder settings are not written (transformers' diff keeps every key its base class lacks).
        return {k: v for k, v in super().to_diff_dict().items() if not (k in DECODER_DEFAULTS and v is None)}

    def validate(self, strict: bool = False, user_set_attributes: set[str] | None = None):
        super().validate(strict=strict, user_set_attributes=user_set_attributes)
        choices = {"decoding": DECODINGS, "unmasking": UNMASKING, "unmasking_fallback": FALLBACKS}
        for name, allowed in choices.items():
            value = getattr(self, name, None)
            if value is not None and value not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}")
        for name in ("block_size", "draft_length", "max_new_tokens", "min_new_tokens", "max_length",
                     "num_return_sequences", "top_k"):
            value = getattr(self, name, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"`{name}` must be an integer, got {value!r}")
        for name in ("block_size", "draft_length"):
            value = getattr(self, name, None)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}")
        for name in ("first_byte_from_ar", "repatch_blocks"):
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"`{name}` must be True or False, got {value!r}")
        for name in ("confidence_threshold", "entropy_bound", "temperature", "top_p"):
            value = getattr(self, name, None)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"`{name}` must be a number, got {value!r}")
        if self.cache_implementation not in CACHE_IMPLEMENTATIONS:
            raise ValueError(f"`cache_implementation` must be one of {CACHE_IMPLEMENTATIONS} for blt_hf (per-byte and "
                             f"per-patch slot caches; 'static' = fixed shapes, compilable), got "
                             f"{self.cache_implementation!r}")
        if self.confidence_threshold is not None and not 0 < self.confidence_threshold <= 1:
            raise ValueError(f"`confidence_threshold` must be in (0, 1], got {self.confidence_threshold}")
        if self.entropy_bound is not None and not self.entropy_bound > 0:
            raise ValueError(f"`entropy_bound` must be > 0, got {self.entropy_bound}")
