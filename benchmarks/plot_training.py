"""Loss curves of training runs from the Trainer's own log (trainer_state.json), one curve per run.

    python benchmarks/plot_training.py runs/default/checkpoint-800/trainer_state.json --out benchmarks/results/loss_curve.png
    python benchmarks/plot_training.py runs/sweep/{s,m,l}/checkpoint-250/trainer_state.json --labels s m l \
        --out benchmarks/results/size_sweep.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trainer_state", nargs="+")
    parser.add_argument("--labels", nargs="*", help="one per trainer_state (a legend is drawn when given)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="BLT-D training loss (L_clean + L_mask)")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.trainer_state):
        parser.error(f"{len(args.labels)} labels for {len(args.trainer_state)} runs")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    summary = {}
    for i, path in enumerate(args.trainer_state):
        history = json.load(open(path))["log_history"]
        points = [(h["step"], h["loss"]) for h in history if "loss" in h]
        label = args.labels[i] if args.labels else path
        ax.plot([s for s, _ in points], [v for _, v in points], label=label)
        summary[label] = dict(first=points[0], last=points[-1], logged=len(points))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    if args.labels:
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps(summary if args.labels else next(iter(summary.values()))))


if __name__ == "__main__":
    main()
