"""The decoders and the training step on a CUDA device (skipped without one; benchmarks/gpu_check.sh runs it).

Same exact properties as on the CPU: the cached AR decoder equals a full-forward recompute, BLT-S
and BLT-DV equal AR (fp32 and bf16), and everything stays on the device."""

import pytest
import torch
from conftest import random_ids, sharpen_patcher, tiny_blt_fields

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.generation_config_fast_blt import DECODINGS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cuda_model(dtype):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=4))).eval()
    sharpen_patcher(model, random_ids(1, 64))
    return model.to("cuda", dtype)


def greedy(model, ids, decoding, n=24, **kw):
    extra = {"unmasking": "one_step"} if decoding == "diffusion_verify" else {}
    return model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, decoding=decoding,
                          draft_length=3, **extra, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoders_on_cuda(dtype):
    model, ids = cuda_model(dtype), random_ids(2, 8, seed=6).cuda()
    outs = {d: greedy(model, ids, d) for d in DECODINGS}
    assert all(o.device.type == "cuda" for o in outs.values())
    for decoding in ("self_speculation", "diffusion_verify"):
        torch.testing.assert_close(outs[decoding], outs["autoregressive"], rtol=0, atol=0)
    if dtype == torch.float32:  # the cached decoder against a full forward per byte
        seq = ids
        with torch.no_grad():
            for _ in range(24):
                logits = model(seq).logits[:, -1].float()
                logits[:, [0, 1, 3]] = float("-inf")
                seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
        torch.testing.assert_close(outs["autoregressive"], seq, rtol=0, atol=0)


def test_training_step_on_cuda():
    model = cuda_model(torch.float32).train()
    ids = random_ids(2, 64, seed=4).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and loss.device.type == "cuda"
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("decoding", ["autoregressive", "diffusion"])
def test_static_cache_compiles_by_default_on_cuda_and_equals_eager(decoding):
    """On CUDA a static cache compiles the steps (CompileConfig(): CUDA graphs); same bytes as the dynamic cache,
    eager (disable_compile=True) and compiled."""
    model, ids = cuda_model(torch.float32), random_ids(2, 8, seed=6).cuda()
    eager = greedy(model, ids, decoding)
    static = greedy(model, ids, decoding, cache_implementation="static", max_cache_len=128, disable_compile=True)
    torch._dynamo.reset()
    compiled = greedy(model, ids, decoding, cache_implementation="static", max_cache_len=128)
    again = greedy(model, random_ids(2, 11, seed=7).cuda(), decoding, cache_implementation="static",
                   max_cache_len=128)  # another prompt length: the same graphs, replayed
    torch._dynamo.reset()
    # Two steps, so a failure says which one differs: the static cache itself, or compiling it.
    torch.testing.assert_close(static, eager, rtol=0, atol=0, msg=lambda m: f"static cache, eager: {m}")
    torch.testing.assert_close(compiled, static, rtol=0, atol=0, msg=lambda m: f"static cache, compiled: {m}")
    assert again.shape == (2, 11 + 24)


def test_attention_backward_is_finite_where_cudnn_returns_nan():
    """pytorch/pytorch#196678's own repro (a mask, L % 128 == 64, every row's logsumexp below -88.7; cuDNN's
    backward gives NaN in the query gradient on H100/H200 since torch 2.11) through our attention with a
    backward: cuDNN alone first (skipped where it computes them finite), then as training runs it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from blt_hf.modeling_fast_blt import FastBltSelfAttention, attention

    config = FastBltConfig(**tiny_blt_fields(global_hidden=64, global_config=dict(
        hidden_size=64, num_hidden_layers=1, num_attention_heads=1, intermediate_size=128))).global_config
    module = FastBltSelfAttention(config, 0).cuda().train()
    L, D = 704, 64
    mask = torch.zeros(1, 1, L, L, device="cuda", dtype=torch.bfloat16).masked_fill(
        ~torch.ones(L, L, dtype=torch.bool, device="cuda").tril(), float("-inf"))

    def gradients_finite():
        torch.manual_seed(0)
        q = torch.randn(1, 1, L, D, device="cuda", dtype=torch.bfloat16) * 0.1
        k = torch.randn(1, 1, L, D, device="cuda", dtype=torch.bfloat16) * 0.1
        v = torch.randn(1, 1, L, D, device="cuda", dtype=torch.bfloat16)
        q[..., 0], k[..., 0] = 1.0, -120 * D**0.5  # every logit about -120
        q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
        out = attention(module, q, k, v, mask)
        out.backward(torch.randn_like(out))
        return all(torch.isfinite(t.grad).all() for t in (q, k, v))

    try:
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):  # enabled alone: attention leaves the choice as it is
            cudnn_finite = gradients_finite()
    except RuntimeError:
        pytest.skip("no cuDNN attention for these inputs here")
    if cudnn_finite:
        pytest.skip("this torch / cuDNN computes these gradients finite: nothing to avoid")
    assert gradients_finite()
