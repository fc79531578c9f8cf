"""Crash-safe training: runs killed at injected points resume to the same weights as an uninterrupted run."""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from blt_hf.checkpoints import checkpoint_problems, publish_dir, resume_checkpoint

TEXT = "def add(a, b):\n    return a + b\n\n" * 40

# A tiny from-scratch run (entropy stage included) whose process dies at an injected point.
SCRIPT = textwrap.dedent('''
    import os, sys
    import transformers
    from blt_hf import checkpoints, training

    out, steps, fault = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    die = lambda: os._exit(137)  # like SIGKILL: no cleanup, no flush

    if fault == "mid_checkpoint":  # model + optimizer written, RNG state and trainer_state.json not
        real_save_rng = transformers.Trainer._save_rng_state
        def dying_rng(self, output_dir):
            if self.state.global_step == 4:
                die()
            real_save_rng(self, output_dir)
        transformers.Trainer._save_rng_state = dying_rng
    if fault == "before_first_checkpoint":
        class Die(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 1:
                    die()
        real_init = transformers.Trainer.__init__
        def init(self, *a, **k):
            real_init(self, *a, **k)
            if self.args.output_dir == out:  # the BLT run, not the entropy stage
                self.add_callback(Die())
        transformers.Trainer.__init__ = init
    if fault == "between_renames":  # the new final/ is in its versioned directory, not yet published
        real_symlink = os.symlink
        def symlink(src, dst):
            if "final" in str(dst):
                die()
            real_symlink(src, dst)
        checkpoints.os.symlink = symlink

    sizes = ["--local_hidden_size", "32", "--global_hidden_size", "64", "--global_layers", "1",
             "--decoder_layers", "1", "--patcher_hidden_size", "32", "--patcher_layers", "1",
             "--hash_vocab", "97", "--entropy_steps", "3", "--diffusion_block_size", "4"]
    args = ["--output_dir", out, "--data_dir", os.environ["DOCS"], "--seq_len", "64", "--validation_fraction",
            "0.3", "--max_steps", str(steps), "--per_device_train_batch_size", "2", "--save_steps", "2",
            "--learning_rate", "3e-3", "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true",
            "--seed", "0", "--resume_from_checkpoint", "true", *sizes]
    training.run_training(*training.parse_args(args))
''')


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    for i in range(6):
        (d / f"f{i}.py").write_text(TEXT[i:] * 2)
    return d


def train(tmp_path, docs, out, steps=6, fault="none"):
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "DOCS": str(docs), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), str(out), str(steps), fault], capture_output=True,
                          text=True, env=env, timeout=300)


def final_weights(out):
    return load_file(str(Path(out) / "final" / "model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, docs):
    tmp = tmp_path_factory.mktemp("clean")
    done = train(tmp, docs, tmp / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    return final_weights(tmp / "run")


@pytest.mark.parametrize("fault", ["mid_checkpoint", "before_first_checkpoint"])
def test_killed_run_resumes_to_identical_weights(tmp_path, docs, uninterrupted, fault):
    out = tmp_path / "run"
    killed = train(tmp_path, docs, out, fault=fault)
    assert killed.returncode == 137 and not (out / "final").exists()
    resumed = train(tmp_path, docs, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if fault == "mid_checkpoint":
        assert "skipping incomplete checkpoint" in resumed.stderr and "checkpoint-4" in resumed.stderr
        assert (out / "checkpoint-4.incomplete").is_dir()
    else:
        assert "nothing to resume from" in resumed.stderr
    assert_same_weights(final_weights(out), uninterrupted)


def test_final_stays_loadable_when_killed_between_renames(tmp_path, docs, uninterrupted):
    out = tmp_path / "run"
    assert train(tmp_path, docs, out, fault="between_renames").returncode == 137  # the very first final save
    assert not (out / "final").exists()
    for fault in ("none", "between_renames", "none"):  # reruns resume from checkpoint-6 and save again
        done = train(tmp_path, docs, out, fault=fault)
        assert done.returncode == (137 if fault != "none" else 0), done.stderr[-3000:]
        assert_same_weights(final_weights(out), uninterrupted)  # old or new, final/ is always whole
    versions = sorted(p.name for p in out.iterdir() if p.name.startswith(".final"))
    assert versions == [os.readlink(out / "final")], "earlier versions and interrupted publishes are cleaned up"


def test_checkpoint_problems_name_what_is_broken(tmp_path, docs, uninterrupted):
    out = tmp_path / "run"
    assert train(tmp_path, docs, out, steps=4).returncode == 0
    ckpt = out / "checkpoint-4"
    assert checkpoint_problems(ckpt) == []
    weights = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (ckpt / "optimizer.pt").write_bytes((ckpt / "optimizer.pt").read_bytes()[:100])
    (ckpt / "trainer_state.json").write_text('{"global_st')
    problems = checkpoint_problems(ckpt)
    assert any(p.startswith("model.safetensors:") for p in problems)
    assert "optimizer.pt: truncated" in problems and any(p.startswith("trainer_state.json") for p in problems)
    assert resume_checkpoint(out) == str(out / "checkpoint-2")
    assert (out / "checkpoint-4.incomplete").is_dir()


def test_resume_with_nothing_starts_fresh_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="blt_hf.checkpoints"):
        assert resume_checkpoint(tmp_path) is None
    assert "nothing to resume from" in caplog.text


def test_publish_dir_replaces_a_legacy_directory_and_leaves_one_version(tmp_path):
    path = tmp_path / "final"
    path.mkdir()
    (path / "a").write_text("legacy")
    for text in ("one", "two"):
        tmp = tmp_path / f".tmp-{text}"
        tmp.mkdir()
        (tmp / "a").write_text(text)
        publish_dir(tmp, path)
        assert (path / "a").read_text() == text
    assert [p.name for p in tmp_path.iterdir() if p.name != "final"] == [os.readlink(path)]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("basic_ios::clear: iostream error")])
def test_full_disk_is_named_with_its_directory(tmp_path, monkeypatch, error):
    from collections import namedtuple

    from blt_hf import checkpoints
    from blt_hf.checkpoints import DiskFullError, reporting_full_disk

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage(10 << 20, 10 << 20, 1024))
    with pytest.raises(DiskFullError, match=f"disk full while writing to {tmp_path}"):
        with reporting_full_disk(tmp_path):
            raise error
    with pytest.raises(RuntimeError, match="something else"):  # other errors pass through unchanged
        with reporting_full_disk(tmp_path):
            raise RuntimeError("something else")
