"""benchmarks/time_components.py: its clock counts the passes generate() counts, and uninstalls itself."""

import pytest
import torch
from conftest import load_benchmark, random_ids
from test_generation import greedy, make_model

import blt_hf.generation_fast_blt as generation

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def components():
    return load_benchmark("time_components")


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion"])
def test_clock_counts_the_passes_generate_counts(components, decoding):
    model, ids = make_model(sharpen_head=4.0), random_ids(1, 12, seed=3)
    kw = dict(decoding=decoding, return_dict_in_generate=True)
    with components.ComponentClock() as clock:
        out = greedy(model, ids, 20, **kw)
    calls = dict(clock.calls)
    assert calls["encode_bytes"] == int(out.encoder_calls)
    decoder = sum(n for name, n in calls.items() if name.startswith(("clean_logits", "block_logits")))
    assert decoder == int(out.decoder_calls)
    if decoding == "diffusion":  # one first pass per block, and one global pass (closing the patch) per block
        assert calls["block_logits (first pass)"] == int(out.cycles) == int(out.global_calls)
    assert all(getattr(generation, name) is fn for name, fn in clock.originals.items())  # uninstalled
    assert torch.equal(greedy(model, ids, 20, **kw).sequences, out.sequences)  # timing changed no byte


def test_time_setting_one_pass_blocks(components):
    """One-step unmasking fills each block in its first pass: no later passes, one first pass and one global
    pass per block; the timed steps do not nest (host time, the rest of the wall clock, is not negative)."""
    model = make_model(sharpen_head=4.0)
    prompts = [random_ids(1, 10, seed=s) for s in (1, 2)]
    r = components.time_setting(model, prompts, 16, dict(decoding="diffusion", unmasking="one_step"))
    parts = r["parts"]
    assert r["bytes"] == 32 and parts["host"]["ms_per_byte"] >= 0
    assert "block_logits (later passes)" not in parts
    assert parts["block_logits (first pass)"]["calls_per_byte"] == r["global_passes_per_byte"] == 4 / 16
