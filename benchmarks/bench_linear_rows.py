"""What one linear layer costs on this CPU by the number of rows it carries (1 thread, best of 3).

    python benchmarks/bench_linear_rows.py

BLT-D's passes carry 4-12 query rows where an AR step carries one, so how a small matrix product's
time grows with its rows decides how much of the saved passes turns into bytes/s. Three kernels on the
shapes of the shipped model: fp32 `F.linear` (MKL here), fp32 through oneDNN with the weight packed
once (`torch.ops.mkldnn._linear_pointwise`, what inductor's CPU freezing uses; private, so a probe
only), and bf16 `F.linear`.
"""
import time

import torch
import torch.nn.functional as F

SHAPES = [(256, 1024), (1024, 256), (288, 1152)]  # local MLP in / out, global MLP in (in, out features)
ROWS = [1, 2, 4, 8, 16]


def best_time(fn, n=3000, repeats=3):
    for _ in range(100):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def main():
    torch.set_num_threads(1)
    print("| in x out | rows | fp32 F.linear (us) | fp32 oneDNN packed (us) | bf16 F.linear (us) |")
    print("|---|---:|---:|---:|---:|")
    for k, n in SHAPES:
        w = torch.randn(n, k)
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        wb = w.bfloat16()
        for m in ROWS:
            x = torch.randn(m, k)
            xb = x.bfloat16()
            fp32 = best_time(lambda: F.linear(x, w))
            onednn = best_time(lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""))
            bf16 = best_time(lambda: F.linear(xb, wb))
            print(f"| {k} x {n} | {m} | {fp32:.1f} | {onednn:.1f} | {bf16:.1f} |", flush=True)


if __name__ == "__main__":
    main()
