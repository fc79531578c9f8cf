"""Training stops at the first step whose gradients are not finite, before its optimizer step, and leaves
the step to replay; the replay restores the step's random numbers and names the first module that breaks."""

import json

import pytest
import torch

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.data import Document, pack_documents
from blt_hf import modeling_fast_blt, nonfinite
from blt_hf.nonfinite import NonFiniteGradientError, first_nonfinite, main as replay
from blt_hf.training import FastBltTrainer, collator
from transformers import TrainingArguments

from conftest import random_ids, sharpen_patcher, tiny_blt_fields

TEXT = "def add(a, b):\n    return a + b\n\n" * 40


def tiny_bltd():
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(max_patch_length=8), diffusion_block_size=4))
    sharpen_patcher(model, random_ids(1, 64))
    return model


def poison_gradient(param, at_call: int):
    """The gradient of `param` becomes NaN at its `at_call`-th backward (1-based), as a broken kernel would."""
    calls = []

    def hook(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == at_call else grad
    param.register_hook(hook)


def test_training_stops_before_the_broken_step_and_saves_it(tmp_path):
    model = tiny_bltd()
    poison_gradient(model.model.local_decoder.layers[0].mlp.down_proj.weight, at_call=3)
    args = TrainingArguments(str(tmp_path), max_steps=6, per_device_train_batch_size=4, learning_rate=3e-3,
                             logging_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
                             save_strategy="no")
    data = pack_documents([Document(f"d{i}", TEXT[i:]) for i in range(8)], 64, max_bytes=16 * 64)
    trainer = FastBltTrainer(model, args, train_dataset=data, data_collator=collator())
    with pytest.raises(NonFiniteGradientError, match=r"step 3: .*down_proj\.weight.*python -m blt_hf.nonfinite"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert all(torch.isfinite(p).all() for p in model.parameters()), "the optimizer never took the NaN step"
    saved = tmp_path / "nonfinite-step3"
    summary = json.loads((saved / "nonfinite.json").read_text())
    assert summary["step"] == 3 and summary["parameters_with_nonfinite_gradients"] == [
        "model.local_decoder.layers.0.mlp.down_proj.weight"]
    dumped = FastBltForCausalLM.from_pretrained(saved)
    for (name, p), q in zip(model.named_parameters(), dumped.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)  # the weights the step started from

    # Replayed without the poison: the same noise draw (RNG states restored) gives the step's own loss,
    # and nothing is non-finite.
    report = replay([str(saved)])
    assert report["loss"] == pytest.approx(summary["loss"], rel=1e-5)
    assert report["first_forward"] == report["first_backward"] == report["parameters_with_nonfinite_gradients"] == []


def test_replay_names_the_first_module_that_breaks(tmp_path):
    model = tiny_bltd()
    broken = model.model.local_decoder.layers[1].mlp
    broken.register_forward_hook(lambda module, args, out: out * float("inf"))
    batch = {"input_ids": random_ids(2, 48, seed=3), "cpu_rng_state": torch.random.get_rng_state()}
    report = first_nonfinite(model, batch, "cpu", bf16=False)
    assert report["first_forward"][0] == "model.local_decoder.layers.1.mlp"
    assert report["first_backward"] and report["parameters_with_nonfinite_gradients"]


def test_backward_attention_leaves_cudnn_out_unless_asked(monkeypatch):
    """The guard against cuDNN's attention backward (modeling_fast_blt.attention) keeps the user's own
    choice of backends otherwise: cuDNN alone, or no cuDNN at all, is left as it is."""
    from torch.nn.attention import SDPBackend as B, sdpa_kernel

    backends = modeling_fast_blt.sdpa_backends_for_backward
    assert backends() == [B.FLASH_ATTENTION, B.EFFICIENT_ATTENTION, B.MATH]
    with sdpa_kernel([B.MATH, B.CUDNN_ATTENTION]):
        assert backends() == [B.MATH]
    with sdpa_kernel(B.CUDNN_ATTENTION):
        assert backends() is None
    with sdpa_kernel(B.EFFICIENT_ATTENTION):
        assert backends() is None
    monkeypatch.setattr(modeling_fast_blt, "AVOID_CUDNN_IN_BACKWARD", False)
    assert backends() is None


def test_replay_compares_our_attention_choice_with_pytorchs(monkeypatch):
    """The replay runs once as training does (guard on), then with PyTorch's choice and each backend alone
    (guard off, so cuDNN can be tried), and leaves the guard as it found it."""
    seen = []

    def record(model, batch, device, bf16):
        seen.append((modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD, torch.backends.cuda.cudnn_sdp_enabled(),
                     torch.backends.cuda.math_sdp_enabled()))
        return {}
    monkeypatch.setattr(nonfinite, "first_nonfinite", record)
    reports = nonfinite.replay_each_backend(torch.nn.Linear(1, 1), {}, "cpu", False)
    assert list(reports) == ["ours", "pytorch_default", "MATH", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION",
                             "FLASH_ATTENTION"]
    assert seen[:2] == [(True, True, True), (False, True, True)]
    assert seen[2] == (False, False, True) and seen[4] == (False, True, False)  # MATH alone, cuDNN alone
    assert modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD
