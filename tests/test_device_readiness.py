"""GPU readiness without a GPU: no tensor is created without `device=`, and every decoder runs in bf16.

With `torch.device("meta")` as the default device while the model and inputs live on the CPU, any
tensor made without an explicit device lands on meta and the run fails; so a pass here means the
code follows its inputs to whatever device they are on (CUDA included)."""

import pytest
import torch
from conftest import random_ids, sharpen_patcher, tiny_blt_fields

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.generation_config_fast_blt import DECODINGS

pytestmark = pytest.mark.usefixtures("one_thread")
SPEED = {"draft_length": 3}  # short BLT-S drafts; BLT-DV one-step drafts keep random-weight runs short


def make_model(dtype=torch.float32):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=4))).eval()
    sharpen_patcher(model, random_ids(1, 64))
    return model.to(dtype)


@pytest.fixture(scope="module")
def model():
    return make_model()


def generate(model, ids, decoding, n=16, **kw):
    extra = {"unmasking": "one_step"} if decoding == "diffusion_verify" else {}
    return model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, decoding=decoding,
                          **SPEED, **extra, **kw)


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("decoding", DECODINGS)
def test_decoders_create_no_tensor_without_a_device(model, decoding, cache):
    ids = random_ids(2, 7, seed=3)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # left padding takes the masked paths too
    expected = generate(model, ids, decoding, attention_mask=mask)
    with torch.device("meta"):
        out = generate(model, ids, decoding, attention_mask=mask, return_dict_in_generate=True,
                       cache_implementation=cache)
    assert out.sequences.device.type == "cpu"
    torch.testing.assert_close(out.sequences, expected, rtol=0, atol=0)


def test_training_step_creates_no_tensor_without_a_device(model):
    ids = random_ids(2, 40, seed=4)
    train = make_model().train()
    torch.manual_seed(1)
    reference = train(input_ids=ids, labels=ids).loss
    torch.manual_seed(1)
    with torch.device("meta"):
        loss = train(input_ids=ids, labels=ids).loss
        loss.backward()
    assert loss.device.type == "cpu" and torch.isfinite(loss)
    torch.testing.assert_close(loss, reference)
    assert all(p.grad is not None and p.grad.device.type == "cpu" for p in train.model.local_decoder.parameters())


def test_every_decoder_runs_in_bf16_and_speculation_still_equals_ar(capsys):
    ids = random_ids(2, 8, seed=6)
    fp32, bf16 = make_model(), make_model(torch.bfloat16)
    differing, outputs = {}, {}
    for decoding in DECODINGS:
        outputs[decoding] = generate(bf16, ids, decoding, n=24)
        differing[decoding] = int((outputs[decoding] != generate(fp32, ids, decoding, n=24)).sum())
    for decoding in ("self_speculation", "diffusion_verify"):  # exact by construction, in any precision
        torch.testing.assert_close(outputs[decoding], outputs["autoregressive"], rtol=0, atol=0)
    with capsys.disabled():
        print(f"\nbf16 vs fp32, bytes that differ of {ids.numel() // ids.shape[1] * 24}: {differing}")
    assert differing["autoregressive"] < ids.shape[0] * 24 // 2  # bf16 may flip near-ties, not whole outputs
