"""Checkpoint conversion between transformers' `BltForCausalLM` ("blt") and ours ("fast_blt").

Parameter names are identical (see modeling_fast_blt.py), so converting is a matter of config
fields: `model_type`, the sub-config model types, and the fields one side has and the other
lacks. Weights are copied with safetensors only.
"""

import os
from pathlib import Path

from .configuration_fast_blt import FastBltConfig

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
    for name in ("diffusion_block_size", "mask_token_id", "diffusion_loss_weight", "diffusion_block_input"):
        fields.pop(name, None)
    for sub, prefix in _SUBCONFIGS.items():
        fields[sub] = {k: v for k, v in _strip(fields[sub]).items()
                       if k not in ("head_dim", "encoder_cross_output_size")}
    return BltConfig(**fields)


def export_to_transformers_blt(model, out_dir) -> str:
    """Write `model` (a FastBltForCausalLM) as a directory transformers' `BltForCausalLM` loads."""
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    blt_config = blt_config_from_fast_blt(model.config)
    blt_config.architectures = ["BltForCausalLM"]
    blt_config.save_pretrained(out_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return str(out_dir)


def convert_checkpoint(src, dst, to: str = "transformers") -> str:
    """Convert a checkpoint directory. to="transformers": ours -> BLT; to="fast_blt": BLT -> ours."""
    from .modeling_fast_blt import FastBltForCausalLM

    model = FastBltForCausalLM.from_pretrained(src)
    if to == "transformers":
        return export_to_transformers_blt(model, dst)
    if to == "fast_blt":
        model.save_pretrained(dst)
        return str(dst)
    raise ValueError(f"to must be 'transformers' or 'fast_blt', got {to!r}")
