"""The model against transformers' BltForCausalLM on the same weights, plus exact properties."""

import pytest
import torch
from conftest import hf_pair, random_ids, tiny_blt_fields

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.inputs import byte_ids

PARITY_CASES = {
    "k2_hash345_enc_last": dict(),
    "k1_hash34_enc_all": dict(cross_attn_k=1, hash_sizes=(3, 4), enc_layers=2, enc_all=True),
    "k3_hash3to8": dict(cross_attn_k=3, hash_sizes=(3, 4, 5, 6, 7, 8), global_hidden=48),
    "k2_max_patch_3": dict(max_patch_length=3),
    "k2_projection": dict(global_hidden=96),  # k * He != Hg: global token_embedding_projection exists
}


@pytest.mark.parametrize("case", PARITY_CASES)
def test_logits_match_transformers_blt(tmp_path, case):
    ref, ours = hf_pair(tmp_path, **PARITY_CASES[case])
    ids = random_ids(1, 80, seed=1)
    with torch.no_grad():
        _, patch_lengths, _ = ref.model.patcher(ids, patch_size=4, threshold=ref.config.patching_threshold,
                                                max_patch_length=ref.config.max_patch_length)
        expected = ref(ids, use_cache=False).logits
        got = ours(ids).logits
    lengths = patch_lengths[patch_lengths > 0]
    assert len(lengths) > 4 and lengths.max() > 1, "patching must produce several multi-byte patches"
    ids, valid = byte_ids(ours.config, ids)
    assert ours.model.patch(ids, valid, (valid.long().cumsum(-1) - 1)).num_patches == len(lengths)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_batch_matches_transformers_rows(tmp_path):
    ref, ours = hf_pair(tmp_path)
    ids = random_ids(3, 50, seed=2)
    with torch.no_grad():
        got = ours(ids).logits
        for row in range(3):
            torch.testing.assert_close(got[row], ref(ids[row:row + 1], use_cache=False).logits[0], atol=1e-4, rtol=0)


def test_loads_transformers_checkpoint_directory(tmp_path):
    ref, _ = hf_pair(tmp_path)
    ref.save_pretrained(tmp_path / "hf")
    ours = FastBltForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert ours.config.model_type == "fast_blt" and ours.config.mask_token_id == 3
    ids = random_ids(1, 60, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids, use_cache=False).logits, atol=1e-4, rtol=0)


def test_causality(tiny_model):
    ids = random_ids(2, 60, seed=4)
    with torch.no_grad():
        base = tiny_model(ids).logits
        for j in (1, 7, 30, 59):
            changed = ids.clone()
            changed[:, j:] = random_ids(2, 60 - j, seed=10 + j) % 250 + 5
            torch.testing.assert_close(tiny_model(changed).logits[:, :j], base[:, :j], atol=1e-5, rtol=0)


def test_sdpa_equals_eager(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    eager = FastBltForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    sdpa = FastBltForCausalLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    assert eager.config.decoder_config._attn_implementation == "eager"
    ids = random_ids(2, 70, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(ids).logits, eager(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_row_equals_row_alone(tiny_model, side):
    short, long_ = random_ids(1, 30, seed=6), random_ids(1, 45, seed=7)
    pad = torch.zeros(1, 15, dtype=torch.long)
    padded = torch.cat([pad, short], 1) if side == "left" else torch.cat([short, pad], 1)
    mask = (torch.arange(45) >= 15) if side == "left" else (torch.arange(45) < 30)
    batch = torch.cat([padded, long_])
    attention_mask = torch.stack([mask, torch.ones(45, dtype=torch.bool)]).long()
    with torch.no_grad():
        out = tiny_model(batch, attention_mask=attention_mask).logits
        alone = tiny_model(short).logits[0]
    torch.testing.assert_close(out[0][mask], alone, atol=1e-5, rtol=0)


def test_loss_matches_manual_and_num_items(tiny_model):
    ids = random_ids(2, 40, seed=8)
    labels = ids.clone()
    labels[0, 30:] = -100
    out = tiny_model(ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 260)
    targets = labels[:, 1:].reshape(-1)
    manual = torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100)
    torch.testing.assert_close(out.loss, manual)
    n = (targets != -100).sum()
    summed = tiny_model(ids, labels=labels, num_items_in_batch=n * 2).loss
    torch.testing.assert_close(summed, manual / 2)


def test_backward_gradient_checkpointing_and_frozen_patcher(tiny_model):
    ids = random_ids(2, 40, seed=9)
    tiny_model.train()
    loss = tiny_model(ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}
    assert not any(n.startswith("model.patcher") for n in grads), "the entropy patcher must stay frozen"
    assert "model.global_transformer.layers.0.mlp.up_proj.weight" in grads
    tiny_model.zero_grad()
    tiny_model.activation_checkpointing_enable()
    tiny_model(ids, labels=ids).loss.backward()
    for name, g in grads.items():
        torch.testing.assert_close(dict(tiny_model.named_parameters())[name].grad, g, atol=1e-5, rtol=1e-4)


def test_no_split_modules_exist(tiny_model):
    classes = {type(m).__name__ for m in tiny_model.modules()}
    assert set(tiny_model._no_split_modules) <= classes


def test_bad_inputs_give_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="id 300, outside the vocabulary"):
        tiny_model(torch.tensor([[1, 300, 5]]))
    with pytest.raises(ValueError, match="id -1"):
        tiny_model(torch.tensor([[1, -1, 5]]))
    too_long = tiny_model.config.max_bytes + 1
    with pytest.raises(ValueError, match="longer than the specified maximum sequence length for this model"):
        tiny_model(torch.ones(1, too_long, dtype=torch.long))
    with pytest.raises(ValueError, match="inputs_embeds is not supported"):
        tiny_model(None)


def test_byte_patching_mode_matches_transformers(tmp_path):
    """Without a patcher every byte is its own patch (transformers' patch_in_forward=False)."""
    from transformers import BltConfig, BltForCausalLM

    torch.manual_seed(0)
    ref = BltForCausalLM(BltConfig(**tiny_blt_fields(patch_in_forward=False))).eval()
    ours = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(patch_in_forward=False))).eval()
    ours.load_state_dict(ref.state_dict())
    ids = random_ids(1, 30, seed=11)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids, use_cache=False).logits, atol=1e-4, rtol=0)
