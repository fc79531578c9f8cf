"""The entropy model (BLT's patcher) as a trainable causal byte LM, its threshold calibration,
and installation into a BLT checkpoint.

`FastBltEntropyModel` wraps `FastBltPatcher` under the attribute `patcher`, so its weights copy
one-to-one into `FastBltForCausalLM.model.patcher`. `calibrate_threshold` picks the global
entropy threshold that gives a target mean patch size on held-out bytes, measured with the
model's own patch rule (`patch_starts_from_entropies`, including the `max_patch_length` split).
`install_patcher` writes patcher, threshold and max patch length into a BLT model, so they are
saved with it.
"""

import copy
import math

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from . import masks
from .configuration_fast_blt import FastBltPatcherConfig
from .modeling_fast_blt import FastBltPatcher, FastBltPreTrainedModel, document_ids, positions_in_document
from .patching import patch_starts_from_entropies
from .sampling import entropy
from .tokenization_fast_blt import BOS_ID

DEFAULT_TARGET_PATCH_SIZE = 4.0  # paper: patches average 4 bytes
DEFAULT_MAX_PATCH_LENGTH = 8


class FastBltEntropyModel(PreTrainedModel):
    """Causal byte LM for the patcher; loss = mean next-byte cross-entropy over labels != -100."""

    config: FastBltPatcherConfig
    config_class = FastBltPatcherConfig
    base_model_prefix = "patcher"
    main_input_name = "input_ids"
    _no_split_modules = ["FastBltTransformerLayer"]
    _supports_sdpa = True
    # Rows are fixed-length packed bytes, so a per-batch mean already weighs every byte alike;
    # opting out of Trainer's num_items_in_batch keeps the loss one plain formula.
    accepts_loss_kwargs = False
    _init_weights = FastBltPreTrainedModel._init_weights

    def __init__(self, config: FastBltPatcherConfig):
        super().__init__(config)
        self.patcher = FastBltPatcher(config)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        # Packed rows hold several documents; attend within a document with positions restarting
        # at each BOS, exactly as the patcher runs inside FastBltModel.patch.
        valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        doc_ids = document_ids(input_ids, valid, BOS_ID)
        position_ids = positions_in_document(doc_ids, valid)
        mask = masks.causal_mask(position_ids, position_ids, valid, self.config.sliding_window, doc_ids, doc_ids)
        logits = self.patcher(input_ids, position_ids, mask).float()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


@torch.no_grad()
def byte_entropies(entropy_model, input_ids: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """(R, N) ids -> (R, N) next-byte entropies in nats."""
    entropy_model.eval()
    device = next(entropy_model.parameters()).device
    out = [entropy(entropy_model(input_ids[i:i + batch_size].to(device)).logits).cpu()
           for i in range(0, len(input_ids), batch_size)]
    return torch.cat(out)


def document_positions(input_ids: torch.Tensor) -> torch.Tensor:
    """(R, N) packed rows -> (R, N+1) positions inside each document, as `FastBltModel.patch` uses."""
    valid = torch.ones_like(input_ids, dtype=torch.bool)
    doc = document_ids(input_ids, valid, BOS_ID)
    return positions_in_document(torch.cat([doc, doc[:, -1:]], 1), F.pad(valid, (0, 1), value=False))


def mean_patch_size(entropies, positions, threshold: float, max_patch_length: int | None) -> float:
    """Bytes per patch under the model's patch rule (entropies (R, N), positions (R, N+1))."""
    valid = torch.ones_like(entropies, dtype=torch.bool)
    starts = patch_starts_from_entropies(entropies, valid, positions, threshold, max_patch_length)[:, :-1]
    return valid.sum().item() / starts.sum().item()


@torch.no_grad()
def model_patch_size(model, input_ids: torch.Tensor) -> float:
    """Mean patch size that a `FastBltForCausalLM` itself produces on packed rows (the check of record)."""
    inner = model.model
    valid = torch.ones_like(input_ids, dtype=torch.bool)
    doc_ids = document_ids(input_ids, valid, model.config.bos_token_id)
    patching = inner.patch(input_ids, valid, positions_in_document(doc_ids, valid), doc_ids)
    return input_ids.numel() / patching.starts.sum().item()


def calibrate_threshold(entropy_model, input_ids: torch.Tensor, target_patch_size: float = DEFAULT_TARGET_PATCH_SIZE,
                        max_patch_length: int | None = DEFAULT_MAX_PATCH_LENGTH, iterations: int = 50):
    """Bisect the global threshold so the mean patch size on `input_ids` (held-out rows) is the target.

    Mean patch size = bytes / patches over all rows, each packed document patched on its own (its
    BOS is a 1-byte patch, as in the model). It grows monotonically with the threshold (fewer
    entropies exceed it), from 1 (every byte a patch) up to at most `max_patch_length`, so
    bisection finds it. Returns (threshold, achieved size).
    """
    if max_patch_length is not None and target_patch_size >= max_patch_length:
        raise ValueError(f"target_patch_size {target_patch_size} must be < max_patch_length {max_patch_length}")
    ent, pos = byte_entropies(entropy_model, input_ids), document_positions(input_ids)
    lo, hi = 0.0, float(ent.max()) + 1.0  # at hi no entropy exceeds it: patches only split at max length
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_patch_size(ent, pos, mid, max_patch_length) < target_patch_size else (lo, mid)
    threshold = (lo + hi) / 2
    return threshold, mean_patch_size(ent, pos, threshold, max_patch_length)


def install_patcher(model, entropy_model, threshold: float, max_patch_length: int | None = DEFAULT_MAX_PATCH_LENGTH):
    """Put the entropy model into a `FastBltForCausalLM` (frozen), with its threshold; returns model."""
    if not math.isfinite(threshold):
        raise ValueError(f"patching threshold must be finite, got {threshold}")
    config = model.config
    config.patcher_config = FastBltPatcherConfig(**entropy_model.config.to_diff_dict())
    config.patching_mode, config.patch_in_forward = "entropy", True
    config.patching_threshold, config.max_patch_length = float(threshold), max_patch_length
    patcher = copy.deepcopy(entropy_model.patcher).to(next(model.parameters()).device).eval()
    model.model.patcher = patcher.requires_grad_(False)
    return model
