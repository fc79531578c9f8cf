"""Probe (issue 8): does the BLT-D block path's confidence mean what the unmasking threshold assumes?

    python benchmarks/probe_calibration.py [MODEL] [ROWS]

Teacher-forced on ROWS validation rows of 512 bytes at mask rates 0.5, 0.75 and 1: every masked block
byte's confidence (probability of the argmax byte, the quantity `confidence_threshold` compares) binned,
with the share of masked bytes in each bin, the bin's mean confidence and its accuracy (a calibrated
path has accuracy = mean confidence), for all bytes and for the bytes predicted as a space.
"""
import sys
import torch
from blt_hf import DEFAULT_MODEL_PATH, FastBltForCausalLM
from blt_hf.data import build_corpus
from blt_hf.tokenization_fast_blt import BYTE_OFFSET

EDGES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
SPACE = BYTE_OFFSET + ord(" ")


def reliability(confidence, hit, predicted_space) -> list[str]:
    """Markdown rows: one per confidence bin [EDGES[k], EDGES[k+1]) (the last bin includes 1)."""
    edges = torch.tensor(EDGES[1:-1])
    bins = torch.bucketize(confidence, edges, right=True)
    rows = []
    for k in range(len(EDGES) - 1):
        sel = bins == k
        n, sp = int(sel.sum()), sel & predicted_space
        if not n:
            continue
        space_acc = f"{hit[sp].float().mean():.3f}" if sp.any() else "-"
        rows.append(f"| [{EDGES[k]:.2f}, {EDGES[k + 1]:.2f}{']' if k == len(EDGES) - 2 else ')'} | {n} | "
                    f"{n / len(confidence):.3f} | {confidence[sel].mean():.3f} | {hit[sel].float().mean():.3f} | "
                    f"{int(sp.sum()) / n:.2f} | {space_acc} |")
    return rows


@torch.no_grad()
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = FastBltForCausalLM.from_pretrained(argv[0] if argv else DEFAULT_MODEL_PATH).eval()
    n_rows = int(argv[1]) if len(argv) > 1 else 16
    rows = torch.tensor(build_corpus(seq_len=512)["validation"]["input_ids"][:n_rows])
    for t in (0.5, 0.75, 1.0):
        out = model(input_ids=rows, labels=rows, diffusion_t=t)
        confidence, predicted = out.block_logits.float().softmax(-1).max(-1)
        masked = out.block_masked
        hit = predicted == out.block_targets
        print(f"\nmask rate {t}: {int(masked.sum())} masked block bytes, one-pass accuracy "
              f"{hit[masked].float().mean():.3f}\n")
        print("| confidence | bytes | share | mean confidence | accuracy | predicted space | space accuracy |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(reliability(confidence[masked], hit[masked], predicted[masked] == SPACE)))


if __name__ == "__main__":
    main()
