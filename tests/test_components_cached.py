"""Each cached component against the full forward, so a mismatch names the component.

The prompt goes into a DecodeState in uneven chunks (as prefill, drafts and BLT-D blocks do); after
every chunk the patching (the patch rule included, also on random entropies), the encoder states,
the global model's latent slots and the decoder's logits are compared with `FastBltModel`'s
full-sequence passes over the same bytes."""

import pytest
import torch
from conftest import random_ids, sharpen_patcher, tiny_blt_fields

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.cache_fast_blt import DecodeState
from blt_hf.generation_fast_blt import Counters, append, decode_clean, run_global, update_patches, write_bytes
from blt_hf.patching import patch_starts_from_entropies

pytestmark = pytest.mark.usefixtures("one_thread")
CHUNKS = [5, 1, 3, 1, 1, 7, 2, 4, 1, 6]  # 31 bytes in the sizes decoding produces


@pytest.fixture(scope="module", params=[None, 3], ids=["no_max_patch", "max_patch_3"])
def model(request):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(max_patch_length=request.param))).eval()
    sharpen_patcher(model, random_ids(1, 64))
    return model


def chunked_state(model, ids, static):
    """Feed ids (B, N) in CHUNKS; run the global model and the decoder after every chunk as decoding
    does. -> (state, next-byte logits (B, N, V) collected chunk by chunk)."""
    B, N = ids.shape
    st = DecodeState.empty(model.config, B, N + 8, 4, torch.float32, ids.device, True, static=static)
    counters = Counters.zeros(B, ids.device)
    active, logits, at = torch.ones(B, dtype=torch.bool), [], 0
    for size in CHUNKS:
        chunk = ids[:, at: at + size]
        append(model, st, chunk, torch.ones_like(chunk, dtype=torch.bool))
        run_global(model, st, active, counters)
        logits.append(decode_clean(model, st, chunk.shape[1], counters, active, all_logits=True))
        at += size
    assert at == N
    return st, torch.cat(logits, 1)


@pytest.fixture(scope="module", params=[False, True], ids=["dynamic", "static"])
def runs(model, request):
    ids = random_ids(2, sum(CHUNKS), seed=9)
    valid = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        st, logits = chunked_state(model, ids, static=request.param)
        ctx = model.model.contextualize(ids, valid)
        full_logits = model(ids).logits
    return ids, st, logits, ctx, full_logits


def test_patcher_and_patch_rule(runs):
    ids, st, _, ctx, _ = runs
    N = ids.shape[1]
    assert torch.equal(st.pid[:, :N], ctx.patching.ids)
    # the last byte's "next byte opens a patch" bit is the full rule's column N
    assert torch.equal(st.complete_patches(), ctx.patching.starts.sum(-1) - 1 + st.tail().nstart)


def test_encoder(runs):
    ids, st, _, ctx, _ = runs
    torch.testing.assert_close(st.enc[:, : ids.shape[1]], ctx.h_bytes, atol=1e-5, rtol=1e-5)


def test_global(runs, model):
    _, st, _, ctx, _ = runs
    done = int(st.glob.min())
    assert torch.equal(st.glob, st.complete_patches())  # every complete patch went through it
    slots = model.model.latent_slots(ctx.global_states)  # (B, M, k, Hd)
    torch.testing.assert_close(st.lat[:, :done], slots[:, :done], atol=1e-5, rtol=1e-5)


def test_decoder(runs):
    _, _, logits, _, full_logits = runs
    special = [0, 1, 3]
    full = full_logits.float().clone()
    full[..., special] = float("-inf")
    torch.testing.assert_close(logits, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("max_patch_length", [None, 2, 5])
@pytest.mark.parametrize("seed", range(4))
def test_incremental_patch_rule_equals_the_full_rule_on_random_entropies(model, max_patch_length, seed):
    """update_patches alone, fed random entropies chunk by chunk, against patch_starts_from_entropies."""
    g = torch.Generator().manual_seed(seed)
    B, N, threshold = 3, sum(CHUNKS), 1.0
    H = torch.rand(B, N, generator=g) * 2
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[1, :4] = False  # a left-padded row
    config = model.config.__class__(**{**model.config.to_dict(), "patching_threshold": threshold,
                                       "max_patch_length": max_patch_length})
    st = DecodeState.empty(config, B, N + 4, 2, torch.float32, H.device, True)
    stub = type("Stub", (), {"config": config})()
    at = 0
    for size in CHUNKS:
        cols = st.length[:, None] + torch.arange(size)
        t = st.tail()
        write_bytes(st, cols, torch.full((B, size), 10), valid[:, at: at + size], t)
        update_patches(stub, st, cols, valid[:, at: at + size], H[:, at: at + size], t)
        st.length = st.length + size
        at += size
    pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    pos_ext = torch.cat([pos, pos[:, -1:] + 1], 1)
    starts_ext = patch_starts_from_entropies(H, valid, pos_ext, threshold, max_patch_length)
    expected = torch.where(valid, (starts_ext[:, :-1] & valid).long().cumsum(-1) - 1, -1)
    assert torch.equal(st.pid[:, :N], expected)
    assert torch.equal(st.tail().nstart.bool(), starts_ext[:, -1])  # does the next byte open a patch
