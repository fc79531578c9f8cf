"""Probe (2026-11-29): does BLT-D degenerate because a pass commits several bytes from one pass's
marginals? Two stricter commit rules under the shipped decoding (confidence 0.7, first byte from the
next-byte head, `end_block`), on the 43 held-out continuations of "A larger sample":

- "prefix": a masked byte can pass only if every masked byte before it in the block passes too
  (no byte is committed past an undecided one);
- "joint": a masked byte passes only if the product of the confidences of the masked bytes up to it
  exceeds the threshold (the pass commits a prefix whose joint probability, under independence, does).

    python benchmarks/probe_commit_rules.py [MODEL] [--rules shipped prefix joint] [--json out.json]

A probe, not a decoder option: it rebuilds `generation_fast_blt.denoise` from its source with one line
added before the rule is applied (the confidences reshaped), so the decoder itself is unchanged.
"""
import argparse
import inspect
import json

import torch

import blt_hf.generation_fast_blt as generation
from blt_hf import DEFAULT_MODEL_PATH, FastBltForCausalLM
from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import DEGENERATE_RUN, continuation_prompts, degeneration


def prefix_confidence(conf, masked, alpha):
    ok = ((conf > alpha) | ~masked).long().cumprod(-1).bool()
    return torch.where(masked & ~ok, conf.clamp(max=alpha), conf)


def joint_confidence(conf, masked, alpha):
    return torch.where(masked, torch.where(masked, conf.clamp(max=1.0), 1.0).cumprod(-1), conf)


RULES = {"shipped": None, "prefix": prefix_confidence, "joint": joint_confidence}


def denoise_with(reshape):
    """denoise, with `conf = reshape(conf, masked, threshold)` just before the unmasking rule."""
    source = inspect.getsource(generation.denoise)
    hook = "        chosen = select_positions("
    if hook not in source:
        raise RuntimeError("generation_fast_blt.denoise changed: update this probe")
    source = source.replace(hook, "        conf = RESHAPE(conf, masked, o.confidence_threshold)\n" + hook, 1)
    namespace = dict(vars(generation), RESHAPE=reshape)
    exec(source, namespace)
    return namespace["denoise"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL_PATH)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--prompts", type=int, default=43)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = FastBltForCausalLM.from_pretrained(args.model).eval()
    _, validation = split_documents(stdlib_documents())
    prompts = continuation_prompts(validation, args.prompts)
    shipped = generation.denoise
    kwargs = dict(decoding="diffusion", confidence_threshold=0.7, first_byte_from_ar=True,
                  unmasking_fallback="end_block")
    results = {}
    for rule in args.rules:
        generation.denoise = shipped if RULES[rule] is None else denoise_with(RULES[rule])
        try:
            r = degeneration(model, prompts, **kwargs)
        finally:
            generation.denoise = shipped
        degenerate = [name for (name, _), run in zip(prompts, r.longest_runs) if run >= DEGENERATE_RUN]
        results[rule] = dict(degenerate=len(degenerate), of=len(prompts), degenerate_files=degenerate,
                             distinct_4gram=r.distinct_4gram, timing=r.timing,
                             continuations=[c.decode("utf-8", "replace") for c in r.continuations])
        print(f"{rule:8s} degenerate {len(degenerate)} of {len(prompts)}  distinct-4 {r.distinct_4gram:.3f}  "
              f"decoder calls/byte {r.timing['decoder_calls_per_byte']:.3f}  "
              f"global calls/byte {r.timing['global_calls_per_byte']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, kwargs=kwargs, results=results), f, indent=1)


if __name__ == "__main__":
    main()
