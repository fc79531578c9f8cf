"""Write the held-out line-completion set (blt_hf.generation_quality) as JSONL for lm-eval.

  python examples/lm_eval/make_line_completion_jsonl.py --lines 100   # -> examples/lm_eval/line_completion.jsonl

Each record: `prompt` (up to 400 bytes before the line, plus its indentation) and `target` (the rest
of the line), from the standard-library files held out of training, as `blt-hf eval
--line_completion` uses them. The tasks in this folder read it (see README, "Evaluate with lm-eval").
"""

import argparse
import json
from pathlib import Path

from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import line_completion_tasks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--out", default=str(Path(__file__).with_name("line_completion.jsonl")))
    args = parser.parse_args(argv)
    _, held_out = split_documents(stdlib_documents())
    with open(args.out, "w", encoding="utf-8") as f:
        for task in line_completion_tasks(held_out, args.lines):
            # A 400-byte window can start inside a multi-byte character: drop that partial character.
            record = {"name": task.name, "line": task.line_number,
                      "prompt": task.prompt.decode("utf-8", errors="ignore"), "target": task.target.decode("utf-8")}
            f.write(json.dumps(record) + "\n")
    print(f"wrote {args.lines} lines to {args.out}")


if __name__ == "__main__":
    main()
