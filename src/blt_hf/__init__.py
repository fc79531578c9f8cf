"""blt_hf: the Byte Latent Transformer for Hugging Face transformers, with fast decoders.

Importing the package registers `FastBltConfig` ("fast_blt"), `FastBltModel`,
`FastBltForCausalLM` and `FastBltTokenizer` with the Auto classes, so a saved directory
reloads offline through `AutoConfig` / `AutoModel(ForCausalLM)` / `AutoTokenizer`, and makes
attention + MLP (never the frozen patcher) PEFT's LoRA default for it.
"""

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from .configuration_fast_blt import (
    FastBltConfig,
    FastBltGlobalTransformerConfig,
    FastBltLocalDecoderConfig,
    FastBltLocalEncoderConfig,
    FastBltPatcherConfig,
    fast_blt_config_from_blt,
)
from .convert import convert_checkpoint, export_to_transformers_blt
from .lora import register_peft_default
from .modeling_fast_blt import FastBltForCausalLM, FastBltModel, FastBltPreTrainedModel
from .tokenization_fast_blt import FastBltTokenizer
from .tokenization_fast_blt_fast import FastBltTokenizerFast

AutoConfig.register(FastBltConfig.model_type, FastBltConfig)
AutoModel.register(FastBltConfig, FastBltModel)
AutoModelForCausalLM.register(FastBltConfig, FastBltForCausalLM)
AutoTokenizer.register(FastBltConfig, slow_tokenizer_class=FastBltTokenizer, fast_tokenizer_class=FastBltTokenizerFast)
register_peft_default(FastBltConfig.model_type)  # `LoraConfig()` without target_modules

__version__ = "0.1.0"
# The small BLT-D model trained by us on Python's standard library and shipped with the package.
DEFAULT_MODEL_PATH = str(Path(__file__).parent / "default_model")
__all__ = [
    "DEFAULT_MODEL_PATH",
    "FastBltConfig",
    "FastBltPatcherConfig",
    "FastBltLocalEncoderConfig",
    "FastBltGlobalTransformerConfig",
    "FastBltLocalDecoderConfig",
    "FastBltPreTrainedModel",
    "FastBltModel",
    "FastBltForCausalLM",
    "FastBltTokenizer",
    "FastBltTokenizerFast",
    "convert_checkpoint",
    "export_to_transformers_blt",
    "fast_blt_config_from_blt",
]
