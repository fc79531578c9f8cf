"""Decoding cost as the Fast BLT paper counts it (Section 5 and eq. 8), next to what blt_hf runs.

The paper's conventions, per generated sequence:
- AR BLT: one decoder pass per byte, one encoder + global pass per patch.
- BLT-D: one encoder + global pass per block, one decoder pass per denoising step.
- BLT-S: per cycle two encoder + global passes (draft, then verification) and k + 1 decoder passes
  (k draft steps, one verification).
- BLT-DV: per cycle two encoder + global passes and (denoising steps + 1) decoder passes.
Our caches merge some of this work: BLT-S drafts with the encoder and decoder only and runs the
global model at most once per cycle (only when a patch completes), and the encoder runs once per
appended chunk. `generate(..., return_dict_in_generate=True)` returns both: `decoder_calls`,
`global_calls`, `encoder_calls` (run) and `paper_decoder_calls`, `paper_global_calls` (counted as
the paper does, from `cycles`). Eq. 8 turns either into an estimated weight bandwidth.
"""

import torch


def paper_counts(decoding: str, decoder_calls, global_calls, cycles):
    """(decoder, encoder + global) passes as the paper counts them, per row."""
    if decoding in ("self_speculation", "diffusion_verify"):
        # the prompt's pass gives the first byte (one encoder + global pass), then two per cycle
        return decoder_calls, torch.where(cycles > 0, 2 * cycles - 1, 0)
    if decoding == "diffusion":
        return decoder_calls, cycles  # one per block (the first block's covers the prompt)
    return decoder_calls, global_calls  # AR: per patch, as we run it


def param_counts(model) -> dict:
    """Parameters per component; eq. 8 leaves out the hash-embedding tables and the entropy model."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    inner = model.model
    return dict(decoder=count(inner.local_decoder) + count(model.lm_head), encoder=count(inner.local_encoder),
                global_=count(inner.global_transformer), patcher=count(inner.patcher) if inner.patcher else 0,
                hash_tables=count(inner.encoder_hash_tok_embedding))


def bandwidth_gb(params: dict, decoder_calls, global_calls) -> float:
    """Fast BLT eq. 8: 2 bytes (16-bit weights) per weight per pass, in GB."""
    return 2 * (decoder_calls * params["decoder"] + global_calls * (params["encoder"] + params["global_"])) / 1e9


def generation_cost(model, out, decoding: str, new_bytes: int) -> dict:
    """Per-byte passes (ours and the paper's) and eq. 8 bandwidth for a return_dict generate output."""
    params, per = param_counts(model), max(new_bytes, 1)
    ours = dict(decoder=int(out.decoder_calls.sum()), global_=int(out.global_calls.sum()),
                encoder=int(out.encoder_calls.sum()))
    paper = dict(decoder=int(out.paper_decoder_calls.sum()), global_=int(out.paper_global_calls.sum()))
    return dict(
        bytes=new_bytes, cycles=int(out.cycles.sum()),
        decoder_calls_per_byte=ours["decoder"] / per, global_calls_per_byte=ours["global_"] / per,
        encoder_calls_per_byte=ours["encoder"] / per,
        paper_decoder_calls_per_byte=paper["decoder"] / per, paper_global_calls_per_byte=paper["global_"] / per,
        est_bandwidth_gb=bandwidth_gb(params, ours["decoder"], ours["global_"]),
        paper_est_bandwidth_gb=bandwidth_gb(params, paper["decoder"], paper["global_"]),
    )
