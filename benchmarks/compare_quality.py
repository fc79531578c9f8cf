"""Two line_completion.py runs on the same tasks, compared item by item (paired), per setting.

    python benchmarks/compare_quality.py A.json B.json [--settings ar blt_d_conf0.7_arfirst ...] [--against ar]

Edit similarity: the mean per-line difference B - A with its standard error (the lines are the same,
so the paired error is much smaller than either run's own spread). Degeneration (continuations and,
when both runs have them, function headers): how many items are degenerate in both, in A only, in
B only, so a change of one or two of 12 shows as what it is, with the exact two-sided sign test's
p-value on the items degenerate in one run only (McNemar's exact test: could A only vs B only be a
coin's split?). Both runs must have been made with `line_predictions` in their JSON (line_completion.py
writes them) and the same --lines / --prompts / --headers. `--against S` compares every setting of B
with setting S of A (A = B: BLT-D against AR on the same model).
"""

import argparse
import json
import math

from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import DEGENERATE_RUN, edit_similarity, line_completion_tasks


def line_scores(run: dict, setting: str, targets: list[str]) -> list[float]:
    predictions = run["results"][setting]["line_predictions"]
    scores = [edit_similarity(p.rstrip(), t) for p, t in zip(predictions, targets)]
    if abs(sum(scores) / len(scores) - run["results"][setting]["edit_similarity"]) > 1e-9:
        raise ValueError(f"{run['model']} / {setting}: the predictions do not give the run's own edit similarity "
                         "against these lines (another corpus or another --lines?)")
    return scores


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of b - a and its standard error."""
    d = [y - x for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / max(len(d) - 1, 1)
    return mean, math.sqrt(var / len(d))


def discordant(a_runs: list[int], b_runs: list[int]) -> tuple[int, int, int]:
    """(degenerate in both, in A only, in B only)."""
    a = [r >= DEGENERATE_RUN for r in a_runs]
    b = [r >= DEGENERATE_RUN for r in b_runs]
    return (sum(x and y for x, y in zip(a, b)), sum(x and not y for x, y in zip(a, b)),
            sum(y and not x for x, y in zip(a, b)))


def sign_test(a_only: int, b_only: int) -> float:
    """Exact two-sided sign test: the probability, if each discordant item were A's or B's with even odds,
    of a split at least as uneven as (a_only, b_only)."""
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def degenerate_cell(a_runs: list[int], b_runs: list[int]) -> str:
    both, a_only, b_only = discordant(a_runs, b_runs)
    return f"{both} / {a_only} / {b_only} (p {sign_test(a_only, b_only):.2f})"


def compare(a: dict, b: dict, settings: list[str], against: str | None = None) -> list[str]:
    if a["meta"]["lines"] != b["meta"]["lines"]:
        raise SystemExit(f"the runs completed different lines: {a['meta']['lines']} vs {b['meta']['lines']}")
    tasks = line_completion_tasks(split_documents(stdlib_documents())[1], a["meta"]["lines"])
    targets = [t.target.decode("utf-8", "replace").rstrip() for t in tasks]
    title = (f"A = `{a['model']}`, B = `{b['model']}`; {len(tasks)} lines, {a['meta']['prompts']} continuations, "
             f"{a['meta'].get('headers', 0)} headers" + (f"; every B setting against A's `{against}`" if against else ""))
    split = "both / A only / B only (sign test)"
    out = [title, "", "| setting | edit sim A | edit sim B | B - A (paired s.e.) | "
           f"continuations degenerate: {split} | headers degenerate: {split} |",
           "|---|---:|---:|---:|---:|---:|"]
    for name in settings:
        base = against or name
        ra, rb = a["results"][base], b["results"][name]
        mean, se = paired(line_scores(a, base, targets), line_scores(b, name, targets))
        cont = degenerate_cell(ra.get("longest_runs", []), rb.get("longest_runs", []))
        head = degenerate_cell(ra.get("header_longest_runs", []), rb.get("header_longest_runs", []))
        out.append(f"| {name} | {ra['edit_similarity']:.3f} | {rb['edit_similarity']:.3f} | {mean:+.3f} ({se:.3f}) | "
                   f"{cont} | {head} |")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--settings", nargs="*")
    p.add_argument("--against", help="compare B's settings with this one setting of A")
    args = p.parse_args(argv)
    a, b = (json.load(open(path)) for path in (args.a, args.b))
    settings = args.settings or [name for name in b["results"] if args.against or name in a["results"]]
    print("\n".join(compare(a, b, settings, args.against)))


if __name__ == "__main__":
    main()
