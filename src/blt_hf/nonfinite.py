"""Non-finite gradients in training: stop at the first step that has them, leave everything needed to
replay that step, and replay it to name where the first NaN / inf appears.

Why: bf16 runs on an H200 (MODEL_CARD.md, "GPU session") produced finite losses but NaN gradients at
one step; gradient clipping then multiplies every gradient by max_norm / NaN, every trained weight
turns NaN, and Trainer went on for the whole budget, saving NaN checkpoints. Trainer has no such check
of its own (`logging_nan_inf_filter` only hides the logged loss). The step's model, batch and
random-number states (the BLT-D objective draws its noise from them) go to
`output_dir/nonfinite-step{N}[-rank{R}]/`, and `python -m blt_hf.nonfinite DIR` replays the step (with
the step's own noise on the device type it ran on), reporting the first module whose output (forward)
or gradient input (backward) is not finite.

    python -m blt_hf.nonfinite runs/x/nonfinite-step7 --device cuda --bf16 [--each-backend]
"""

import argparse
import json
from contextlib import nullcontext
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BATCH_FILE = "batch.safetensors"


def gradients_finite(model) -> bool:
    """One reduction and one host sync over every gradient."""
    norms = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return not norms or bool(torch.stack(norms).isfinite().all())


def nonfinite_parameters(model) -> list[str]:
    return [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]


def rng_states(device: torch.device) -> dict:
    states = {"cpu_rng_state": torch.random.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng_state"] = torch.cuda.get_rng_state(device)
    return states


def dump_step(model, inputs: dict, states: dict, directory, step: int, loss: float, autocast: str | None) -> dict:
    """Write the step's model (as it was before the step), batch, RNG states and a summary (nonfinite.json)
    to `directory` -> the summary."""
    directory = Path(directory)
    model.save_pretrained(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    save_file(tensors | states, directory / BATCH_FILE)
    summary = dict(step=step, loss=loss, autocast=autocast, device=str(next(model.parameters()).device),
                   parameters_with_nonfinite_gradients=nonfinite_parameters(model))
    (directory / "nonfinite.json").write_text(json.dumps(summary, indent=1))
    return summary


class NonFiniteGradientError(FloatingPointError):
    def __init__(self, message: str, directory: Path):
        super().__init__(message)
        self.directory = directory  # the saved step (dump_step)


def _has_nonfinite(values) -> bool:
    values = values if isinstance(values, tuple) else (values,)
    return any(isinstance(v, torch.Tensor) and v.is_floating_point() and not v.isfinite().all() for v in values)


def first_nonfinite(model, batch: dict, device: str, bf16: bool) -> dict:
    """Run the batch's forward and backward once (with its saved RNG states, so the BLT-D noise is the
    step's own), recording in order the modules whose forward outputs and whose gradients w.r.t. their
    inputs are not finite."""
    model.to(device).train()
    found = {"forward": [], "backward": []}

    def watch(name):
        def on_forward(module, args, out):
            if _has_nonfinite(out):
                found["forward"].append(name)

        def on_backward(module, grad_in, grad_out):
            if _has_nonfinite(grad_in):
                found["backward"].append(name)
        return on_forward, on_backward

    handles = []
    for name, module in model.named_modules():
        if name:  # the root returns the loss: its own check is the report's loss
            on_forward, on_backward = watch(name)
            handles += [module.register_forward_hook(on_forward), module.register_full_backward_hook(on_backward)]
    if "cuda_rng_state" in batch and device.startswith("cuda"):
        torch.cuda.set_rng_state(batch["cuda_rng_state"], device)
    torch.random.set_rng_state(batch["cpu_rng_state"])
    inputs = {k: v.to(device) for k, v in batch.items() if not k.endswith("rng_state")}  # ids, labels, a mask
    inputs.setdefault("labels", inputs["input_ids"])
    try:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    return dict(loss=float(loss.detach()), first_forward=found["forward"][:8], first_backward=found["backward"][:8],
                parameters_with_nonfinite_gradients=nonfinite_parameters(model))


def replay_each_backend(model, batch: dict, device: str, bf16: bool) -> dict:
    """`first_nonfinite` as training runs it ("ours": cuDNN left out of SDPA's choices when there is a
    backward, modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD), with PyTorch's own choice ("pytorch_default"),
    then with each SDPA backend alone: a kernel that breaks on one batch's shapes shows as the only backend
    whose gradients are not finite. A backend that cannot take these inputs reports its error instead."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from . import modeling_fast_blt

    reports = {"ours": first_nonfinite(model, batch, device, bf16)}
    guard = modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD
    modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD = False
    try:
        for name, backend in [("pytorch_default", None)] + [(b.name, b) for b in (
                SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION)]:
            model.zero_grad(set_to_none=True)
            try:
                with sdpa_kernel(backend) if backend is not None else nullcontext():
                    reports[name] = first_nonfinite(model, batch, device, bf16)
            except RuntimeError as err:  # "No available kernel": the backend does not take these inputs
                reports[name] = {"error": str(err).splitlines()[0]}
    finally:
        modeling_fast_blt.AVOID_CUDNN_IN_BACKWARD = guard
    return reports


def main(argv=None):
    from .modeling_fast_blt import FastBltForCausalLM

    p = argparse.ArgumentParser(description="Replay a training step that had non-finite gradients.")
    p.add_argument("directory", type=Path, help="an output_dir/nonfinite-step* directory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast, as a bf16 run trains")
    p.add_argument("--each-backend", action="store_true", help="also replay under each SDPA backend alone")
    a = p.parse_args(argv)
    model = FastBltForCausalLM.from_pretrained(a.directory, dtype=torch.float32)
    replay = replay_each_backend if a.each_backend else first_nonfinite
    report = replay(model, load_file(a.directory / BATCH_FILE), a.device, a.bf16)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
