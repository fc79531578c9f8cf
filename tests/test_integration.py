"""Save/load through the Auto classes (fresh process), conversion both ways, the CLI."""

import json
import os
import subprocess
import sys

import torch
from conftest import hf_pair, random_ids, tiny_blt_fields
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, BltForCausalLM

import blt_hf
from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltModel, FastBltTokenizer
from blt_hf.cli import main as cli_main

FRESH_PROCESS_CHECK = """
import sys, torch
import blt_hf  # registers the Auto classes
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
path = sys.argv[1]
config = AutoConfig.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path).eval()
tok = AutoTokenizer.from_pretrained(path)
ids = tok("hello bytes", return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(ids).logits
torch.save({"cls": type(model).__name__, "tok": type(tok).__name__, "model_type": config.model_type,
            "ids": ids, "logits": logits}, sys.argv[2])
"""


def test_auto_round_trip_in_fresh_process(tmp_path, tiny_model):
    tok = FastBltTokenizer()
    tiny_model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    subprocess.run([sys.executable, "-c", FRESH_PROCESS_CHECK, str(tmp_path / "m"), str(tmp_path / "out.pt")],
                   check=True, env=env, timeout=300)
    out = torch.load(tmp_path / "out.pt")
    assert (out["cls"], out["tok"], out["model_type"]) == ("FastBltForCausalLM", "FastBltTokenizerFast", "fast_blt")
    with torch.no_grad():
        expected = tiny_model(out["ids"]).logits
    torch.testing.assert_close(out["logits"], expected, atol=1e-6, rtol=0)


def test_auto_classes_in_process(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "FastBltConfig"
    base, causal = AutoModel.from_pretrained(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(base, FastBltModel) and isinstance(causal, FastBltForCausalLM)
    for model in (base, causal):  # loading must not make the frozen entropy patcher trainable again
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and not any("patcher." in n for n in trainable)


def test_export_to_transformers_and_back(tmp_path, tiny_model):
    blt_hf.export_to_transformers_blt(tiny_model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "blt"
    ref = BltForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = random_ids(1, 64, seed=3)
    with torch.no_grad():
        expected = tiny_model(ids).logits
        torch.testing.assert_close(ref(ids, use_cache=False).logits, expected, atol=1e-4, rtol=0)
    back = FastBltForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, expected, atol=1e-6, rtol=0)


def test_cli_convert(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path / "ours")
    cli_main(["convert", str(tmp_path / "ours"), str(tmp_path / "hf")])
    cli_main(["convert", str(tmp_path / "hf"), str(tmp_path / "again"), "--to", "fast_blt"])
    assert json.loads((tmp_path / "again" / "config.json").read_text())["model_type"] == "fast_blt"
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "again")  # a converted directory loads like a saved one
    assert tokenizer("ab").input_ids == [1, ord("a") + 4, ord("b") + 4]
    ids = random_ids(1, 40, seed=4)
    ref = BltForCausalLM.from_pretrained(tmp_path / "hf").eval()
    again = FastBltForCausalLM.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        torch.testing.assert_close(ref(ids, use_cache=False).logits, again(ids).logits, atol=1e-4, rtol=0)


def test_export_of_a_blt_d_model_warns_what_transformers_cannot_hold(tmp_path, caplog):
    from blt_hf.convert import export_to_transformers_blt

    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=4)))
    with caplog.at_level("WARNING", logger="blt_hf.convert"):
        export_to_transformers_blt(model, tmp_path / "hf")
    assert "diffusion_block_size=4" in caplog.text and "pass diffusion_block_size=4 to from_pretrained" in caplog.text
    back = FastBltForCausalLM.from_pretrained(tmp_path / "hf", diffusion_block_size=4)  # what the warning says to do
    assert back.config.diffusion_block_size == 4 and back.generation_config.decoding == "diffusion"


HUB_SCRIPT = """
import sys, torch, blt_hf
from blt_hf import FastBltForCausalLM
model = FastBltForCausalLM.from_pretrained("someone/tiny-blt", diffusion_block_size=8)
c = model.config
assert (c.model_type, c.diffusion_block_size, c.pad_token_id, c.bos_token_id, c.eos_token_id, c.mask_token_id) == (
    "fast_blt", 8, 0, 1, 2, 3), c
assert model.generation_config.decoding == "diffusion" and model.generation_config.block_size == 8
ids = torch.tensor([[1, 40, 50, 60, 70, 80, 90, 100]])
with torch.no_grad():
    torch.save(model.eval()(ids).logits, sys.argv[1])
"""


def test_transformers_blt_from_an_offline_hub_cache_becomes_blt_d(tmp_path):
    """A checkpoint written by transformers' BltForCausalLM, found by hub id in the cache (offline), loads
    converted, with config kwargs applied as transformers does, and gives the reference logits."""
    ref, _ = hf_pair(tmp_path)
    snapshot = tmp_path / "hub" / "models--someone--tiny-blt" / "snapshots" / ("0" * 40)
    ref.save_pretrained(snapshot)
    (tmp_path / "hub" / "models--someone--tiny-blt" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-blt" / "refs" / "main").write_text("0" * 40)
    script = tmp_path / "load.py"
    script.write_text(HUB_SCRIPT)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "logits.pt")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "to instantiate a model of type" not in done.stderr
    ids = torch.tensor([[1, 40, 50, 60, 70, 80, 90, 100]])
    with torch.no_grad():
        expected = ref(ids, use_cache=False).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, atol=1e-4, rtol=0)
