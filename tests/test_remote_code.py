"""Loading without `import blt_hf`: auto_map + the modeling code beside the weights (trust_remote_code).

The loader runs in a subprocess where importing blt_hf raises, and must generate the same bytes as
the package does, for every decoding, from the shipped directory (code as links into the package)
and from a fresh `save_pretrained` (plain copies, what one publishes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import blt_hf
from blt_hf import FastBltForCausalLM, FastBltTokenizerFast
from blt_hf.generation_config_fast_blt import DECODINGS

PROMPT = "def read_config(path):\n"
NEW = 24
LOADER = r"""
import importlib.abc, json, sys

class NoBltHf(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "blt_hf":
            raise ImportError("blt_hf may not be imported here")

sys.meta_path.insert(0, NoBltHf())
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

out = {}
for d in sys.argv[3:]:
    config = AutoConfig.from_pretrained(d, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(d, trust_remote_code=True)
    ids = tokenizer(sys.argv[1], return_tensors="pt").input_ids
    out[d] = {"classes": [type(o).__name__ for o in (config, tokenizer, model, base)],
              "modules": sorted({type(o).__module__.split(".")[0] for o in (config, tokenizer, model, base)}),
              "fast": tokenizer.is_fast, "text": tokenizer.decode(ids[0], skip_special_tokens=True),
              "ids": {dec: model.generate(ids, decoding=dec, max_new_tokens=int(sys.argv[2]))[0].tolist()
                      for dec in ("autoregressive", "diffusion", "self_speculation", "diffusion_verify")}}
assert not any(m.split(".")[0] == "blt_hf" for m in sys.modules)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def package_model():
    return FastBltForCausalLM.from_pretrained(blt_hf.DEFAULT_MODEL_PATH).eval()


def load_without_package(dirs, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", LOADER, PROMPT, str(NEW), *map(str, dirs)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_shipped_and_saved_models_load_and_generate_without_blt_hf(package_model, tmp_path):
    saved = tmp_path / "saved"
    package_model.save_pretrained(saved)
    FastBltTokenizerFast(model_max_length=package_model.config.max_bytes).save_pretrained(saved)
    assert not any(p.is_symlink() for p in saved.iterdir())  # what one publishes: plain copies
    loaded = load_without_package([blt_hf.DEFAULT_MODEL_PATH, saved], tmp_path)

    ids = FastBltTokenizerFast()(PROMPT, return_tensors="pt").input_ids
    expected = {dec: package_model.generate(ids, decoding=dec, max_new_tokens=NEW)[0].tolist() for dec in DECODINGS}
    for d, got in loaded.items():
        assert got["classes"] == ["FastBltConfig", "FastBltTokenizerFast", "FastBltForCausalLM", "FastBltModel"], d
        assert got["modules"] == ["transformers_modules"], d
        assert got["fast"] and got["text"] == PROMPT
        assert got["ids"] == expected, d


def test_saved_directory_names_every_auto_class(package_model, tmp_path):
    package_model.save_pretrained(tmp_path)
    FastBltTokenizerFast().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_fast_blt.FastBltConfig",
                                  "AutoModel": "modeling_fast_blt.FastBltModel",
                                  "AutoModelForCausalLM": "modeling_fast_blt.FastBltForCausalLM"}
    tokenizer = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer["auto_map"]["AutoTokenizer"] == ["tokenization_fast_blt.FastBltTokenizer",
                                                      "tokenization_fast_blt_fast.FastBltTokenizerFast"]
    # every module the copied code imports relatively was copied too
    for path in tmp_path.glob("*.py"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("from ."):
                module = line.strip().split()[1].lstrip(".")
                assert module and (tmp_path / f"{module}.py").is_file(), (path.name, line)


def test_shipped_code_is_the_package_code_and_all_of_it(package_model, tmp_path):
    package_model.save_pretrained(tmp_path)
    FastBltTokenizerFast().save_pretrained(tmp_path)
    shipped = Path(blt_hf.DEFAULT_MODEL_PATH)
    assert sorted(p.name for p in shipped.glob("*.py")) == sorted(p.name for p in tmp_path.glob("*.py"))
    package = Path(blt_hf.__file__).parent
    for path in shipped.glob("*.py"):
        assert path.resolve().read_bytes() == (package / path.name).read_bytes(), path.name
