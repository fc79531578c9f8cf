"""PEFT LoRA targets for fast_blt: attention and MLP projections, never the frozen entropy patcher.

Importing blt_hf registers `lora_target_modules()` as PEFT's default for model type "fast_blt", so
`LoraConfig()` with no `target_modules` adapts what `lora_target_modules(model)` names.
"""

import importlib.util

import torch

LORA_ATTENTION_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_target_modules(model=None, names=LORA_ATTENTION_MLP) -> str:
    """PEFT `target_modules` regex (full match on module paths) that never reaches the frozen patcher.

    `names`: linear leaf names to adapt, or "all-linear" (needs `model`) for every `nn.Linear` except
    the output head. PEFT's own "all-linear" also wraps `model.patcher.*` (incl. the patcher's
    `lm_head`), which would change the patch boundaries the model was trained with; this regex does
    not. Self- and cross-attention share the q/k/v/o names, so both are adapted.
    """
    if names == "all-linear":
        if model is None:
            raise ValueError('lora_target_modules(model, "all-linear") needs the model to list its linear layers')
        names = sorted({n.rsplit(".", 1)[-1] for n, mod in model.named_modules()
                        if isinstance(mod, torch.nn.Linear) and ".patcher." not in f".{n}."} - {"lm_head"})
    return rf"^(?!(.*\.)?patcher\.).*\.({'|'.join(names)})$"


def register_peft_default(model_type: str = "fast_blt") -> None:
    """Make our regex PEFT's LoRA default for `model_type` (no-op without peft installed)."""
    if importlib.util.find_spec("peft") is None:
        return
    # PEFT has no registration API for custom architectures: LoraModel reads this module-level
    # mapping (by model_type) when `target_modules` is None, so we add our entry to it.
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(model_type, lora_target_modules())
