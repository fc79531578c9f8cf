"""Write a trained checkpoint as the shipped default model (src/blt_hf/default_model).

  python benchmarks/ship_default_model.py runs/default_v3/final

What ships: the weights (fp32 safetensors), config.json with `auto_map`, the decoding defaults
(BLT-D at confidence 0.7, first byte from the next-byte head), the fast tokenizer with the model's
one length limit, and the modeling code for `trust_remote_code=True`. The code files are symbolic
links into the package, so the shipped model always runs the package's code (a wheel stores them
as copies); `save_pretrained` of a loaded model writes plain copies for publishing.
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import blt_hf
from blt_hf import FastBltForCausalLM, FastBltTokenizerFast

DECODING_DEFAULTS = {"decoding": "diffusion", "confidence_threshold": 0.7, "first_byte_from_ar": True}


def ship(source: str, target: str = blt_hf.DEFAULT_MODEL_PATH) -> None:
    model = FastBltForCausalLM.from_pretrained(source)
    for key, value in DECODING_DEFAULTS.items():
        setattr(model.generation_config, key, value)
    target = Path(target)
    staged = Path(tempfile.mkdtemp(dir=target.parent, prefix=".ship-"))
    staged.chmod(0o755)
    model.save_pretrained(staged)
    FastBltTokenizerFast(model_max_length=model.config.max_bytes).save_pretrained(staged)
    package = Path(blt_hf.__file__).parent
    for copy in staged.glob("*.py"):  # the copies save_pretrained wrote -> links to the package's files
        assert (package / copy.name).is_file(), copy.name
        copy.unlink()
        os.symlink(Path("..") / copy.name, copy)
    shutil.rmtree(target, ignore_errors=True)
    staged.rename(target)
    print(f"shipped {source} -> {target}: {sorted(p.name for p in target.iterdir())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a trained checkpoint directory (e.g. runs/default_v3/final)")
    ship(parser.parse_args().source)
