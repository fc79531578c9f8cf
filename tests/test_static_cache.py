"""cache_implementation="static": fixed-shape decoding steps, eager and compiled, against the dynamic cache.

The static cache attends over every column of its buffers (masks admit the committed ones), so its
outputs must equal the dynamic cache's byte for byte, for every decoder, with left padding; compiled
steps (a CPU `compile_config`) must equal the eager ones and be reused across prompt lengths that fit
the same cache size, without recompiling.
"""

import pytest
import torch
from conftest import random_ids
from test_generation import fast, greedy, make_model
from transformers.generation.configuration_utils import CompileConfig

DECODINGS = ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"]
COUNTED = ("decoder_calls", "global_calls", "encoder_calls", "cycles", "accepted_bytes")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return make_model(sharpen_head=4.0)  # peaked: BLT-D commits several bytes per pass


def padded_batch():
    a, b = random_ids(1, 7, seed=10), random_ids(1, 15, seed=11)
    batch = torch.cat([torch.cat([torch.zeros(1, 8, dtype=torch.long), a], 1), b])
    mask = torch.ones_like(batch)
    mask[0, :8] = 0
    return batch, mask


@pytest.mark.parametrize("decoding", DECODINGS)
def test_static_cache_equals_dynamic_cache(model, decoding):
    batch, mask = padded_batch()
    kw = dict(attention_mask=mask, return_dict_in_generate=True, **fast(decoding))
    dynamic = greedy(model, batch, 20, **kw)
    static = greedy(model, batch, 20, cache_implementation="static", **kw)
    assert torch.equal(static.sequences, dynamic.sequences)
    for name in COUNTED:
        assert torch.equal(getattr(static, name), getattr(dynamic, name)), name


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion"])
def test_long_prompt_pools_from_every_column(model, decoding):
    """A prompt longer than the global pass's trailing pooling window (64 columns) takes the full-width pooling."""
    ids = random_ids(1, 150, seed=12)
    kw = dict(return_dict_in_generate=True, **fast(decoding))
    dynamic, static = greedy(model, ids, 12, **kw), greedy(model, ids, 12, cache_implementation="static", **kw)
    assert torch.equal(static.sequences, dynamic.sequences)
    assert torch.equal(static.global_calls, dynamic.global_calls)


def test_static_cache_logits_equal_dynamic_cache(model):
    ids = random_ids(1, 11, seed=3)
    dynamic = greedy(model, ids, 16, output_logits=True)
    static = greedy(model, ids, 16, output_logits=True, cache_implementation="static", max_cache_len=64)
    torch.testing.assert_close(torch.stack(static.logits), torch.stack(dynamic.logits), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(cache_implementation="offloaded"), "cache_implementation"),
    (dict(max_cache_len=512), "needs cache_implementation='static'"),
    (dict(cache_implementation="static", max_cache_len=20), "max_cache_len=20"),
])
def test_bad_cache_settings_raise(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        greedy(model, random_ids(1, 9), 8, **kwargs)


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion"])
def test_compiled_steps_equal_eager_and_are_reused(model, decoding):
    """A CPU compile_config compiles the steps (as transformers' `_compile_all_devices`) into a few graphs
    each, not one per step (a guard on a value that changes as bytes commit would recompile every time a
    patch completes: the limit makes that an error); the second prompt, of another length but the same
    cache size, must not recompile at all."""
    kw = dict(decoding=decoding, cache_implementation="static", max_cache_len=64)
    first, second = random_ids(1, 9, seed=4), random_ids(1, 14, seed=5)
    eager = [greedy(model, ids, 24, **kw) for ids in (first, second)]
    config = CompileConfig(dynamic=False, mode="default")
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=3, fail_on_recompile_limit_hit=True):
        assert torch.equal(greedy(model, first, 24, compile_config=config, **kw), eager[0])
    with torch.compiler.set_stance("fail_on_recompile"):
        assert torch.equal(greedy(model, second, 24, compile_config=config, **kw), eager[1])
    torch._dynamo.reset()


@pytest.mark.parametrize("fallback", ["end_block", "next_or_end"])
def test_end_block_fallback_batch_rows_alone_and_static(fallback):
    """Blocks cut at different lengths per row (unmasking_fallback="end_block" / "next_or_end"): each row of
    a left-padded batch equals the row alone, and the static cache equals the dynamic one."""
    batch, mask = padded_batch()
    kw = dict(decoding="diffusion", unmasking_fallback=fallback, first_byte_from_ar=True,
              confidence_threshold=0.7, return_dict_in_generate=True)
    model_end_block = make_model(sharpen_head=2.0)
    dynamic = greedy(model_end_block, batch, 20, attention_mask=mask, **kw)
    assert (dynamic.cycles > 20 // 4).all() and dynamic.cycles[0] != dynamic.cycles[1], "rows cut blocks differently"
    static = greedy(model_end_block, batch, 20, attention_mask=mask, cache_implementation="static", **kw)
    assert torch.equal(static.sequences, dynamic.sequences)
    for name in COUNTED:
        assert torch.equal(getattr(static, name), getattr(dynamic, name)), name
    for row, ids in ((0, batch[:1, 8:]), (1, batch[1:])):
        alone = greedy(model_end_block, ids, 20, **kw).sequences[0]
        torch.testing.assert_close(dynamic.sequences[row, -alone.shape[0]:], alone, rtol=0, atol=0)


def test_compiled_end_block_equals_eager_without_recompiling(model):
    """Cut blocks change how many bytes each block commits, not the compiled passes' shapes."""
    kw = dict(decoding="diffusion", unmasking_fallback="end_block", first_byte_from_ar=True,
              cache_implementation="static", max_cache_len=64, return_dict_in_generate=True)
    ids = random_ids(1, 9, seed=4)
    eager = greedy(model, ids, 24, **kw)
    assert eager.cycles.item() > 24 // 4, "blocks were cut"
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=3, fail_on_recompile_limit_hit=True):
        compiled = greedy(model, ids, 24, compile_config=CompileConfig(dynamic=False, mode="default"), **kw)
    torch._dynamo.reset()
    assert torch.equal(compiled.sequences, eager.sequences)
