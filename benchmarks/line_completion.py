"""Generation quality of every decoder setting on held-out code (issue 8), in one run.

    python benchmarks/line_completion.py [MODEL] [--lines 100] [--prompts 12] [--settings ar blt_d_conf0.7 ...]
        [--extra NAME:key=value,key=value ...] [--headers 0] [--threads 1] [--json out.json] [--markdown out.md]

Per setting: line-completion exact match and edit similarity (blt_hf.generation_quality), the
degeneration rate and distinct-4-gram ratio of 256-byte continuations, bytes/s and decoder /
global calls per byte measured in the same run (batch 1, greedy), with `--headers N` the
degeneration rate of 128-byte outputs for N held-out function headers given alone (the README's
`blt-hf generate "def read_config(path):"` on many prompts), and 3 samples of each kind shown
verbatim. Tasks come from the validation files of the default corpus split. `--extra` adds
settings, e.g. `--extra leftmost:decoding=diffusion,unmasking_fallback=leftmost`.
Prints a table, then one JSON line. `--merge A.json B.json ...` runs nothing: it joins the settings of
runs made on the same model and tasks in separate processes (one core each) into --json / --markdown.
"""

import argparse
import json

import torch

from blt_hf import DEFAULT_MODEL_PATH, FastBltForCausalLM
from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import (DEGENERATE_RUN, HEADER_NEW_BYTES, SETTINGS, block_accuracy,
                                       continuation_prompts, degeneration, function_header_prompts,
                                       line_completion, line_completion_tasks)

SAMPLES = 3


def parse_extra(specs):
    """["name:key=value,..."] -> {name: kwargs}; values parsed as JSON when they can be."""
    out = {}
    for spec in specs or []:
        name, _, body = spec.partition(":")
        kwargs = {}
        for item in filter(None, body.split(",")):
            key, _, value = item.partition("=")
            try:
                kwargs[key] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key] = value
        out[name] = kwargs
    return out


def run_setting(model, tasks, prompts, kwargs, new_bytes, headers=()):
    lines = line_completion(model, tasks, **kwargs)
    cont = degeneration(model, prompts, new_bytes, **kwargs) if prompts else None
    head = degeneration(model, headers, HEADER_NEW_BYTES, bos=True, **kwargs) if headers else None
    row = dict(kwargs=kwargs, exact_match=lines.exact_match, edit_similarity=lines.edit_similarity,
               line_timing=lines.timing,
               line_samples=[dict(file=t.name, line=t.line_number, target=t.target.decode("utf-8", "replace"),
                                  prediction=p.decode("utf-8", "replace")) for t, p in lines.predictions[:SAMPLES]],
               # every line's prediction, so two runs on the same lines compare line by line (paired)
               line_predictions=[p.decode("utf-8", "replace") for _, p in lines.predictions])
    if cont is not None:
        row.update(degeneration_rate=cont.degeneration_rate, distinct_4gram=cont.distinct_4gram,
                   longest_runs=cont.longest_runs, continuation_timing=cont.timing,
                   continuation_samples=[c.decode("utf-8", "replace") for c in cont.continuations[:SAMPLES]],
                   continuation_outputs=[c.decode("utf-8", "replace") for c in cont.continuations])
    if head is not None:
        degenerate = [i for i, r in enumerate(head.longest_runs) if r >= DEGENERATE_RUN][:SAMPLES]
        row.update(header_degeneration_rate=head.degeneration_rate, header_longest_runs=head.longest_runs,
                   header_outputs=[h.decode("utf-8", "replace") for h in head.continuations],
                   header_samples=[(p.decode("utf-8", "replace"), head.continuations[i].decode("utf-8", "replace"))
                                   for i, (_, p) in enumerate(headers) if i < SAMPLES or i in degenerate])
    return row


def markdown(model_path, results, accuracy, meta) -> str:
    out = [f"# Generation quality of `{model_path}`", "",
           f"{meta['lines']} held-out lines (line completion, up to 64 new bytes, cut at the first newline) and "
           f"{meta['prompts']} prompts x {meta['new_bytes']} new bytes (degeneration); greedy, batch 1, "
           f"{meta['threads']} thread(s), one run"
           + (f"; {meta['headers']} function headers alone x {HEADER_NEW_BYTES} new bytes (header degenerate)"
              if meta.get("headers") else "") + f". Command: `{meta['command']}`", "",
           "| setting | exact match | edit sim | line bytes/s | degenerate | distinct-4 | 256-byte bytes/s | "
           "decoder calls/byte | global calls/byte | header degenerate |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        ct = r.get("continuation_timing", r["line_timing"])
        out.append(f"| {name} | {r['exact_match']:.3f} | {r['edit_similarity']:.3f} | "
                   f"{r['line_timing']['bytes_per_s']:.1f} | {r.get('degeneration_rate', float('nan')):.2f} | "
                   f"{r.get('distinct_4gram', float('nan')):.3f} | {ct['bytes_per_s']:.1f} | "
                   f"{ct['decoder_calls_per_byte']:.3f} | {ct['global_calls_per_byte']:.3f} | "
                   f"{r.get('header_degeneration_rate', float('nan')):.2f} |")
    if accuracy:
        out += ["", "Teacher-forced block accuracy (one pass, masked bytes, t in "
                f"{accuracy['mask_rates']}): overall {accuracy['overall']:.3f}; predicted spaces "
                f"{accuracy['predicted_space_share']:.2f} vs target spaces {accuracy['target_space_share']:.2f}.", "",
                "| block offset | " + " | ".join(str(i) for i in range(len(accuracy["by_position"]))) + " |",
                "|---|" + "---:|" * len(accuracy["by_position"]),
                "| accuracy | " + " | ".join(f"{a:.3f}" for a in accuracy["by_position"]) + " |", "",
                "| revealed fraction | " + " | ".join(f"[{i / 4:.2f}, {(i + 1) / 4:.2f})" for i in range(4)) + " |",
                "|---|---:|---:|---:|---:|",
                "| accuracy | " + " | ".join("-" if a is None else f"{a:.3f}" for a in accuracy["by_revealed"]) + " |"]
    out += ["", "## Samples (verbatim, repr)"]
    for name, r in results.items():
        out += ["", f"### {name}", ""]
        out += [f"- line `{s['file']}:{s['line']}`: true {s['target']!r} / got {s['prediction']!r}"
                for s in r["line_samples"]]
        out += [f"- continuation: {c!r}" for c in r.get("continuation_samples", [])]
        out += [f"- header {p!r}: {h!r}" for p, h in r.get("header_samples", [])]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL_PATH)
    p.add_argument("--lines", type=int, default=100)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--new-bytes", type=int, default=256)
    p.add_argument("--headers", type=int, default=0, help="function headers alone (README-style prompts)")
    p.add_argument("--settings", nargs="*", default=list(SETTINGS))
    p.add_argument("--extra", nargs="*", help="NAME:key=value,... extra generate settings")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block-accuracy-rows", type=int, default=16)
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="join these runs' settings instead of running")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.json, args.markdown)
    torch.set_num_threads(args.threads)
    model = FastBltForCausalLM.from_pretrained(args.model).eval()
    _, validation = split_documents(stdlib_documents())
    tasks = line_completion_tasks(validation, args.lines)
    prompts = continuation_prompts(validation, args.prompts)
    headers = function_header_prompts(validation, args.headers) if args.headers else []
    settings = {name: SETTINGS[name] for name in args.settings} | parse_extra(args.extra)
    results = {}
    for name, kwargs in settings.items():
        results[name] = r = run_setting(model, tasks, prompts, kwargs, args.new_bytes, headers)
        print(f"{name:24s} EM {r['exact_match']:.3f}  ES {r['edit_similarity']:.3f}  "
              f"degenerate {r.get('degeneration_rate', float('nan')):.2f}  "
              f"distinct4 {r.get('distinct_4gram', float('nan')):.3f}  "
              f"header degenerate {r.get('header_degeneration_rate', float('nan')):.2f}  "
              f"{r.get('continuation_timing', r['line_timing'])['bytes_per_s']:.1f} B/s", flush=True)
    accuracy = None
    if model.config.diffusion_block_size > 0 and args.block_accuracy_rows:
        from blt_hf.data import build_corpus

        rows = torch.tensor(build_corpus(seq_len=512)["validation"]["input_ids"][:args.block_accuracy_rows])
        accuracy = block_accuracy(model, rows)
    meta = dict(lines=len(tasks), prompts=len(prompts), headers=len(headers), new_bytes=args.new_bytes,
                threads=args.threads,
                command="python benchmarks/line_completion.py " + " ".join(argv or __import__("sys").argv[1:]))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(args.model, results, accuracy, meta))
    summary = dict(model=args.model, meta=meta, block_accuracy=accuracy, results=results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps({name: {k: r[k] for k in ("exact_match", "edit_similarity", "degeneration_rate",
                                               "header_degeneration_rate")
                             if k in r} for name, r in results.items()}))


def merge(paths, json_out, markdown_out):
    runs = [json.load(open(path)) for path in paths]
    first, seen = runs[0], set(runs[0]["results"])
    for path, run in zip(paths[1:], runs[1:]):
        same = {k: run["meta"][k] for k in ("lines", "prompts", "headers", "new_bytes")}
        if run["model"] != first["model"] or same != {k: first["meta"][k] for k in same}:
            raise ValueError(f"{path}: another model or other tasks than {paths[0]}; only runs of the same "
                             "model on the same --lines / --prompts / --headers / --new-bytes merge")
        if seen & set(run["results"]):
            raise ValueError(f"{path}: setting(s) {sorted(seen & set(run['results']))} are in an earlier run too")
        seen |= set(run["results"])
    results = {name: r for run in runs for name, r in run["results"].items()}
    accuracy = next((run["block_accuracy"] for run in runs if run["block_accuracy"]), None)
    meta = dict(first["meta"], command=" ; ".join(run["meta"]["command"] for run in runs))
    if markdown_out:
        with open(markdown_out, "w") as f:
            f.write(markdown(first["model"], results, accuracy, meta))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(dict(model=first["model"], meta=meta, block_accuracy=accuracy, results=results), f, indent=1)


if __name__ == "__main__":
    main()
