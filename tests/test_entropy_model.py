"""Entropy model: trains with the HF Trainer, calibrates to a target patch size, installs into BLT."""

import torch
from transformers import Trainer, TrainingArguments

from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltPatcherConfig
from blt_hf.data import build_corpus
from blt_hf.entropy_model import FastBltEntropyModel, calibrate_threshold, install_patcher, model_patch_size
from blt_hf.training import collator

from conftest import tiny_blt_fields


def _corpus():
    # Held-out *files*: stdlib sources, a few dozen files, 96-byte rows.
    return build_corpus(seq_len=96, max_files=60, validation_fraction=0.3, max_train_bytes=96 * 96,
                        max_validation_bytes=96 * 24)


def _train(corpus, tmp_path, steps=40):
    torch.manual_seed(0)
    model = FastBltEntropyModel(FastBltPatcherConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                     intermediate_size=64))
    args = TrainingArguments(str(tmp_path), max_steps=steps, per_device_train_batch_size=8, learning_rate=5e-3,
                             logging_steps=5, report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no", seed=0)
    trainer = Trainer(model, args, train_dataset=corpus["train"], data_collator=collator())
    trainer.train()
    return model, [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_entropy_model_trains_calibrates_and_installs(tmp_path):
    corpus = _corpus()
    entropy_model, losses = _train(corpus, tmp_path)
    assert losses[-1] < losses[0] - 1.0  # from ~ln(260) = 5.6 nats towards byte-level structure

    held_out = torch.tensor(corpus["validation"]["input_ids"])
    threshold, size = calibrate_threshold(entropy_model, held_out, target_patch_size=4.0, max_patch_length=8)
    assert abs(size - 4.0) < 0.1

    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields()))
    install_patcher(model, entropy_model, threshold, max_patch_length=8)
    assert abs(model_patch_size(model, held_out) - 4.0) < 0.1  # the model's own patch rule agrees
    assert not any(p.requires_grad for p in model.model.patcher.parameters())

    model.save_pretrained(tmp_path / "blt")
    reloaded = FastBltForCausalLM.from_pretrained(tmp_path / "blt")
    assert reloaded.config.patching_threshold == threshold and reloaded.config.max_patch_length == 8
    for k, v in entropy_model.patcher.state_dict().items():
        assert torch.equal(reloaded.model.patcher.state_dict()[k], v), k
    assert model_patch_size(reloaded, held_out) == model_patch_size(model, held_out)


def test_calibration_tracks_other_targets(tmp_path):
    corpus = _corpus()
    entropy_model, _ = _train(corpus, tmp_path, steps=10)
    held_out = torch.tensor(corpus["validation"]["input_ids"])
    sizes = [calibrate_threshold(entropy_model, held_out, target, 8)[1] for target in (2.0, 3.0, 6.0)]
    for target, size in zip((2.0, 3.0, 6.0), sizes):
        assert abs(size - target) < 0.15 * target
