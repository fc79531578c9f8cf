"""`blt-hf`: a thin command line over the package (convert; later generate / train / eval)."""

import argparse
import sys


def _convert(args):
    from .convert import convert_checkpoint

    out = convert_checkpoint(args.src, args.dst, to=args.to)
    print(f"wrote {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blt-hf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert a checkpoint between blt_hf and transformers' BLT")
    convert.add_argument("src", help="checkpoint directory (ours, or transformers' BltForCausalLM)")
    convert.add_argument("dst", help="output directory")
    convert.add_argument("--to", choices=["transformers", "fast_blt"], default="transformers",
                         help="transformers: write a BltForCausalLM directory; fast_blt: write ours")
    convert.set_defaults(func=_convert)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
