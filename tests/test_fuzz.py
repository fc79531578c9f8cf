"""Fuzzing (hypothesis): random argument values for generate() and FastBltConfig either work or raise
a ValueError / TypeError that names the argument; never another exception type, never a hang."""

import signal

import pytest
import torch
from conftest import random_ids, sharpen_patcher, tiny_blt_fields
from huggingface_hub.errors import StrictDataclassError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blt_hf import FastBltConfig, FastBltForCausalLM

pytestmark = pytest.mark.usefixtures("one_thread")

weird_numbers = st.one_of(st.integers(-3, 12), st.integers(-10**9, 10**9), st.floats(allow_nan=True),
                          st.booleans(), st.none(), st.text(max_size=3))
GENERATE_ARGS = {
    "decoding": st.sampled_from(["autoregressive", "diffusion", "self_speculation", "diffusion_verify", "beam", ""]),
    "max_new_tokens": st.one_of(st.integers(-2, 24), st.floats(-1, 30), st.none()),
    "block_size": weird_numbers, "draft_length": weird_numbers, "top_k": weird_numbers,
    "confidence_threshold": weird_numbers, "entropy_bound": weird_numbers, "temperature": weird_numbers,
    "top_p": weird_numbers, "num_return_sequences": st.one_of(st.integers(-1, 2), st.none()),
    "unmasking": st.sampled_from(["confidence", "entropy_bound", "one_step", "random"]),
    "unmasking_fallback": st.sampled_from(["most_confident", "leftmost", "end_block", "next_or_end", "rightmost"]),
    "do_sample": st.booleans(), "first_byte_from_ar": st.booleans(), "repatch_blocks": st.booleans(),
}


class Hang(Exception):
    pass


def alarm(seconds):
    def on_alarm(*_):
        raise Hang(f"no answer within {seconds} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=4))).eval()
    sharpen_patcher(m, random_ids(1, 64))
    return m


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kwargs=st.fixed_dictionaries({}, optional=GENERATE_ARGS), batch=st.integers(1, 2))
def test_generate_fuzz(model, kwargs, batch):
    ids = random_ids(batch, 6, seed=1)
    alarm(30)
    try:
        out = model.generate(ids, eos_token_id=None, **kwargs)
        assert out.shape[0] == batch * (kwargs.get("num_return_sequences") or 1)
    except (ValueError, TypeError) as err:
        assert any(name in str(err) for name in kwargs), f"{err!r} names none of {sorted(kwargs)}"
    finally:
        signal.alarm(0)


CONFIG_ARGS = {
    "diffusion_block_size": weird_numbers, "diffusion_loss_weight": weird_numbers, "cross_attn_k": weird_numbers,
    "max_patch_length": weird_numbers, "patching_threshold": weird_numbers, "vocab_size": weird_numbers,
    "encoder_hash_byte_group_vocab": weird_numbers,
    "encoder_hash_byte_group_size": st.one_of(st.lists(st.integers(-1, 9), max_size=3), st.none()),
    "global_config": st.fixed_dictionaries({}, optional={"hidden_size": weird_numbers,
                                                         "num_attention_heads": weird_numbers,
                                                         "num_key_value_heads": weird_numbers,
                                                         "rope_parameters": st.fixed_dictionaries(
                                                             {"rope_theta": weird_numbers})}),
}


@settings(max_examples=80, deadline=None)
@given(kwargs=st.fixed_dictionaries({}, optional=CONFIG_ARGS))
def test_config_fuzz(kwargs):
    alarm(10)
    try:
        FastBltConfig(**kwargs)
    except (ValueError, TypeError, StrictDataclassError) as err:
        # transformers' strict configs raise StrictDataclass*Error (carrying our ValueError's message)
        names = set(kwargs) | {k for v in kwargs.values() if isinstance(v, dict) for k in v}
        assert any(name in str(err) for name in names), f"{err!r} names none of {sorted(names)}"
    finally:
        signal.alarm(0)
