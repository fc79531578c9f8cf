"""Trainer with the stock collator, checkpoint resume equivalence, and the end-to-end pipeline."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.data import Document, pack_documents
from blt_hf.training import DataArguments, ModelArguments, collator, run_training

from conftest import hf_pair, random_ids, sharpen_patcher, tiny_blt_fields

TEXT = "def add(a, b):\n    return a + b\n\n" * 40


def _dataset(rows=16, seq_len=64):
    return pack_documents([Document(f"d{i}", TEXT[i:]) for i in range(8)], seq_len, max_bytes=rows * seq_len)


def _model(block_size=0):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(max_patch_length=8), diffusion_block_size=block_size))
    sharpen_patcher(model, random_ids(1, 64))
    return model


def _args(out, steps, **kw):
    kw = dict(dict(save_strategy="no"), **kw)
    return TrainingArguments(str(out), max_steps=steps, per_device_train_batch_size=4, learning_rate=3e-3,
                             logging_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, seed=0, **kw)


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("block_size", [0, 4])
def test_trainer_with_stock_collator_loss_falls(tmp_path, block_size):
    trainer = Trainer(_model(block_size), _args(tmp_path, 16), train_dataset=_dataset(), data_collator=collator())
    trainer.train()
    losses = _losses(trainer)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3


class _StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize("block_size", [0, 4])
def test_resume_from_checkpoint_matches_uninterrupted(tmp_path, block_size):
    def run(out, stop=None, resume=None):
        args = _args(out, 6, save_strategy="steps", save_steps=3)
        trainer = Trainer(_model(block_size), args, train_dataset=_dataset(), data_collator=collator(),
                          callbacks=[_StopAt(stop)] if stop else None)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run(tmp_path / "full")
    run(tmp_path / "cut", stop=3)  # "interrupted" right after the step-3 checkpoint
    resumed = run(tmp_path / "cut", resume=str(tmp_path / "cut" / "checkpoint-3"))
    assert resumed.state.global_step == full.state.global_step == 6
    torch.testing.assert_close(_losses(resumed)[-3:], _losses(full)[-3:], rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_pipeline_from_scratch_resume_and_finetune_transformers_blt_into_bltd(tmp_path):
    sizes = dict(local_hidden_size=32, global_hidden_size=64, global_layers=1, decoder_layers=1, patcher_hidden_size=32,
                 patcher_layers=1, hash_vocab=97, entropy_steps=15, entropy_learning_rate=3e-3)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"f{i}.py").write_text(TEXT * 2)
    data = DataArguments(data_dir=str(docs), seq_len=64, validation_fraction=0.3)
    out = tmp_path / "scratch"
    run_training(ModelArguments(diffusion_block_size=4, **sizes), data, _args(out, 2, save_strategy="steps", save_steps=2))
    entropy_weights = (out / "entropy_model" / "model.safetensors").read_bytes()
    # A rerun with more steps resumes from checkpoint-2 and reuses the calibrated entropy model.
    trainer, final = run_training(ModelArguments(diffusion_block_size=4, **sizes), data,
                                  _args(out, 4, save_strategy="steps", save_steps=2, resume_from_checkpoint="true"))
    assert trainer.state.global_step == 4 and (out / "entropy_model" / "model.safetensors").read_bytes() == entropy_weights
    model = FastBltForCausalLM.from_pretrained(final)
    assert model.config.max_patch_length == 8 and model.config.diffusion_block_size == 4
    assert (out / "entropy_model" / "calibration.json").exists()

    ref, _ = hf_pair(tmp_path)  # a plain transformers BltForCausalLM checkpoint
    ref.save_pretrained(tmp_path / "hf_blt")
    _, tuned = run_training(ModelArguments(model_name_or_path=str(tmp_path / "hf_blt"), diffusion_block_size=4), data,
                            _args(tmp_path / "tuned", 2))
    tuned_model = FastBltForCausalLM.from_pretrained(tuned)
    assert tuned_model.config.diffusion_block_size == 4
    assert tuned_model.generation_config.block_size == 4 and tuned_model.generation_config.decoding == "diffusion"
    # Continuing a BLT-D model with another B (and L_mask weight) decodes with the B it was trained for.
    _, again = run_training(ModelArguments(model_name_or_path=str(tuned), diffusion_block_size=2,
                                           diffusion_loss_weight=2.0), data, _args(tmp_path / "again", 1))
    again_model = FastBltForCausalLM.from_pretrained(again)
    assert again_model.generation_config.block_size == 2 and again_model.config.diffusion_loss_weight == 2.0
    assert torch.equal(tuned_model.model.patcher.lm_head.weight, ref.model.patcher.lm_head.weight)


def test_bits_per_byte_next_byte_and_masked_block():
    import math

    from blt_hf.evaluation import bits_per_byte

    model, data = _model(block_size=4).eval(), _dataset(rows=4)
    result = bits_per_byte(model, data, batch_size=2, mask_rates=(0.5, 1.0))
    ids = torch.tensor(data["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
    keep = ids[:, 1:] != 1  # BOS targets are not scored
    expected = torch.nn.functional.cross_entropy(logits[keep], ids[:, 1:][keep]).item() / math.log(2)
    assert result["next_byte_bpb"] == pytest.approx(expected, rel=1e-5)
    assert set(result["masked_block_bpb"]) == {0.5, 1.0} and all(v > 0 for v in result["masked_block_bpb"].values())
    assert bits_per_byte(model, data, batch_size=2, mask_rates=(0.5, 1.0)) == result  # seeded
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids, diffusion_t=1.0)
    assert torch.equal(out.block_masked, out.block_targets >= 0)  # t = 1: every real block byte is masked
    assert bits_per_byte(_model(block_size=0).eval(), data)["masked_block_bpb"] == {}


def test_cli_eval_prints_json(tmp_path, capsys):
    import json

    from blt_hf.cli import main

    _model(block_size=4).save_pretrained(tmp_path / "m")
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"f{i}.txt").write_text(TEXT)
    main(["eval", str(tmp_path / "m"), "--data_dir", str(docs), "--seq_len", "64", "--validation_fraction", "0.4",
          "--max_rows", "2", "--mask_rates", "1.0"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["block_size"] == 4 and result["rows"] == 2 and set(result["masked_block_bpb"]) == {"1.0"}


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not on PATH")
def test_accelerate_two_process_ddp_smoke(tmp_path):
    # `accelerate launch --cpu --num_processes 2` runs ONE process in accelerate 1.15 (its simple
    # launcher needs an MPI hostfile for more); --multi_gpu goes through torchrun, and --use_cpu
    # then gives DistributedType.MULTI_CPU over gloo.
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"f{i}.py").write_text(TEXT * 2)
    script = Path(__file__).resolve().parents[1] / "examples" / "train.py"
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", str(script), "--use_cpu", "true", "--output_dir", str(tmp_path / "run"),
           "--data_dir", str(docs), "--seq_len", "64", "--validation_fraction", "0.3", "--diffusion_block_size", "4",
           "--max_steps", "3", "--per_device_train_batch_size", "2", "--save_steps", "3", "--report_to", "none",
           "--local_hidden_size", "32", "--global_hidden_size", "64", "--global_layers", "1", "--decoder_layers", "1",
           "--patcher_hidden_size", "32", "--patcher_layers", "1", "--hash_vocab", "97", "--entropy_steps", "3",
           "--disable_tqdm", "true"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world size 2, 3 steps" in done.stdout
    assert "find_unused_parameters=True" not in done.stderr  # DDP's warning when it searches for nothing
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


def test_save_atomically_replaces_without_leftovers(tmp_path):
    from blt_hf.training import save_atomically

    model = _model()
    save_atomically(model, tmp_path / "final")
    save_atomically(model, tmp_path / "final")  # over an existing directory
    # final is a symlink to its one current version (checkpoints.publish_dir): nothing else is left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["final", os.readlink(tmp_path / "final")])
    reloaded = FastBltForCausalLM.from_pretrained(tmp_path / "final")
    assert torch.equal(reloaded.lm_head.weight, model.lm_head.weight)


def test_evaluation_repeats_and_reports_next_byte_loss(tmp_path):
    from blt_hf.training import FastBltTrainer

    model = _model(block_size=4)
    data = _dataset(rows=8)
    trainer = FastBltTrainer(model, _args(tmp_path, 1), eval_dataset=data, data_collator=collator())
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first["eval_loss"] == second["eval_loss"]  # no fresh diffusion noise in the loss
    assert first["eval_masked_block_bpb_t0.5"] == second["eval_masked_block_bpb_t0.5"]
    ids = torch.tensor(data["input_ids"])
    with torch.no_grad():
        logits = model.eval()(ids).logits[:, :-1]
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    assert abs(first["eval_loss"] - manual.item()) < 1e-4  # exp(eval_loss) is the per-byte perplexity
    assert {f"eval_masked_block_bpb_t{t}" for t in (0.25, 0.5, 0.75, 1.0)} <= set(first)
