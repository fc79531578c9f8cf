"""The two values tests/test_shipped_model.py bounds, measured on a candidate model directory.

    python benchmarks/shipped_bounds.py runs/ship_stage11

Next-byte bits per byte on the test's held-out slice and AR edit similarity on its first lines, computed
exactly as the tests compute them (their own slice and line count), so a release can set its bounds
from the file it ships.
"""
import sys

import torch

from blt_hf import FastBltForCausalLM
from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import line_completion, line_completion_tasks

sys.path.insert(0, "tests")
import test_shipped_model as t  # noqa: E402  (the slice, its bpb and the line count the tests use)

torch.set_num_threads(1)
model = FastBltForCausalLM.from_pretrained(sys.argv[1]).eval()
bpb = t.slice_bits_per_byte(model)
_, validation = split_documents(stdlib_documents())
es = line_completion(model, line_completion_tasks(validation, t.LINES), decoding="autoregressive").edit_similarity
print(f"slice bpb {bpb:.3f}  AR edit similarity ({t.LINES} lines) {es:.3f}")
