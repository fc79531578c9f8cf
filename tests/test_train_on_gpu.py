"""benchmarks/train_on_gpu.py, the prepared GPU run of issue 8, smoke-run on the CPU: the probe sizes the
main run, the held-out loss is evaluated four times, and the bf16 result comes back in small shards."""

import json

import pytest
import torch
from safetensors.torch import load_file

from blt_hf import FastBltConfig, FastBltForCausalLM

from conftest import load_benchmark, tiny_blt_fields


def load_script():
    return load_benchmark("train_on_gpu")


def tiny_base_and_docs(tmp_path):
    torch.manual_seed(0)
    base = tmp_path / "base"
    FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(max_patch_length=8), diffusion_block_size=4)).save_pretrained(base)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"f{i}.py").write_text(f"def f{i}(a, b):\n    return a * {i} + b\n\n" * 30)
    return base, docs


def test_train_on_gpu_smoke(tmp_path, monkeypatch):
    base, docs = tiny_base_and_docs(tmp_path)
    script = load_script()
    monkeypatch.setattr(script, "SHARD", "100KB")  # the tiny model must still be cut into several shards
    out = tmp_path / "out"
    script.main([str(out), "--base", str(base), "--work", str(tmp_path / "work"), "--budget_s", "1e6",
                 "--max_steps", "8", "--probe_steps", "4", "--batch", "2", "--seq_len", "64", "--warmup", "2",
                 "--", "--data_dir", str(docs), "--validation_fraction", "0.3"])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["bytes"] == 8 * 2 * 64  # the budget allows more: the cap decides
    assert summary["probe_ms_per_step"] > 0
    assert [e["step"] for e in summary["evals"]] == [2, 4, 6, 8]
    assert all(e["eval_loss"] == e["eval_loss"] for e in summary["evals"])  # not NaN
    best = min(summary["evals"], key=lambda e: e["eval_loss"])  # the final model is the best evaluated one
    assert summary["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    assert summary["best_eval_loss"] == best["eval_loss"]
    shards = sorted((out / "final_bf16").glob("*.safetensors"))
    assert len(shards) > 1 and all(s.stat().st_size < 200_000 for s in shards)
    fp32 = FastBltForCausalLM.from_pretrained(tmp_path / "work" / "run" / "final")
    kept = FastBltForCausalLM.from_pretrained(summary["best_checkpoint"])
    torch.testing.assert_close(dict(kept.named_parameters()), dict(fp32.named_parameters()), rtol=0, atol=0)
    bf16 = FastBltForCausalLM.from_pretrained(out / "final_bf16", dtype=torch.float32)
    trained = dict(fp32.named_parameters())
    for name, weight in bf16.named_parameters():
        torch.testing.assert_close(weight, trained[name].to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)
    base_weights = dict(FastBltForCausalLM.from_pretrained(base).named_parameters())
    assert not torch.equal(trained["lm_head.weight"], base_weights["lm_head.weight"]), "it trained"


def test_train_on_gpu_replays_a_step_with_nonfinite_gradients(tmp_path, monkeypatch):
    """The probe's third step reports non-finite gradients (as the bf16 run on an H200 did at its seventh):
    the script stops, replays that step on its device and brings back the report and the batch."""
    import blt_hf.training

    base, docs = tiny_base_and_docs(tmp_path)
    checks = []
    monkeypatch.setattr(blt_hf.training, "gradients_finite", lambda model: checks.append(1) or len(checks) != 3)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        load_script().main([str(out), "--base", str(base), "--work", str(tmp_path / "work"), "--probe_steps", "4",
                            "--batch", "2", "--seq_len", "64", "--", "--data_dir", str(docs)])
    assert stop.value.code == 2 and not (out / "summary.json").exists()
    report = json.loads((out / "nonfinite.json").read_text())
    assert report["error"].startswith("step 3: ")
    # the replay of a step whose gradients were only reported broken finds nothing broken, at the step's
    # loss, under our choice of attention kernels and under the math kernel alone (the same noise again)
    replays = report["replay"]
    assert replays["ours"]["parameters_with_nonfinite_gradients"] == [] and replays["ours"]["loss"] > 0
    assert replays["MATH"]["loss"] == pytest.approx(replays["ours"]["loss"], rel=1e-4)
    assert load_file(out / "nonfinite_batch.safetensors")["input_ids"].shape == (2, 64)
