"""generate(): cached decoders against recompute-everything references, on tiny random weights.

References recompute the whole model for every byte (AR) or every denoising pass (BLT-D), with
no cache; BLT-S and BLT-DV must equal greedy AR byte for byte.
"""

import numpy as np
import pytest
import torch
from transformers import (LogitsProcessorList, MinNewTokensLengthLogitsProcessor, NoBadWordsLogitsProcessor,
                          NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor)
from conftest import DraftRecorder, hf_pair, random_ids, sharpen_patcher, tiny_blt_fields

import blt_hf.generation_fast_blt as generation
from blt_hf import FastBltConfig, FastBltForCausalLM, masks, sampling
from blt_hf.sampling import entropy

SPECIAL = [0, 1, 3]  # PAD, BOS, MASK: never generated


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(diffusion_block_size=4, sharpen_head=1.0, **fields):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=diffusion_block_size,
                                                               **fields))).eval()
    if model.model.patcher is not None:
        sharpen_patcher(model, random_ids(1, 64))
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen_head)  # > 1: peaked predictions, so several bytes pass a threshold
    return model


@pytest.fixture(scope="module")
def model():
    return make_model()


def fast(decoding):
    """Knobs that keep the random-weight BLT-DV runs short (its drafts are almost never accepted)."""
    one_step = {"unmasking": "one_step"} if decoding == "diffusion_verify" else {}
    return dict(decoding=decoding, draft_length=3, **one_step)


def greedy(model, ids, n, **kw):
    kw.setdefault("decoding", "autoregressive")
    return model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, **kw)


@torch.no_grad()
def reference_ar(model, ids, n):
    for _ in range(n):
        logits = model(ids).logits[:, -1]
        logits[:, SPECIAL] = float("-inf")
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids


# ----------------------------------------------------------------------------- autoregressive


def test_greedy_ar_matches_transformers_blt(tmp_path):
    ref, ours = hf_pair(tmp_path)
    ids = random_ids(1, 20, seed=3)
    expected = ref.generate(ids, max_new_tokens=32, min_new_tokens=32, do_sample=False, use_cache=False,
                            suppress_tokens=SPECIAL, eos_token_id=None, pad_token_id=0)
    torch.testing.assert_close(greedy(ours, ids, 32), expected, rtol=0, atol=0)


@pytest.mark.parametrize("fields", [dict(), dict(max_patch_length=3), dict(patch_in_forward=False),
                                    dict(cross_attn_k=1, enc_layers=2, enc_all=True)],
                         ids=["entropy", "max_patch_3", "byte_patches", "k1_enc_all"])
def test_cached_ar_equals_recompute(fields):
    model = make_model(**fields)
    ids = random_ids(1, 13, seed=5)
    out = greedy(model, ids, 24, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference_ar(model, ids, 24), rtol=0, atol=0)
    assert out.decoder_calls.tolist() == [24]
    assert 0 < out.global_calls.item() <= 24


# ----------------------------------------------------------------------------- BLT-S and BLT-DV


@pytest.mark.parametrize("draft_length", [1, 3, 8])
def test_self_speculation_equals_ar(model, draft_length):
    ids = random_ids(2, 11, seed=6)
    out = greedy(model, ids, 24, decoding="self_speculation", draft_length=draft_length, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, greedy(model, ids, 24), rtol=0, atol=0)
    assert (out.drafted_bytes > 0).all() and (out.accepted_bytes <= out.drafted_bytes).all()


@pytest.mark.parametrize("block_size,unmasking", [(2, "confidence"), (4, "entropy_bound"), (8, "one_step")])
def test_diffusion_verify_equals_ar(model, block_size, unmasking):
    ids = random_ids(2, 11, seed=7)
    out = greedy(model, ids, 20, decoding="diffusion_verify", block_size=block_size, unmasking=unmasking,
                 confidence_threshold=0.3, entropy_bound=1.5)
    torch.testing.assert_close(out, greedy(model, ids, 20), rtol=0, atol=0)


def drafted_by_streamer(model, ids, n, **kw):
    """(output, bytes drafted as a streamer sees the drafts: each one's last pass, up to its first MASK)."""
    recorder, mask_id = DraftRecorder(), model.config.mask_token_id
    out = model.generate(ids, max_new_tokens=n, do_sample=False, streamer=recorder, **kw)
    finals = [value[0].tolist() for value, masked, _ in recorder.drafts if not masked.any()]
    return out, sum((d[1:] + [mask_id]).index(mask_id) for d in finals)  # d[0]: the pending byte


def test_diffusion_verify_with_cut_blocks_equals_ar_and_counts_only_drafted_bytes(monkeypatch):
    """unmasking_fallback="end_block" ends a draft before its first undecided byte: BLT-DV still writes AR's
    bytes, only the bytes before each cut count as drafted, and verification runs over no column that no
    running row drafted (a row stopped by EOS drafts nothing)."""
    model, ids = make_model(sharpen_head=4.0), random_ids(3, 11, seed=7)
    kw = dict(decoding="diffusion_verify", unmasking_fallback="end_block", confidence_threshold=0.5,
              return_dict_in_generate=True)
    one, drafted = drafted_by_streamer(model, ids[1:2], 24, eos_token_id=None, **kw)  # a streamer's view, batch 1
    assert one.drafted_bytes.item() == drafted
    calls, denoise, verify = [], generation.denoise, generation.verify

    def recording_denoise(*args, **kwargs):  # denoise(model, st, o, block, masked, q_clean, counters, active, ...)
        block, keep = denoise(*args, **kwargs)
        calls.append(("draft", (keep - 1) * args[7]))  # a draft keeps the pending byte + keep - 1 drafted bytes
        return block, keep

    def recording_verify(m, st, o, chunk, counters, active, *rest):
        calls.append(("verify", chunk.clone(), active.clone()))
        return verify(m, st, o, chunk, counters, active, *rest)

    monkeypatch.setattr(generation, "denoise", recording_denoise)
    monkeypatch.setattr(generation, "verify", recording_verify)
    eos = int(greedy(model, ids, 24)[0, 11 + 5])  # row 0 stops at its sixth new byte (others where they write it)
    out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=eos, **kw)
    ar = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=eos, decoding="autoregressive")
    torch.testing.assert_close(out.sequences, ar, rtol=0, atol=0)
    assert (out.sequences[0, 11 + 6:] == model.config.pad_token_id).all() and out.sequences.shape[1] > 11 + 6
    assert ((out.drafted_bytes > 0) & (out.drafted_bytes < out.cycles * 4)).all(), "drafts, some of them cut"
    assert (out.accepted_bytes <= out.drafted_bytes).all()
    assert torch.equal(out.drafted_bytes, sum(c[1] for c in calls if c[0] == "draft"))
    mask_id = model.config.mask_token_id
    for _, chunk, active in (c for c in calls if c[0] == "verify"):  # the last column: a running row's draft
        assert chunk.shape[1] == 1 or (active & (chunk[:, -1] != mask_id)).any()


# ----------------------------------------------------------------------------- BLT-D


def reference_patch_starts(model, seq, forced):
    """(N+1,) bool by the rule in plain Python: first two bytes, H(x_{i-1}) > threshold, forced starts."""
    c, N = model.config, seq.shape[1]
    pos = torch.arange(N)[None]
    mask = masks.causal_mask(pos, pos, torch.ones(1, N, dtype=torch.bool), c.patcher_config.sliding_window)
    H = entropy(model.model.patcher(seq, pos, mask))[0]
    return torch.tensor([i <= 1 or i in forced or bool(H[i - 1] > c.patching_threshold) for i in range(N + 1)])


@torch.no_grad()
def reference_block_logits(model, seq, forced, block):
    """No cache: patch (with forced block starts), encode, global, decode [clean; block] from scratch.
    -> logits (1, 1 + Bs, V): the last clean byte's next-byte logits, then the block's."""
    inner, c, (N, Bs) = model.model, model.config, (seq.shape[1], block.shape[1])
    starts = reference_patch_starts(model, seq, forced | {N})
    pid = starts[:N].long().cumsum(0) - 1
    M, window = int(pid[-1]) + 1, c.local_attention_window_len
    pos = torch.arange(N)[None]
    h = inner.local_encoder(inner.embed(seq), pos, masks.causal_mask(pos, pos, torch.ones(1, N, dtype=torch.bool),
                                                                     window))
    ppos = torch.arange(M)[None]
    g = inner.global_transformer(inner.local_encoder.pool(h, pid[None], M), ppos,
                                 masks.causal_mask(ppos, ppos, torch.ones(1, M, dtype=torch.bool)))
    spos = torch.arange(N + Bs)[None]
    in_block = spos >= N
    mask = masks.causal_mask(spos, spos, ~in_block, window) | (in_block[:, :, None] & in_block[:, None, :])[:, None]
    latent = torch.cat([pid + starts[1:].long() - 1, torch.full((Bs,), M - 1)])[None]
    if c.diffusion_block_input == "encoder":  # n-grams of [clean; block], then encoder layers under `mask`
        h_block = inner.local_encoder(inner.embed(torch.cat([seq, block], 1)), spos, mask)[:, N:]
    else:
        h_block = inner.local_encoder.embed_tokens(block)
    stream = torch.cat([h, h_block], 1)
    out = inner.local_decoder(stream, spos, mask, inner.local_decoder.latent_slots(g),
                              masks.decoder_cross_mask(latent, M, c.cross_attn_k))
    logits = model.lm_head(out[:, N - 1:]).float()
    logits[..., SPECIAL] = float("-inf")
    return logits


def reference_diffusion(model, ids, n_new, block_size, alpha, first_byte_from_ar=False, repatch_blocks=False,
                        fallback="most_confident"):
    """BLT-D recomputed from scratch for every pass. Block starts stay forced patch starts unless
    `repatch_blocks` (then only the block being decoded forces one, Algorithm 1); with
    `first_byte_from_ar` the block's first byte is the next-byte head's, taken in the first pass."""
    seq, forced = ids, set()
    while seq.shape[1] < ids.shape[1] + n_new:
        block = torch.full((1, block_size), 3)
        masked = torch.ones(1, block_size, dtype=torch.bool)
        first = True
        while masked.any():
            logits = reference_block_logits(model, seq, forced, block)
            ar_first = first_byte_from_ar and first
            # offset 0 from the next-byte head (logits[:, 0]) or the block's own position; offset j >= 1 always its own
            own = torch.cat([logits[:, :1], logits[:, 2:]], 1) if ar_first else logits[:, 1:]
            conf, values = own.softmax(-1).max(-1)
            if ar_first:
                conf[:, 0] = 2.0
            cuts = fallback in ("end_block", "next_or_end")
            if cuts and not (masked & (conf > alpha)).any() and block[0, 0] != 3:
                nxt = int(masked[0].nonzero()[0])
                surest = max((float(conf[0, j]), -j) for j in range(block_size) if masked[0, j])
                if fallback == "end_block" or -surest[1] != nxt:
                    block = block[:, :nxt]  # nothing sure (and the surest not next): the decided prefix only
                    break
            rule = "leftmost" if cuts else fallback  # their first byte, or the next byte in order: leftmost
            chosen = sampling.unmask_confidence(conf, masked, alpha, rule)
            block, masked, first = torch.where(chosen, values, block), masked & ~chosen, False
        if not repatch_blocks:
            forced.add(seq.shape[1])
        seq = torch.cat([seq, block], 1)
    return seq[:, : ids.shape[1] + n_new]


@pytest.mark.parametrize("block_input", ["bytes", "encoder"])
def test_cached_diffusion_equals_recompute(block_input):
    model = make_model(sharpen_head=12.0, diffusion_block_input=block_input)
    ids = random_ids(1, 10, seed=8)
    out = greedy(model, ids, 16, decoding="diffusion", confidence_threshold=0.5, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference_diffusion(model, ids, 16, 4, 0.5), rtol=0, atol=0)
    assert out.decoder_calls.item() < 16, "a sharpened head should unmask several bytes per pass"


@pytest.mark.parametrize("first_byte_from_ar,repatch_blocks,fallback", [
    (True, False, "most_confident"), (False, True, "most_confident"), (True, True, "leftmost"),
    (False, False, "leftmost"), (True, False, "end_block"), (False, False, "end_block"), (True, True, "end_block"),
    (True, False, "next_or_end"), (False, False, "next_or_end")])
def test_diffusion_options_equal_recompute(first_byte_from_ar, repatch_blocks, fallback):
    model = make_model(sharpen_head=6.0)
    ids = random_ids(1, 10, seed=0)
    opts = dict(first_byte_from_ar=first_byte_from_ar, repatch_blocks=repatch_blocks)
    out = greedy(model, ids, 16, decoding="diffusion", confidence_threshold=0.5, unmasking_fallback=fallback, **opts)
    ref = reference_diffusion(model, ids, 16, 4, 0.5, fallback=fallback, **opts)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    if fallback in ("end_block", "next_or_end"):  # blocks were cut here: not the leftmost rule under another name
        assert not torch.equal(ref, reference_diffusion(model, ids, 16, 4, 0.5, fallback="leftmost", **opts))
    if fallback == "next_or_end":  # and it committed some next bytes end_block would have cut at
        assert not torch.equal(ref, reference_diffusion(model, ids, 16, 4, 0.5, fallback="end_block", **opts))
    if repatch_blocks:  # the persistent forced boundaries change the text: the option is not a no-op
        assert not torch.equal(ref, reference_diffusion(model, ids, 16, 4, 0.5, first_byte_from_ar=first_byte_from_ar,
                                                        fallback=fallback))


def test_end_block_after_a_one_byte_prompt_equals_recompute():
    """Cut blocks leave fewer committed bytes than the next merged clean pass covers: it redoes older ones."""
    model, ids = make_model(sharpen_head=6.0), random_ids(1, 1, seed=0)
    kw = dict(first_byte_from_ar=True, confidence_threshold=0.5)
    out = greedy(model, ids, 16, decoding="diffusion", unmasking_fallback="end_block", return_dict_in_generate=True, **kw)
    assert out.cycles.item() > 16 // 4, "blocks were cut"
    torch.testing.assert_close(out.sequences, reference_diffusion(model, ids, 16, 4, 0.5, fallback="end_block",
                                                                  first_byte_from_ar=True), rtol=0, atol=0)


@pytest.mark.parametrize("unmasking", ["confidence", "entropy_bound", "one_step"])
def test_diffusion_fills_blocks_and_counts(unmasking):
    model = make_model(sharpen_head=12.0)
    ids = random_ids(2, 9, seed=9)
    out = greedy(model, ids, 24, decoding="diffusion", unmasking=unmasking, return_dict_in_generate=True)
    new = out.sequences[:, 9:]
    blocks = 24 // 4
    assert new.shape == (2, 24) and not torch.isin(new, torch.tensor(SPECIAL)).any(), "every block filled"
    assert out.global_calls.tolist() == [blocks, blocks], "one global call per block"
    assert (out.decoder_calls <= 24).all() and (out.decoder_calls >= blocks).all()
    if unmasking == "one_step":
        assert out.decoder_calls.tolist() == [blocks, blocks]


def test_diffusion_needs_a_blt_d_model():
    plain = make_model(diffusion_block_size=0)
    ids = random_ids(1, 5)
    assert plain.generation_config.decoding == "autoregressive"
    with pytest.raises(ValueError, match="BLT-D objective"):
        plain.generate(ids, decoding="diffusion")
    assert plain.generate(ids, decoding="diffusion", force_diffusion=True, max_new_tokens=4).shape == (1, 9)


def test_encoder_block_input_verify_equals_ar_and_padding_is_exact():
    model = make_model(sharpen_head=6.0, diffusion_block_input="encoder")
    ids = random_ids(2, 11, seed=7)
    dv = greedy(model, ids, 16, decoding="diffusion_verify", unmasking="confidence", confidence_threshold=0.3)
    torch.testing.assert_close(dv, greedy(model, ids, 16), rtol=0, atol=0)
    a = random_ids(1, 7, seed=10)
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), a], 1)
    mask = (padded != 0).long()
    out = greedy(model, padded, 12, attention_mask=mask, decoding="diffusion")
    torch.testing.assert_close(out[:, 5:], greedy(model, a, 12, decoding="diffusion"), rtol=0, atol=0)


# ----------------------------------------------------------------------------- batches, stopping, options


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_left_padded_batch_equals_rows_alone(model, decoding):
    a, b = random_ids(1, 7, seed=10), random_ids(1, 15, seed=11)
    batch = torch.cat([torch.cat([torch.zeros(1, 8, dtype=torch.long), a], 1), b])
    attention_mask = torch.ones_like(batch)
    attention_mask[0, :8] = 0
    out = greedy(model, batch, 12, attention_mask=attention_mask, **fast(decoding))
    torch.testing.assert_close(out[0, 8:], greedy(model, a, 12, **fast(decoding))[0])
    torch.testing.assert_close(out[1], greedy(model, b, 12, **fast(decoding))[0])


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_eos_stops_each_row(model, decoding):
    ids = random_ids(2, 9, seed=12)
    free = greedy(model, ids, 16, **fast(decoding))[:, 9:]
    # Pick as "EOS" a byte row 0 emits at step >= 2 and row 1 never emits: only row 0 must stop.
    candidates = [int(t) for t in free[0, 2:] if int(t) not in free[1].tolist()]
    eos = candidates[0]
    stop = free[0].tolist().index(eos) + 1
    out = model.generate(ids, max_new_tokens=16, eos_token_id=eos, do_sample=False, **fast(decoding))[:, 9:]
    assert out[0, :stop].tolist() == free[0, :stop].tolist() and (out[0, stop:] == 0).all()
    assert out[1].tolist() == free[1].tolist()


def test_stop_strings_and_all_rows_stopping_trims_output(model):
    ids = random_ids(1, 9, seed=13)
    free = greedy(model, ids, 20)[0, 9:].tolist()
    ascii_bytes = [t for t in free[1:] if 4 + 32 <= t < 4 + 127]  # a generated byte that is a 1-char string
    if not ascii_bytes:
        pytest.skip("no ASCII byte generated")
    stop = free.index(ascii_bytes[0], 1) + 1
    out = greedy(model, ids, 20, stop_strings=[chr(ascii_bytes[0] - 4)], tokenizer=object())[0, 9:]
    assert out.tolist() == free[:stop], "stops right after the stop string; the batch is trimmed"


def test_streamer_gets_prompt_then_committed_chunks(model):
    class Recorder:
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.tolist())

        def end(self):
            self.ended = True

    ids = random_ids(1, 6, seed=14)
    for decoding in ("autoregressive", "self_speculation", "diffusion"):
        rec = Recorder()
        out = greedy(model, ids, 12, decoding=decoding, streamer=rec)
        assert rec.chunks[0] == ids.tolist() and rec.ended
        assert sum(rec.chunks[1:], []) == out[0, 6:].tolist()
    with pytest.raises(ValueError, match=r"streamer= streams one sequence; got 2 prompt row\(s\)"):
        greedy(model, random_ids(2, 6), 4, streamer=Recorder())
    with pytest.raises(ValueError, match="num_return_sequences=2"):
        model.generate(ids, max_new_tokens=4, do_sample=True, num_return_sequences=2, streamer=Recorder())


def test_sampling_is_seeded_and_valid(model):
    ids = random_ids(2, 6, seed=15)
    for decoding in ("autoregressive", "self_speculation", "diffusion", "diffusion_verify"):
        torch.manual_seed(1)
        a = model.generate(ids, max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, **fast(decoding))
        torch.manual_seed(1)
        b = model.generate(ids, max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, **fast(decoding))
        assert torch.equal(a, b) and a.shape[1] <= 14
        assert not torch.isin(a[:, 6:], torch.tensor([1, 3])).any()


@pytest.mark.parametrize("kwargs,message", [
    (dict(decoding="beam"), "`decoding` must be one of"),
    (dict(block_size=0), "`block_size` must be >= 1"),
    (dict(block_size=10**8), r"block_size must be between 1 and the model's position range \(4096"),
    (dict(draft_length=10**8), "draft_length must be between 1"),
    (dict(unmasking_fallback="random"), "`unmasking_fallback` must be one of"),
    (dict(confidence_threshold=0.0), r"`confidence_threshold` must be in \(0, 1\]"),
    (dict(confidence_threshold=1.5), r"`confidence_threshold` must be in \(0, 1\]"),
    (dict(entropy_bound=-1.0), "`entropy_bound` must be > 0"),
    (dict(unmasking="random"), "`unmasking` must be one of"),
    (dict(draft_length=0), "`draft_length` must be >= 1"),
    (dict(max_new_tokens=10**6), "longer than the model allows"),
])
def test_invalid_options_raise(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate(random_ids(1, 5), **kwargs)


def test_invalid_inputs_raise(model):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match="left padding"):
        model.generate(torch.tensor([[1, 5, 0]]), attention_mask=torch.tensor([[1, 1, 0]]))


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion"])
def test_padding_without_a_mask_is_inferred_from_pad_ids(model, decoding):
    """As transformers' generate(): no attention_mask and PAD ids in input_ids -> PAD is padding, not text."""
    ids = random_ids(2, 9, seed=3)
    ids[0, :4] = model.config.pad_token_id
    mask = (ids != model.config.pad_token_id).long()
    torch.testing.assert_close(greedy(model, ids, 8, **fast(decoding)),
                               greedy(model, ids, 8, attention_mask=mask, **fast(decoding)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="left padding"):  # right padding is still refused, mask or not
        model.generate(torch.tensor([[1, 5, 0]]), max_new_tokens=2)
    with pytest.raises(ValueError, match="row 1 holds only PAD ids"):
        model.generate(torch.tensor([[1, 5, 6], [0, 0, 0]]), max_new_tokens=2)


BAD_INPUTS = [  # (input_ids, attention_mask, message)
    (torch.tensor([[1.0, 5.0]]), None, r"input_ids must hold integer byte ids, got a torch.float32 tensor of shape \(1, 2\)"),
    (torch.tensor([[True, False]]), None, "input_ids must hold integer byte ids, got a torch.bool"),
    ([[1, 5, 6]], None, "input_ids must be a torch.Tensor .* got a list"),
    (np.array([[1, 5, 6]]), None, "input_ids must be a torch.Tensor .* got a ndarray"),
    (torch.zeros(1, 0, dtype=torch.long), None, r"at least one byte, got a torch.int64 tensor of shape \(1, 0\)"),
    (torch.tensor([1, 5, 6]), None, r"shape \(batch, length\)"),
    (torch.tensor([[1, 5, 6]]), torch.ones(1, 2, dtype=torch.long), r"attention_mask has shape \(1, 2\) but input_ids"),
    (torch.tensor([[1, 5, 6]]), torch.ones(2, 3, dtype=torch.long), r"attention_mask has shape \(2, 3\)"),
    (torch.tensor([[1, 5, 6]]), torch.ones(1, 8, dtype=torch.long), r"attention_mask has shape \(1, 8\)"),
    (torch.tensor([[1, 5, 6]]), torch.zeros(1, 3, dtype=torch.long), "attention_mask row 0 is all zeros"),
    (torch.tensor([[1, 5, 6]]), torch.full((1, 3), 2), "attention_mask must hold 0"),
    (torch.tensor([[1, 5, 6]]), [[1, 1, 1]], "attention_mask must be a torch.Tensor"),
]


@pytest.mark.parametrize("ids,mask,message", BAD_INPUTS)
@pytest.mark.parametrize("entry", ["generate", "forward"])
def test_bad_inputs_get_a_named_value_error(model, ids, mask, message, entry):
    with pytest.raises(ValueError, match=message):
        model.generate(ids, attention_mask=mask, max_new_tokens=2) if entry == "generate" else model(ids, mask)


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_int32_inputs_work_as_int64(model, decoding):
    ids = random_ids(2, 9, seed=3)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    out64 = greedy(model, ids, 8, attention_mask=mask, **fast(decoding))
    out32 = greedy(model, ids.int(), 8, attention_mask=mask.int(), **fast(decoding))
    torch.testing.assert_close(out32.long(), out64, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model(ids.int(), labels=ids.int(), diffusion_t=0.5).loss_clean,
                                   model(ids, labels=ids, diffusion_t=0.5).loss_clean)


def test_work_is_bounded_by_the_bytes_asked_for(model):
    ids = random_ids(1, 9, seed=4)
    ar = greedy(model, ids, 16)
    spec = greedy(model, ids, 16, decoding="self_speculation", draft_length=2000, return_dict_in_generate=True)
    torch.testing.assert_close(spec.sequences, ar, rtol=0, atol=0)
    # drafts never run past the bytes still needed: at most 15 + 14 + ... drafted bytes (random weights
    # reject almost every draft), exactly what draft_length = 16 costs
    assert spec.drafted_bytes.item() <= 15 * 16 // 2
    short = greedy(model, ids, 16, decoding="self_speculation", draft_length=16, return_dict_in_generate=True)
    assert spec.decoder_calls.item() == short.decoder_calls.item()
    dv = greedy(model, ids, 16, decoding="diffusion_verify", block_size=1000, unmasking="one_step",
                return_dict_in_generate=True)
    torch.testing.assert_close(dv.sequences, ar, rtol=0, atol=0)
    assert dv.drafted_bytes.item() <= 15 * 16 // 2
    assert greedy(model, ids, 16, decoding="diffusion", block_size=4000).shape == (1, 25)


def test_generation_config_defaults_and_overrides(model):
    ids = random_ids(1, 5)
    assert model.generation_config.decoding == "diffusion" and model.generation_config.block_size == 4
    from transformers import GenerationConfig

    gc = GenerationConfig(max_new_tokens=6, decoding="autoregressive", do_sample=False, eos_token_id=None)
    assert torch.equal(model.generate(ids, generation_config=gc), greedy(model, ids, 6))
    with pytest.raises(ValueError, match="`max_new_tokens` must be greater than 0"):  # as transformers
        model.generate(ids, max_new_tokens=0)
    assert model.generate(ids, max_length=5).shape == (1, 5)  # a max_length the prompt already fills
    with pytest.raises(ValueError, match=r"max_length=3 is shorter than the prompt \(5 bytes\)"):
        model.generate(ids, max_length=3)


# ----------------------------------------------------------------------------- generate() arguments


def test_unknown_and_unsupported_arguments_raise_like_transformers(model):
    from transformers import GenerationConfig, LogitsProcessorList, TopKLogitsWarper

    ids = random_ids(1, 5)
    with pytest.raises(ValueError, match=r"model_kwargs` are not used by the model: \['max_new_token'\]"):
        model.generate(ids, max_new_token=5)
    for name, value in [("num_beams", 2), ("max_time", 3.0), ("renormalize_logits", True), ("typical_p", 0.5)]:
        with pytest.raises(ValueError, match=rf"`{name}=.*` is not supported by blt_hf's decoding='diffusion'"):
            model.generate(ids, max_new_tokens=4, **{name: value})
    for name in ("output_scores", "output_logits"):
        for decoding in ("diffusion", "self_speculation", "diffusion_verify"):
            with pytest.raises(ValueError, match=rf"`{name}=True` is supported by decoding='autoregressive' only"):
                model.generate(ids, max_new_tokens=4, decoding=decoding, **{name: True})
    for name, value in [("min_new_tokens", 3), ("repetition_penalty", 1.2), ("no_repeat_ngram_size", 2),
                        ("bad_words_ids", [[5]]), ("logits_processor", LogitsProcessorList([TopKLogitsWarper(5)]))]:
        with pytest.raises(ValueError, match=rf"`{name}` is not supported by decoding='diffusion'"):
            model.generate(ids, max_new_tokens=4, decoding="diffusion", **{name: value})
    with pytest.raises(ValueError, match="is not supported by blt_hf's decoding='autoregressive'"):
        model.generate(ids, generation_config=GenerationConfig(num_beams=3, decoding="autoregressive"))
    with pytest.raises(ValueError, match="Greedy methods .*without beam search do not support `num_return_sequences`"):
        model.generate(ids, max_new_tokens=4, do_sample=False, num_return_sequences=2)
    with pytest.raises(TypeError, match="`max_new_tokens` must be an integer, got 1.5"):
        model.generate(ids, max_new_tokens=1.5)


def test_explicit_generation_config_max_length_is_honoured(model):
    from transformers import GenerationConfig

    ids = random_ids(1, 5)
    out = model.generate(ids, generation_config=GenerationConfig(max_length=20, eos_token_id=None))
    assert out.shape == (1, 20)


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_stopping_criteria_end_each_row(model, decoding):
    from transformers import StoppingCriteria, StoppingCriteriaList

    ids = random_ids(1, 6, seed=21)
    free = greedy(model, ids, 24, **fast(decoding))[0, 6:]
    target = int(free[5])  # stop once this byte has been produced (as lm-eval's stop sequences do)

    class StopAt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return (input_ids[:, 6:] == target).any(-1)

    out = greedy(model, ids, 24, stopping_criteria=StoppingCriteriaList([StopAt()]), **fast(decoding))[0, 6:]
    first = free.tolist().index(target)
    assert out.tolist() == free[: len(out)].tolist() and len(out) > first  # a prefix that reached the byte
    if decoding == "autoregressive":
        assert len(out) == first + 1  # byte by byte: stops right after it


class StopAfterBytes:
    """Batch-aware like lm-eval's MultiTokenEOSCriteria: built for a batch size, keeps a done flag per
    row, and looks only at the tail of each row."""

    def __init__(self, batch_size, stops):
        self.done, self.stops = [False] * batch_size, stops

    def __call__(self, input_ids, scores, **kwargs):
        for i, stop in enumerate(self.stops):
            self.done[i] = self.done[i] or int(input_ids[i, -1]) == stop
        return torch.tensor(self.done)


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_batch_aware_stopping_criteria_see_the_whole_batch(model, decoding):
    from transformers import StoppingCriteriaList

    ids = random_ids(2, 6, seed=21)
    free = greedy(model, ids, 24, **fast(decoding))[:, 6:]
    stops = [int(free[0, 4]), int(free[1, 9])]
    out = greedy(model, ids, 24, stopping_criteria=StoppingCriteriaList([StopAfterBytes(2, stops)]),
                 **fast(decoding))[:, 6:]
    for row, stop in enumerate(stops):
        got = [b for b in out[row].tolist() if b != 0]
        first = free[row].tolist().index(stop)
        assert got == free[row, : len(got)].tolist() and len(got) > first
        if decoding == "autoregressive":
            assert len(got) == first + 1


def test_block_size_other_than_trained_warns(model, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="blt_hf.generation_fast_blt"):
        greedy(model, random_ids(1, 5), 4, decoding="diffusion", block_size=4)
        assert "differs from the block size" not in caplog.text
        greedy(model, random_ids(1, 5), 4, decoding="diffusion", block_size=2)
    assert "block_size=2 differs from the block size this model was trained with (4)" in caplog.text


class PenaliseOdd:
    """A custom logits processor: odd byte ids lose 3 nats (changes the greedy path on random weights)."""

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, 1::2] -= 3.0
        return scores


def reference_processed_ar(model, ids, n, processors):
    """Recompute everything for every byte; apply the processors to the full sequence so far."""
    seq = ids
    with torch.no_grad():
        for _ in range(n):
            logits = model(seq).logits[:, -1].float()
            logits[:, SPECIAL] = float("-inf")
            seq = torch.cat([seq, processors(seq, logits).argmax(-1, keepdim=True)], 1)
    return seq


PROCESSOR_CASES = {  # generate kwargs, and the transformers processor they mean (given the prompt length)
    "repetition_penalty": (dict(repetition_penalty=3.0), lambda n: RepetitionPenaltyLogitsProcessor(3.0)),
    "no_repeat_ngram_size": (dict(no_repeat_ngram_size=1), lambda n: NoRepeatNGramLogitsProcessor(1)),
    "bad_words_ids": (dict(bad_words_ids=[[163], [98, 106]]),
                      lambda n: NoBadWordsLogitsProcessor([[163], [98, 106]], [2])),
    "min_new_tokens": (dict(min_new_tokens=10, eos_token_id=2), lambda n: MinNewTokensLengthLogitsProcessor(n, 10, [2])),
    "logits_processor": (dict(logits_processor=LogitsProcessorList([PenaliseOdd()])), lambda n: PenaliseOdd()),
}


@pytest.mark.parametrize("case", list(PROCESSOR_CASES))
@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion_verify"])
def test_logits_processors_equal_a_recompute_reference(model, case, decoding):
    ids = random_ids(1, 7, seed=32)
    kwargs, processor = PROCESSOR_CASES[case]
    out = model.generate(ids, max_new_tokens=16, do_sample=False, **fast(decoding), **{"eos_token_id": None, **kwargs})
    ref = reference_processed_ar(model, ids, 16, LogitsProcessorList([processor(ids.shape[1])]))
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    if case != "min_new_tokens":  # the processors really change the greedy path
        assert not torch.equal(ref, reference_ar(model, ids, 16))


def test_output_scores_and_logits_equal_a_recompute_reference(model):
    ids, n = random_ids(1, 7, seed=32), 12
    out = model.generate(ids, max_new_tokens=n, decoding="autoregressive", do_sample=False, eos_token_id=None,
                         repetition_penalty=3.0, output_scores=True, output_logits=True)
    assert len(out.scores) == len(out.logits) == n and out.sequences.shape == (1, 7 + n)
    processor, seq = RepetitionPenaltyLogitsProcessor(3.0), ids
    with torch.no_grad():
        for step in range(n):
            logits = model(seq).logits[:, -1].float()
            logits[:, SPECIAL] = float("-inf")
            scores = processor(seq, logits.clone())
            torch.testing.assert_close(out.logits[step], logits, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.scores[step], scores, atol=1e-4, rtol=1e-4)
            seq = torch.cat([seq, scores.argmax(-1, keepdim=True)], 1)
    torch.testing.assert_close(out.sequences, seq, rtol=0, atol=0)


def test_sampled_output_scores_are_the_warped_distribution(model):
    from blt_hf.sampling import process_logits

    torch.manual_seed(0)
    out = model.generate(random_ids(2, 6), max_new_tokens=8, decoding="autoregressive", do_sample=True,
                         temperature=0.7, top_k=5, eos_token_id=None, output_scores=True, output_logits=True)
    assert out.sequences.shape == (2, 14)
    for step, (scores, logits) in enumerate(zip(out.scores, out.logits)):
        torch.testing.assert_close(scores, process_logits(logits, 0.7, 5, 1.0))
        assert (scores.isfinite().sum(-1) == 5).all()
        assert scores.gather(-1, out.sequences[:, 6 + step, None]).isfinite().all()  # chosen from these


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion", "self_speculation", "diffusion_verify"])
def test_counters_as_we_run_and_as_the_paper_counts(model, decoding):
    from blt_hf.cost import bandwidth_gb, generation_cost, param_counts

    ids, n = random_ids(2, 6, seed=5), 12
    out = greedy(model, ids, n, return_dict_in_generate=True, **fast(decoding))
    cycles = out.cycles
    assert (out.paper_decoder_calls == out.decoder_calls).all()  # decoder passes: the same count
    if decoding == "autoregressive":
        assert (cycles == n).all() and (out.encoder_calls == n).all()  # prompt + every byte but the last
        assert torch.equal(out.paper_global_calls, out.global_calls)
    elif decoding == "diffusion":
        blocks = -(-n // 4)
        assert (cycles == blocks).all() and (out.global_calls == blocks).all() and (out.encoder_calls == blocks).all()
        assert torch.equal(out.paper_global_calls, cycles)
    else:  # the prompt's pass, then a draft and a verification pass per cycle
        assert torch.equal(out.paper_global_calls, 2 * cycles - 1)
        assert (out.paper_global_calls >= out.global_calls).all()
        # 1 byte from the prompt's pass, then accepted + 1 per cycle (drafts never overshoot the budget)
        assert torch.equal(cycles + out.accepted_bytes, torch.full_like(cycles, n))
    cost = generation_cost(model, out, decoding, 2 * n)
    params = param_counts(model)
    assert cost["paper_est_bandwidth_gb"] == pytest.approx(
        bandwidth_gb(params, int(out.paper_decoder_calls.sum()), int(out.paper_global_calls.sum())))


def test_diffusion_verify_drafts_block_size_new_bytes_after_the_pending_byte(model):
    class Drafts:  # a streamer that records the width of every denoised draft
        def __init__(self):
            self.widths = []

        def put(self, value):
            pass

        def end(self):
            pass

        def put_draft(self, value, masked, unmasked):
            self.widths.append(value.shape[1])

    rec = Drafts()
    greedy(model, random_ids(1, 6, seed=2), 40, decoding="diffusion_verify", unmasking="one_step", streamer=rec)
    assert rec.widths and rec.widths[0] == 4 + 1  # the pending byte, known, then B = 4 masked positions
    assert max(rec.widths) == 5
