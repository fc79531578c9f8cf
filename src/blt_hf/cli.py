"""`blt-hf`: a thin command line over the package (generate, convert, train, eval).

Ordinary mistakes (a missing or broken model directory, a bad value, Ctrl-C, a closed pipe) end
with one line on stderr and a non-zero exit code (130 for Ctrl-C), never a traceback.
"""

import argparse
import json
import os
import sys

EXTRAS = {"datasets": "train", "matplotlib": "bench"}  # optional dependency -> the extra that installs it


def _convert(args, rest):
    from .convert import convert_checkpoint

    if not os.path.isfile(os.path.join(args.src, "config.json")):
        raise SystemExit(f"blt-hf convert: no model at {args.src} (no config.json there)")
    out = convert_checkpoint(args.src, args.dst, to=args.to)
    print(f"wrote {out}")


def _train(args, rest):
    # Every flag goes to HfArgumentParser (ModelArguments, DataArguments, TrainingArguments).
    from .training import parse_args, run_training

    trainer, final = run_training(*parse_args(rest, prog="blt-hf train"))
    if trainer.is_world_process_zero():
        print(f"saved {final}")


def _eval(args, rest):
    from .data import build_corpus
    from .evaluation import bits_per_byte
    rates = _mask_rates(args.mask_rates)
    model = _load_model(args.model, "eval")
    if args.diffusion_block_size is not None:
        model.config.diffusion_block_size = args.diffusion_block_size
    if args.line_completion:
        return print(json.dumps(_line_completion(model, args)))
    split = build_corpus(args.data_dir, args.seq_len, args.validation_fraction, args.max_files)["validation"]
    result = bits_per_byte(model, split, args.batch_size, args.max_rows, rates, progress=True)
    print(json.dumps(dict(model=args.model, block_size=model.config.diffusion_block_size, **result)))


def _mask_rates(text) -> tuple:
    try:
        rates = tuple(float(t) for t in text.split(",")) if text else ()
    except ValueError:
        raise SystemExit(f"blt-hf eval: --mask_rates must be comma-separated numbers in (0, 1], got {text!r}")
    if any(not 0 < t <= 1 for t in rates):
        raise SystemExit(f"blt-hf eval: every --mask_rates value must be in (0, 1] (a masking probability), got {text}")
    return rates


def _line_completion(model, args) -> dict:
    """Line completion on held-out files for each --settings name (see blt_hf.generation_quality)."""
    from .data import split_documents, stdlib_documents, text_documents
    from .generation_quality import SETTINGS, line_completion, line_completion_tasks

    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"blt-hf eval: unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    docs = stdlib_documents(args.max_files) if args.data_dir is None else text_documents(args.data_dir,
                                                                                         max_files=args.max_files)
    tasks = line_completion_tasks(split_documents(docs, args.validation_fraction)[1], args.line_completion)
    out = dict(model=args.model, lines=len(tasks))
    for name in names:
        r = line_completion(model.eval(), tasks, **SETTINGS[name])
        out[name] = dict(exact_match=r.exact_match, edit_similarity=r.edit_similarity, **r.timing)
    return out


# generate flags passed to model.generate only when given: the rest come from the model's generation_config.
_GENERATE_KNOBS = ("decoding", "max_new_tokens", "block_size", "unmasking", "confidence_threshold",
                   "entropy_bound", "draft_length", "do_sample", "temperature", "top_p", "unmasking_fallback",
                   "first_byte_from_ar", "repatch_blocks")


def _load_model(path, command):
    from safetensors import SafetensorError
    from transformers.utils import logging

    from . import DEFAULT_MODEL_PATH
    from .modeling_fast_blt import FastBltForCausalLM

    if not os.path.isfile(os.path.join(path, "config.json")):
        hint = ("the default model is not in this installation (it ships as blt_hf/default_model)"
                if os.path.abspath(path) == os.path.abspath(DEFAULT_MODEL_PATH) else "no config.json there")
        how = "Pass --model DIR" if command == "generate" else "Give"
        raise SystemExit(f"blt-hf {command}: no model at {path}: {hint}. {how} a directory written by "
                         "save_pretrained or `blt-hf train`.")
    logging.disable_progress_bar()  # a 0.1 s load needs no progress bar
    try:
        return FastBltForCausalLM.from_pretrained(path).eval()
    except (OSError, ValueError, SafetensorError) as err:  # truncated or corrupt files
        raise SystemExit(f"blt-hf {command}: cannot load the model at {path}: {str(err).splitlines()[0]}")


def _prompt_ids(prompt: str):
    """BOS + the prompt's bytes. argv is decoded with surrogateescape, so os.fsencode gives back the exact
    bytes typed, valid UTF-8 or not; stdin ('-') is read as bytes. A byte model takes any bytes."""
    import torch

    from .tokenization_fast_blt import BOS_ID, BYTE_OFFSET

    data = sys.stdin.buffer.read() if prompt == "-" else os.fsencode(prompt)
    return torch.tensor([[BOS_ID] + [b + BYTE_OFFSET for b in data]])


def _generate(args, rest):
    import time

    import torch
    from transformers import TextStreamer

    from . import DEFAULT_MODEL_PATH
    from .generation_fast_blt import resolve_options
    from .show_steps import StepPrinter, summary_line
    from .tokenization_fast_blt import FastBltTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _load_model(args.model or DEFAULT_MODEL_PATH, "generate")
    tokenizer = FastBltTokenizer()
    ids = _prompt_ids(args.prompt)
    kwargs = {k: getattr(args, k) for k in _GENERATE_KNOBS if getattr(args, k) is not None}
    try:
        o, _ = resolve_options(model, ids.shape[1], None, dict(kwargs))
    except (ValueError, TypeError) as err:
        raise SystemExit(f"blt-hf generate: {err}")
    streamer = None
    if args.show_steps:
        if o.decoding in ("diffusion", "diffusion_verify"):
            streamer = StepPrinter(verify=o.decoding == "diffusion_verify")
        else:  # no table to draw: the text and the summary line only
            print(f"--show-steps: decoding={o.decoding} has no denoising passes to draw", file=sys.stderr)
    elif args.stream:
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    model.generate(ids, **{**kwargs, "max_new_tokens": min(8, o.max_new_tokens)})  # warm-up: first-call overheads
    if args.seed is not None:
        torch.manual_seed(args.seed)
    start = time.perf_counter()
    out = model.generate(ids, streamer=streamer, return_dict_in_generate=True, **kwargs)
    seconds = time.perf_counter() - start
    new = out.sequences[0, ids.shape[1]:]
    if not args.stream or args.show_steps:
        print(tokenizer.decode(new, skip_special_tokens=True))
    print(summary_line(o, len(new), seconds, out))


def _int_at_least(low: int):
    """An argparse type: a whole number >= low (argparse names the flag in its error)."""
    def parse(text) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1)


def build_parser() -> argparse.ArgumentParser:
    from .data import DEFAULT_SEQ_LEN, DEFAULT_VALIDATION_FRACTION
    from .generation_config_fast_blt import DECODINGS, UNMASKING
    from .sampling import FALLBACKS

    parser = argparse.ArgumentParser(prog="blt-hf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="continue a prompt with the shipped model (or --model DIR)")
    gen.add_argument("prompt", help="text to continue ('-' reads stdin)")
    gen.add_argument("--model", default=None, help="checkpoint directory (default: the shipped blt_hf/default_model)")
    gen.add_argument("--decoding", choices=DECODINGS,
                     default=None, help="default: the model's generation_config (BLT-D for a BLT-D model)")
    gen.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=128, help="new bytes (default 128)")
    gen.add_argument("--block-size", dest="block_size", type=int, default=None, help="BLT-D / BLT-DV block (bytes)")
    gen.add_argument("--unmasking", choices=UNMASKING, default=None,
                     help="BLT-D / BLT-DV rule: which masked bytes each pass fills")
    gen.add_argument("--confidence-threshold", dest="confidence_threshold", type=float, default=None,
                     help="confidence rule's alpha (paper: 0.5 / 0.7)")
    gen.add_argument("--entropy-bound", dest="entropy_bound", type=float, default=None,
                     help="entropy-bound rule's gamma in nats (paper: 0.8 / 1.0)")
    gen.add_argument("--draft-length", dest="draft_length", type=int, default=None, help="BLT-S drafted bytes k")
    gen.add_argument("--unmasking-fallback", dest="unmasking_fallback", choices=FALLBACKS,
                     default=None, help="confidence rule: which byte to fill when none passes the threshold")
    gen.add_argument("--first-byte-from-ar", dest="first_byte_from_ar", action=argparse.BooleanOptionalAction,
                     default=None, help="BLT-D: take each block's first byte from the next-byte head")
    gen.add_argument("--repatch-blocks", dest="repatch_blocks", action=argparse.BooleanOptionalAction,
                     default=None, help="BLT-D: re-decide the forced patch boundary at each block start after "
                                        "commit (the paper's Algorithm 1)")
    gen.add_argument("--do-sample", dest="do_sample", action="store_true", default=None,
                     help="sample (with --temperature / --top-p) instead of greedy")
    gen.add_argument("--temperature", type=float, default=None)
    gen.add_argument("--top-p", dest="top_p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None, help="seed torch's RNG (sampling)")
    gen.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (>= 1)")
    view = gen.add_mutually_exclusive_group()
    view.add_argument("--stream", action="store_true", help="print the text as it is committed")
    view.add_argument("--show-steps", dest="show_steps", action="store_true",
                      help="draw every denoising pass: how each block's masked bytes are filled")
    gen.set_defaults(func=_generate)

    convert = sub.add_parser("convert", help="convert a checkpoint between blt_hf and transformers' BLT")
    convert.add_argument("src", help="checkpoint directory (ours, or transformers' BltForCausalLM)")
    convert.add_argument("dst", help="output directory")
    convert.add_argument("--to", choices=["transformers", "fast_blt"], default="transformers",
                         help="transformers: write a BltForCausalLM directory; fast_blt: write ours")
    convert.set_defaults(func=_convert)

    train = sub.add_parser("train", add_help=False,
                           help="train / fine-tune with the HF Trainer; flags as examples/train.py "
                                "(`blt-hf train --help` lists them)")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="bits per byte on the validation split (next-byte and masked-block)")
    ev.add_argument("model", help="checkpoint directory")
    ev.add_argument("--data_dir", default=None, help="directory of text files (default: Python stdlib corpus)")
    ev.add_argument("--seq_len", type=_int_at_least(2), default=DEFAULT_SEQ_LEN)
    ev.add_argument("--validation_fraction", type=float, default=DEFAULT_VALIDATION_FRACTION,
                    help="must match training so the split is the same held-out files")
    ev.add_argument("--max_files", type=_positive_int, default=None)
    ev.add_argument("--max_rows", type=_positive_int, default=None, help="evaluate only the first rows of the split")
    ev.add_argument("--batch_size", type=_positive_int, default=8)
    ev.add_argument("--mask_rates", default="0.25,0.5,0.75,1.0", help="fixed t values for masked-block bpb")
    ev.add_argument("--diffusion_block_size", type=int, default=None, help="override B (e.g. 0: next-byte only)")
    ev.add_argument("--line_completion", type=_int_at_least(0), default=0, metavar="N",
                    help="instead of bits per byte: complete N held-out code lines (exact match, edit similarity)")
    ev.add_argument("--settings", default="ar,blt_d_conf0.7",
                    help="decoder settings for --line_completion (names in blt_hf.generation_quality.SETTINGS)")
    ev.set_defaults(func=_eval)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "train":
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        args.func(args, rest)
    except KeyboardInterrupt:
        print(f"\nblt-hf {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured)
            pass
        return 141
    except ModuleNotFoundError as err:  # an optional dependency (pyproject's extras) is not installed
        if err.name not in EXTRAS:
            raise
        print(f"blt-hf {args.command}: error: needs the `{err.name}` package: pip install "
              f"'blt_hf[{EXTRAS[err.name]}]'", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:  # bad values and files (incl. a full disk): one line, no traceback
        print(f"blt-hf {args.command}: error: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
