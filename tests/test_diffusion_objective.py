"""The BLT-D objective: block construction, weighting, leak-freedom, documents, learning."""

import pytest
import torch
from conftest import random_ids, sharpen_patcher, tiny_blt_fields

from blt_hf import FastBltConfig, FastBltForCausalLM, diffusion_objective, modeling_fast_blt

MASK = 3


def model_with(block_size=4, **fields):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=block_size, **fields)))
    if model.model.patcher is not None:
        sharpen_patcher(model, random_ids(1, 64))
    return model.train()  # the objective's forward (eval mode returns the next-byte loss); dropout is 0


@pytest.fixture
def fixed_noise(monkeypatch):
    """Replace the random noise with a chosen mask probability applied deterministically."""

    def install(t_value, masked_fraction=None):
        def noise(blocks, mask_id, t=None):
            B = blocks.bytes.shape[0]
            t = torch.full((B,), t_value)
            masked = blocks.targets >= 0
            if masked_fraction is not None:  # mask a fixed prefix of each block
                keep = int(round(blocks.bytes.shape[-1] * masked_fraction))
                masked = masked & (torch.arange(blocks.bytes.shape[-1]) < keep)
            return torch.where(masked | (blocks.targets < 0), mask_id, blocks.bytes), masked, t

        monkeypatch.setattr(modeling_fast_blt, "noise", noise)  # where the objective calls it

    return install


def test_blocks_at_every_patch_start_and_document_ends():
    model = model_with(block_size=4, patch_in_forward=False)  # every byte is a patch
    ids = torch.tensor([[1, 10, 11, 12, 2, 1, 20, 21]])  # two packed documents
    out = model(ids, labels=ids)
    targets = out.block_targets[0]
    # no block at either BOS; blocks start at every other byte
    assert targets.shape[0] == 6
    assert targets[0].tolist() == [10, 11, 12, 2]
    assert targets[2].tolist() == [12, 2, -100, -100]  # stops at the end of the document: no loss
    assert targets[3].tolist() == [2, -100, -100, -100]
    assert targets[5].tolist() == [21, -100, -100, -100]  # past the end of the sequence


def test_label_padding_is_excluded():
    model = model_with(block_size=4, patch_in_forward=False)
    ids = torch.tensor([[1, 10, 11, 12, 13, 0, 0]])
    labels = ids.masked_fill(ids == 0, -100)
    out = model(ids, attention_mask=(ids != 0).long(), labels=labels)
    assert (out.block_targets[out.block_targets >= 0] >= 4).all()
    assert out.block_targets[0, -1].tolist() == [13, -100, -100, -100]


@pytest.mark.parametrize("t", [1e-3, 0.5, 1.0])
def test_mask_loss_is_weighted_by_one_over_t(fixed_noise, t):
    fixed_noise(t, masked_fraction=0.5)
    model = model_with()
    ids = random_ids(2, 40, seed=3)
    out = model(ids, labels=ids)
    m, targets = out.block_masked, out.block_targets
    ce = torch.nn.functional.cross_entropy(out.block_logits[m], targets[m], reduction="sum")
    expected = ce / t / (targets >= 0).sum()
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss_mask, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, out.loss_clean + out.loss_mask)


def test_clean_loss_equals_plain_blt_loss():
    model = model_with()
    ids = random_ids(2, 40, seed=4)
    with torch.no_grad():
        diffusion = model(ids, labels=ids)
        model.config.diffusion_block_size = 0
        plain = model(ids, labels=ids)
    torch.testing.assert_close(diffusion.loss_clean, plain.loss)
    torch.testing.assert_close(diffusion.logits, plain.logits, atol=1e-5, rtol=0)
    assert plain.loss_mask is None


def test_seeded_noise_is_reproducible():
    model = model_with()
    ids = random_ids(2, 40, seed=5)
    torch.manual_seed(7)
    a = model(ids, labels=ids).loss
    torch.manual_seed(7)
    b = model(ids, labels=ids).loss
    torch.manual_seed(8)
    c = model(ids, labels=ids).loss
    assert a == b and a != c


@pytest.mark.parametrize("block_input", ["bytes", "encoder"])
def test_changing_bytes_at_or_after_a_block_start_leaves_its_predictions(fixed_noise, block_input):
    fixed_noise(1.0)  # every block byte masked: predictions depend on context only
    model = model_with(block_size=4, diffusion_block_input=block_input)
    ids = random_ids(1, 48, seed=6)
    with torch.no_grad():
        base = model(ids, labels=ids)  # noise is fixed by the fixture
        starts = base.block_targets  # not needed beyond shape; recompute starts from patching
        ctx = model.model.contextualize(ids, torch.ones_like(ids, dtype=torch.bool))
        opens = ctx.patching.starts & (ctx.position_ids > 0)
        block_starts = opens[0].nonzero().flatten()
        for j in (10, 25, 40):
            changed = ids.clone()
            changed[:, j:] = (changed[:, j:] * 7 + 3) % 250 + 5
            other = model(changed, labels=changed)
            keep = block_starts <= j  # blocks that start at or before the change
            n = int(keep.sum())
            torch.testing.assert_close(other.block_logits[0, :n], base.block_logits[0, :n], atol=1e-5, rtol=0)
            assert not torch.allclose(other.logits[:, j:], base.logits[:, j:])  # the change is visible later
    assert starts.shape[1] == len(block_starts)


def test_packed_documents_do_not_see_each_other():
    model = model_with(block_size=4)
    doc_a, doc_b = random_ids(1, 30, seed=7), random_ids(1, 25, seed=8)
    with torch.no_grad():
        packed = model(torch.cat([doc_a, doc_b], 1)).logits
        alone = model(doc_b).logits
    torch.testing.assert_close(packed[:, 30:], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("block_input", ["bytes", "encoder"])
def test_packed_blocks_do_not_see_the_previous_document(fixed_noise, block_input):
    fixed_noise(1.0)
    model = model_with(block_size=4, diffusion_block_input=block_input)
    doc_a, doc_b = random_ids(1, 30, seed=7), random_ids(1, 25, seed=8)
    with torch.no_grad():
        packed = model(torch.cat([doc_a, doc_b], 1), labels=torch.cat([doc_a, doc_b], 1))
        alone = model(doc_b, labels=doc_b)
        first = model(doc_a, labels=doc_a)
    nb_a, nb_b = first.block_logits.shape[1], alone.block_logits.shape[1]
    torch.testing.assert_close(packed.block_logits[:, nb_a:nb_a + nb_b], alone.block_logits, atol=1e-5, rtol=0)


def test_tiny_model_overfits_a_text_with_both_terms():
    torch.manual_seed(0)
    model = model_with(block_size=4).train()
    text = b"the quick brown fox jumps over the lazy dog. " * 2
    ids = torch.tensor([[1] + [b + 4 for b in text]])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for step in range(120):
        out = model(ids.expand(4, -1), labels=ids.expand(4, -1))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        history.append((out.loss_clean.item(), out.loss_mask.item()))
    first = torch.tensor(history[:10]).mean(0)
    last = torch.tensor(history[-10:]).mean(0)
    assert (last < 0.3 * first).all(), (first, last)


@pytest.mark.parametrize("window", [None, 6])
def test_split_block_attention_equals_dense_masked_attention(window):
    """The fast attention over [clean; blocks] equals eager attention under the dense named mask."""
    from blt_hf import masks
    from blt_hf.modeling_fast_blt import FastBltSelfAttention, rotary_cos_sin

    model = model_with(block_size=3, patch_in_forward=False)
    ids = torch.tensor([[1, 10, 11, 12, 2, 1, 20, 21, 22], [1, 30, 31, 32, 33, 34, 35, 0, 0]])
    valid = ids != 0
    valid[0] = True
    labels = ids.masked_fill(~valid, -100)
    ctx = model.model.contextualize(ids, valid.bool())
    blocks = diffusion_objective.cut_blocks(ids, labels, ctx, 3, MASK)
    s = diffusion_objective.stream(ctx, blocks)
    N, (nb, Bs) = ids.shape[1], blocks.bytes.shape[1:]
    attn: FastBltSelfAttention = model.model.local_decoder.layers[0].self_attn
    h = torch.randn(2, s["pos"].shape[1], 32)
    rotary = rotary_cos_sin(s["pos"], attn.head_dim, 500000.0, h.dtype)
    split = masks.additive(masks.BlockDiffusionMask.from_stream(s, N, nb, Bs, window), h.dtype)
    dense = masks.additive(masks.block_diffusion_mask(s, s, window), h.dtype)
    fast = attn(h, rotary, split)
    model.config.decoder_config._attn_implementation = "eager"
    reference = attn(h, rotary, dense)
    live = s["valid"]  # padding queries read nothing meaningful in either path
    torch.testing.assert_close(fast[live], reference[live], atol=1e-5, rtol=1e-5)


def test_fixed_noise_level_for_evaluation():
    model = model_with()
    ids = random_ids(2, 40, seed=9)
    with torch.no_grad():
        full = model(ids, labels=ids, diffusion_t=1.0)
    real = full.block_targets >= 0
    assert torch.equal(full.block_masked, real)  # t = 1 masks every real block byte


def test_diffusion_loss_weight_scales_only_the_masked_term():
    ids = random_ids(2, 40, seed=9)
    plain, heavy = model_with(), model_with(diffusion_loss_weight=2.5)  # same weights (same seed)
    with torch.no_grad():
        torch.manual_seed(0)
        ref = plain(ids, labels=ids, diffusion_t=0.5)
        torch.manual_seed(0)
        out = heavy(ids, labels=ids, diffusion_t=0.5)
    assert torch.equal(out.loss_clean, ref.loss_clean)
    torch.testing.assert_close(out.loss_mask, 2.5 * ref.loss_mask)
    torch.testing.assert_close(out.loss, out.loss_clean + out.loss_mask)


def test_self_distillation_softens_the_target_toward_the_next_byte_head():
    ids = random_ids(2, 40, seed=9)
    plain, distilled = model_with(), model_with(diffusion_distill_weight=0.25)  # same weights (same seed)
    torch.manual_seed(0)
    ref = plain(ids, labels=ids, diffusion_t=0.5)
    torch.manual_seed(0)
    out = distilled(ids, labels=ids, diffusion_t=0.5)
    assert torch.equal(out.loss_clean, ref.loss_clean) and torch.equal(out.block_masked, ref.block_masked)
    # Slow reference: a loop over masked block bytes, the teacher read from the clean stream by hand and
    # held constant (detached), so the two must agree in value and in every gradient.
    ctx = plain.model.contextualize(ids, torch.ones_like(ids, dtype=torch.bool))
    blocks = diffusion_objective.cut_blocks(ids, ids, ctx, 4, MASK)
    total = torch.zeros(())
    for b, i, j in out.block_masked.nonzero().tolist():
        student = out.block_logits[b, i, j].float().log_softmax(-1)
        teacher = out.logits[b, blocks.start[b, i] + j - 1].detach().softmax(-1)  # predicts byte start + j
        target = int(out.block_targets[b, i, j])
        assert target == int(ids[b, blocks.start[b, i] + j])
        total = total + (0.75 * -student[target] + 0.25 * -(teacher * student).sum()) / 0.5
    reference = total / (out.block_targets >= 0).sum()
    torch.testing.assert_close(out.loss_mask, reference)
    params = [p for p in distilled.parameters() if p.requires_grad]
    got = torch.autograd.grad(out.loss_mask, params, retain_graph=True, allow_unused=True)
    want = torch.autograd.grad(reference, params, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w)
