"""FastBltGenerationConfig: typed decoder settings, validated, saved and reloaded as ours, CLI choices."""

import pytest
import torch
from transformers import GenerationConfig

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.cli import build_parser
from blt_hf.generation_config_fast_blt import DECODER_DEFAULTS, DECODINGS, UNMASKING, FastBltGenerationConfig
from blt_hf.sampling import FALLBACKS

from conftest import random_ids, tiny_blt_fields


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(decoding="beam"), ValueError, "`decoding` must be one of"),
    (dict(unmasking="random"), ValueError, "`unmasking` must be one of"),
    (dict(unmasking_fallback="random"), ValueError, "`unmasking_fallback` must be one of"),
    (dict(block_size=0), ValueError, "`block_size` must be >= 1"),
    (dict(block_size=2.5), TypeError, "`block_size` must be an integer"),
    (dict(draft_length=True), TypeError, "`draft_length` must be an integer"),
    (dict(first_byte_from_ar="yes"), TypeError, "`first_byte_from_ar` must be True or False"),
    (dict(confidence_threshold=1.5), ValueError, r"`confidence_threshold` must be in \(0, 1\]"),
    (dict(entropy_bound=0.0), ValueError, "`entropy_bound` must be > 0"),
    (dict(max_new_tokens=0), ValueError, "`max_new_tokens` must be greater than 0"),  # transformers' own check
])
def test_bad_values_raise_when_the_config_is_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        FastBltGenerationConfig(**kwargs)


def test_unset_is_none_and_defaults_are_written_once():
    config = FastBltGenerationConfig()
    assert all(getattr(config, name) is None for name in DECODER_DEFAULTS)
    defaults = config._get_default_generation_params()
    assert {k: defaults[k] for k in DECODER_DEFAULTS} == DECODER_DEFAULTS
    assert defaults["top_k"] == 0 and defaults["max_new_tokens"] == 128


@pytest.mark.parametrize("block", [0, 4])
def test_model_defaults_save_and_reload_as_ours(tmp_path, block):
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=block)))
    gc = model.generation_config
    assert isinstance(gc, FastBltGenerationConfig)
    assert gc.decoding == ("diffusion" if block else "autoregressive") and gc.block_size == (block or 8)
    gc.confidence_threshold, gc.first_byte_from_ar = 0.5, True
    model.save_pretrained(tmp_path)
    reloaded = FastBltForCausalLM.from_pretrained(tmp_path).generation_config
    assert isinstance(reloaded, FastBltGenerationConfig)
    assert {k: getattr(reloaded, k) for k in DECODER_DEFAULTS} == {k: getattr(gc, k) for k in DECODER_DEFAULTS}
    assert GenerationConfig.from_pretrained(tmp_path).decoding == gc.decoding  # plain transformers reads it too


def test_precedence_kwargs_then_explicit_config_then_model_then_defaults():
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=4))).eval()
    ids = random_ids(1, 6)
    model.generation_config.max_new_tokens = 5  # the model's own default
    assert model.generate(ids, eos_token_id=None).shape == (1, 11)
    explicit = GenerationConfig(max_new_tokens=7, eos_token_id=None)
    assert model.generate(ids, generation_config=explicit).shape == (1, 13)
    assert model.generate(ids, generation_config=explicit, max_new_tokens=3).shape == (1, 9)
    ar = model.generate(ids, decoding="autoregressive", max_new_tokens=6, eos_token_id=None)
    typed = FastBltGenerationConfig(decoding="autoregressive", max_new_tokens=6, eos_token_id=None)
    assert torch.equal(model.generate(ids, generation_config=typed), ar)


def test_cli_choices_come_from_the_config():
    parser = build_parser()
    gen = next(a for a in parser._subparsers._group_actions[0].choices["generate"]._actions if a.dest == "decoding")
    assert tuple(gen.choices) == DECODINGS
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["generate"]._actions}
    assert tuple(actions["unmasking"].choices) == UNMASKING
    assert tuple(actions["unmasking_fallback"].choices) == FALLBACKS
