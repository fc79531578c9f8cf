"""Checkpoint conversion between transformers' `BltForCausalLM` ("blt") and ours ("fast_blt").

Parameter names are identical (see modeling_fast_blt.py), so converting is a matter of config
fields (`fast_blt_config_from_blt` / `blt_config_from_fast_blt` in configuration_fast_blt.py, which
modeling uses to load a BLT checkpoint directly). Weights are copied with safetensors only.
"""

import logging
import os

from .configuration_fast_blt import blt_config_from_fast_blt
from .modeling_fast_blt import FastBltForCausalLM
from .tokenization_fast_blt_fast import FastBltTokenizerFast

logger = logging.getLogger(__name__)


def export_to_transformers_blt(model, out_dir) -> str:
    """Write `model` (a FastBltForCausalLM) as a directory transformers' `BltForCausalLM` loads."""
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    if model.config.diffusion_block_size:
        logger.warning("transformers' BltConfig has no BLT-D fields: diffusion_block_size=%d and the BLT-D generation "
                       "defaults are not written to %s (the weights are all there; converting back gives a plain BLT: "
                       "pass diffusion_block_size=%d to from_pretrained)", model.config.diffusion_block_size, out_dir,
                       model.config.diffusion_block_size)
    blt_config = blt_config_from_fast_blt(model.config)
    blt_config.architectures = ["BltForCausalLM"]
    blt_config.save_pretrained(out_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return str(out_dir)


def convert_checkpoint(src, dst, to: str = "transformers") -> str:
    """Convert a checkpoint directory. to="transformers": ours -> BLT; to="fast_blt": BLT -> ours."""
    model = FastBltForCausalLM.from_pretrained(src)
    if to == "transformers":
        return export_to_transformers_blt(model, dst)
    if to == "fast_blt":  # with the byte tokenizer, so the directory loads like any saved model (Auto*, lm-eval)
        model.save_pretrained(dst)
        FastBltTokenizerFast(model_max_length=model.config.max_bytes).save_pretrained(dst)
        return str(dst)
    raise ValueError(f"to must be 'transformers' or 'fast_blt', got {to!r}")
