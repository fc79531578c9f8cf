"""Probe (issue 8): is a block that starts at a *forced* patch boundary, as BLT-D blocks at inference do,
harder for the block path than one at a natural (entropy) boundary, where training always cuts them?

    python benchmarks/probe_forced_starts.py MODEL [ROWS]

Teacher-forced on ROWS validation rows of 512 bytes, mask rates 0.75 and 1: once with the model's own
patching, once with a boundary forced at every 4th position besides (blocks are cut at every patch
start, so the forced ones get blocks too); one-pass accuracy of the masked block bytes by block offset,
and how often a space is predicted vs is the target, for blocks at natural and at forced starts.
"""
import sys
import torch
import torch.nn.functional as F
import blt_hf.modeling_fast_blt as mf
from blt_hf import FastBltForCausalLM
from blt_hf.data import build_corpus
from blt_hf.masks import start_indices
from blt_hf.tokenization_fast_blt import BYTE_OFFSET

torch.set_num_threads(1)
torch.manual_seed(0)
model = FastBltForCausalLM.from_pretrained(sys.argv[1]).eval()
n_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 16
rows = torch.tensor(build_corpus(seq_len=512)["validation"]["input_ids"][:n_rows])
# The probe swaps the model's patch rule for one that adds boundaries: a monkeypatch, because no model
# option forces boundaries in a training-style forward (only generation forces them, one block at a time).
orig = mf.patch_starts_from_entropies
cap = {}
FORCE = False

def patched(ent, valid, pos_ext, thr, mpl):
    natural = orig(ent, valid, pos_ext, thr, mpl)
    extra = (pos_ext % 4 == 0) & (pos_ext > 0) & F.pad(valid, (0, 1), value=False)
    used = natural | extra if FORCE else natural
    cap.update(natural=natural[:, :-1], used=used[:, :-1], pos=pos_ext[:, :-1], valid=valid)
    return used

mf.patch_starts_from_entropies = patched
SPACE = BYTE_OFFSET + ord(" ")
for FORCE in (False, True):
    stats = {}
    for t in (0.75, 1.0):
        with torch.no_grad():
            out = model(input_ids=rows, labels=rows, diffusion_t=t)
        B, nb, Bs = out.block_targets.shape
        opens = cap["used"] & (cap["pos"] > 0) & cap["valid"]
        idx = start_indices(opens, nb)  # (B, nb), N where none
        kind = cap["natural"].gather(1, idx.clamp(max=rows.shape[1] - 1))
        pred, tgt, m = out.block_logits.argmax(-1), out.block_targets, out.block_masked
        for name, sel in (("natural", kind), ("forced", ~kind)):
            mm = m & sel[..., None]
            for off in range(Bs):
                c, n = stats.get((name, off), (0, 0))
                stats[(name, off)] = (c + int(((pred == tgt) & mm)[..., off].sum()), n + int(mm[..., off].sum()))
            for key, hit in (("space", pred == SPACE), ("tspace", tgt == SPACE)):
                c, n = stats.get((name, key), (0, 0))
                stats[(name, key)] = (c + int((hit & mm).sum()), n + int(mm.sum()))
    print("forced boundaries every 4 bytes:", FORCE)
    r = lambda k: stats[k][0] / max(stats[k][1], 1)
    for name in ("natural", "forced"):
        n = sum(stats[(name, o)][1] for o in range(Bs))
        if n:
            acc = sum(stats[(name, o)][0] for o in range(Bs)) / n
            print(f"  {name:8s} starts: acc by offset " + " ".join(f"{r((name, o)):.3f}" for o in range(Bs))
                  + f" | overall {acc:.3f} (masked bytes {n}) | predicted space {r((name, 'space')):.3f}"
                  + f" target space {r((name, 'tspace')):.3f}")
