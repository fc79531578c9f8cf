"""Loss curve of a training run from the Trainer's own log (trainer_state.json).

    python benchmarks/plot_training.py runs/default/checkpoint-800/trainer_state.json --out benchmarks/results/loss_curve.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trainer_state")
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="BLT-D training loss (L_clean + L_mask)")
    args = parser.parse_args()
    history = json.load(open(args.trainer_state))["log_history"]
    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in points], [v for _, v in points])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps(dict(first=points[0], last=points[-1], logged=len(points))))


if __name__ == "__main__":
    main()
