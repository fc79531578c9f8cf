"""The shipped default model: loads through the Auto classes, runs every decoder, and its
validation bits per byte on a fixed held-out slice stays under the bound recorded when it was
trained (a regression test; the full evaluation is benchmarks/eval_heldout.py)."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import blt_hf
from blt_hf.data import pack_documents, split_documents, stdlib_documents

# Measured at release on the slice below (see MODEL_CARD.md), plus 2% slack for platform round-off.
NEXT_BYTE_BPB_BOUND = 1.30  # measured 1.270 on 2026-11-30, stage 14 (stage 12: 1.359, stage 11: 1.383, stage 9: 1.563, stage 8: 1.659, stage 6: 2.030, stage 3: 2.322, stage 1: 2.888)
SLICE_ROWS, SLICE_LEN = 8, 512


@pytest.fixture(scope="module")
def shipped():
    model = AutoModelForCausalLM.from_pretrained(blt_hf.DEFAULT_MODEL_PATH).eval()
    tokenizer = AutoTokenizer.from_pretrained(blt_hf.DEFAULT_MODEL_PATH)
    return model, tokenizer


def test_loads_through_auto_classes(shipped):
    model, tokenizer = shipped
    assert isinstance(model, blt_hf.FastBltForCausalLM) and isinstance(tokenizer, blt_hf.FastBltTokenizerFast)
    assert model.config.diffusion_block_size > 0 and model.model.patcher is not None
    assert model.generation_config.decoding == "diffusion"


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion", "self_speculation", "diffusion_verify"])
def test_generates_with_every_decoder(shipped, decoding):
    model, tokenizer = shipped
    ids = tokenizer("def read_config(path):\n", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=24, decoding=decoding, return_dict_in_generate=True)
    assert out.sequences.shape[1] > ids.shape[1]
    assert torch.equal(out.sequences[:, :ids.shape[1]], ids)
    assert (out.sequences[:, ids.shape[1]:] != 3).all()  # MASK is never emitted


def test_greedy_speculative_decoders_equal_autoregressive(shipped):
    model, tokenizer = shipped
    ids = tokenizer("class Stack:\n    def push(self, item):\n", return_tensors="pt").input_ids
    ar = model.generate(ids, max_new_tokens=48, decoding="autoregressive")
    for decoding in ("self_speculation", "diffusion_verify"):
        assert torch.equal(model.generate(ids, max_new_tokens=48, decoding=decoding), ar), decoding


def held_out_slice():
    _, validation = split_documents(stdlib_documents())
    validation = [d for d in validation if d.name.endswith(".py")]
    return torch.tensor(pack_documents(validation, SLICE_LEN, SLICE_ROWS * SLICE_LEN)["input_ids"])


@torch.no_grad()
def slice_bits_per_byte(model):
    """Next-byte bits per byte on held_out_slice() (also what benchmarks/shipped_bounds.py reports)."""
    ids = held_out_slice()
    assert ids.shape == (SLICE_ROWS, SLICE_LEN)
    logits = model(ids).logits[:, :-1]
    targets = ids[:, 1:]
    keep = targets != 1  # BOS after EOS is free in packed rows (as blt_hf.evaluation)
    return torch.nn.functional.cross_entropy(logits[keep], targets[keep]).item() / math.log(2)


def test_validation_bits_per_byte_stays_under_recorded_bound(shipped):
    model, _ = shipped
    bpb = slice_bits_per_byte(model)
    assert bpb < NEXT_BYTE_BPB_BOUND, bpb


# Line completion on held-out code (blt_hf.generation_quality), greedy: measured at release on the
# first LINES lines, minus slack; the full evaluation is benchmarks/line_completion.py.
LINES = 24
AR_EDIT_SIMILARITY_BOUND = 0.34  # measured 0.370 on 2026-11-30, stage 14 (stage 12: 0.374, stage 11: 0.371, stage 9: 0.330, stage 8: 0.345, stage 6: 0.315, stage 3: 0.269; slack: greedy near-ties flip)


def test_line_completion_stays_above_recorded_bound(shipped):
    from blt_hf.generation_quality import line_completion, line_completion_tasks

    model, _ = shipped
    _, validation = split_documents(stdlib_documents())
    tasks = line_completion_tasks(validation, LINES)
    result = line_completion(model, tasks, decoding="autoregressive")
    assert result.edit_similarity > AR_EDIT_SIMILARITY_BOUND, result.edit_similarity


def test_one_length_limit_everywhere(shipped):
    model, tokenizer = shipped
    limit = model.config.max_bytes
    assert limit == model.config.max_position_embeddings == tokenizer.model_max_length
    too_long = torch.ones(1, limit + 1, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"maximum sequence length for this model \({limit + 1} > {limit}"):
        model(too_long)
    with pytest.raises(ValueError, match=rf"maximum sequence length for this model \({limit + 1} > {limit}"):
        model.generate(too_long, max_new_tokens=1)
    with pytest.raises(ValueError, match="is longer than the model allows"):
        model.generate(torch.ones(1, limit - 2, dtype=torch.long), max_new_tokens=5)
