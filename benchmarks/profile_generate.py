"""Where a decoding step's time goes (torch.profiler, 1 thread): aten calls per byte and self-time shares.

    python benchmarks/profile_generate.py [MODEL_DIR] [--decoding autoregressive] [--new-bytes 128]
        [--cache static [--compiled]]

With --compiled the warm-up generates as many bytes as the profiled run (same cache size: no compiling
inside the profile); compiled regions show as "Torch-Compiled Region" rows, their guard checks as
"TorchDynamo Cache Lookup".
"""
import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import blt_hf
from blt_hf import FastBltForCausalLM

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", nargs="?", default=blt_hf.DEFAULT_MODEL_PATH)
parser.add_argument("--decoding", default="autoregressive")
parser.add_argument("--new-bytes", type=int, default=128)
parser.add_argument("--cache", choices=["dynamic", "static"], default="dynamic")
parser.add_argument("--compiled", action="store_true", help="compile the static cache's steps (CompileConfig)")
args = parser.parse_args()
torch.set_num_threads(1)
model = FastBltForCausalLM.from_pretrained(args.model).eval()
ids = torch.tensor([[1] + [b + 4 for b in open(blt_hf.masks.__file__, "rb").read()[:192]]])  # a fixed code prompt
kw = dict(decoding=args.decoding, do_sample=False, eos_token_id=None, cache_implementation=args.cache)
if args.compiled:
    from transformers.generation.configuration_utils import CompileConfig

    kw["compile_config"] = CompileConfig(dynamic=False, mode="default")
n = args.new_bytes
model.generate(ids, max_new_tokens=n if args.cache == "static" else 8, **kw)  # warm-up (compiles)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    t = time.perf_counter()
    model.generate(ids, max_new_tokens=n, **kw)
    dt = time.perf_counter() - t
events = prof.key_averages()
aten = [e for e in events if e.key.startswith("aten::")]
calls = sum(e.count for e in aten)
total = sum(e.self_cpu_time_total for e in events)
print(f"{n} bytes in {dt:.2f} s ({n / dt:.0f} bytes/s under the profiler); {calls / n:.0f} aten calls per byte")
groups = {"matrix products (mm/addmm/bmm/linear)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"),
          "attention (sdpa)": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
          "indexing / gather / scatter / slicing": ("aten::index", "aten::gather", "aten::scatter", "aten::slice", "aten::select", "aten::narrow", "aten::as_strided"),
          "elementwise / reductions": ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::where", "aten::pow", "aten::rsqrt", "aten::mean", "aten::sum", "aten::silu", "aten::neg", "aten::cat", "aten::exp", "aten::max", "aten::min", "aten::cumsum", "aten::clamp", "aten::eq", "aten::lt", "aten::ge", "aten::le", "aten::gt", "aten::ne", "aten::bitwise", "aten::logical", "aten::softmax", "aten::log_softmax", "aten::argmax", "aten::cos", "aten::sin", "aten::logsumexp"),
          "tensor creation / copies / views": ("aten::empty", "aten::zeros", "aten::ones", "aten::full", "aten::arange", "aten::copy_", "aten::to", "aten::_to_copy", "aten::view", "aten::reshape", "aten::expand", "aten::unsqueeze", "aten::transpose", "aten::contiguous", "aten::clone", "aten::t", "aten::item", "aten::_local_scalar_dense", "aten::fill_", "aten::zero_", "aten::detach", "aten::flatten", "aten::permute", "aten::repeat", "aten::stack", "aten::new_", "aten::lift", "aten::tensor", "aten::alias", "aten::resolve", "aten::split", "aten::chunk", "aten::unbind"),
          }
shares = {g: 0.0 for g in groups}
other = 0.0
for e in aten:
    for g, prefixes in groups.items():
        if e.key.startswith(prefixes):
            shares[g] += e.self_cpu_time_total
            break
    else:
        other += e.self_cpu_time_total
aten_total = sum(e.self_cpu_time_total for e in aten)
for g, v in sorted(shares.items(), key=lambda x: -x[1]):
    print(f"  {g}: {100 * v / total:.0f}% of profiled self time")
print(f"  other aten ops: {100 * other / total:.0f}%; Python / non-aten: {100 * (total - aten_total) / total:.0f}%")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
