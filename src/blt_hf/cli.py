"""`blt-hf`: a thin command line over the package (convert, train, eval)."""

import argparse
import json
import sys


def _convert(args, rest):
    from .convert import convert_checkpoint

    out = convert_checkpoint(args.src, args.dst, to=args.to)
    print(f"wrote {out}")


def _train(args, rest):
    # Every flag goes to HfArgumentParser (ModelArguments, DataArguments, TrainingArguments).
    from .training import parse_args, run_training

    trainer, final = run_training(*parse_args(rest))
    if trainer.is_world_process_zero():
        print(f"saved {final}")


def _eval(args, rest):
    from .data import build_corpus
    from .evaluation import bits_per_byte
    from .modeling_fast_blt import FastBltForCausalLM

    model = FastBltForCausalLM.from_pretrained(args.model)
    if args.diffusion_block_size is not None:
        model.config.diffusion_block_size = args.diffusion_block_size
    split = build_corpus(args.data_dir, args.seq_len, args.validation_fraction, args.max_files)["validation"]
    rates = tuple(float(t) for t in args.mask_rates.split(",")) if args.mask_rates else ()
    result = bits_per_byte(model, split, args.batch_size, args.max_rows, rates)
    print(json.dumps(dict(model=args.model, block_size=model.config.diffusion_block_size, **result)))


def build_parser() -> argparse.ArgumentParser:
    from .data import DEFAULT_SEQ_LEN, DEFAULT_VALIDATION_FRACTION

    parser = argparse.ArgumentParser(prog="blt-hf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    ev.add_argument("--seq_len", type=int, default=DEFAULT_SEQ_LEN)
    ev.add_argument("--validation_fraction", type=float, default=DEFAULT_VALIDATION_FRACTION,
                    help="must match training so the split is the same held-out files")
    ev.add_argument("--max_files", type=int, default=None)
    ev.add_argument("--max_rows", type=int, default=None, help="evaluate only the first rows of the split")
    ev.add_argument("--batch_size", type=int, default=8)
    ev.add_argument("--mask_rates", default="0.25,0.5,0.75,1.0", help="fixed t values for masked-block bpb")
    ev.add_argument("--diffusion_block_size", type=int, default=None, help="override B (e.g. 0: next-byte only)")
    ev.set_defaults(func=_eval)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "train":
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    args.func(args, rest)


if __name__ == "__main__":
    sys.exit(main())
