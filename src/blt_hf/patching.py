"""The entropy patch rule, one implementation for the full sequence (forward, training, the entropy
model's calibration) and for bytes appended to earlier ones (generation's incremental patching)."""

import torch
import torch.nn.functional as F


def patch_starts_from_entropies(entropies, valid, position_ids, threshold: float, max_patch_length: int | None):
    """(B, N) entropies -> (B, N+1) bool, True where a byte opens a patch (global threshold rule).

    The first two bytes of a document always open a patch (BOS is a patch of its own); a later
    byte i opens one when H(x_{i-1}) > threshold, so a boundary depends on earlier bytes only
    (patching is incremental). Column N answers the question for the byte that comes next,
    which tells whether the last patch is already complete. Patches longer than
    `max_patch_length` are split from their start. `position_ids` (B, N+1) are positions inside
    the document, including the slot after each row's last byte.
    Known difference: with `max_patch_length` set, transformers' port drops a boundary that falls
    right after the last byte (its `process_patch_lengths` deletes the empty trailing patch), so its
    logits at the last position can differ from ours there. Every other position follows the rule
    above in both, so we apply the same rule at the last one (what training sees).
    """
    valid_ext = F.pad(valid, (0, 1), value=False) | F.pad(valid, (1, 0), value=False)
    return patch_rule(entropies, valid_ext, position_ids, threshold, max_patch_length)[0]


def patch_rule(entropies, valid_ext, position_ids, threshold: float, max_patch_length: int | None, carried=None):
    """The rule of `patch_starts_from_entropies` on (B, N) entropies, valid_ext / position_ids (B, N+1).

    `carried` = (start, dist), each (B,), continues earlier bytes (incremental patching): whether column 0
    opens a patch was already decided with the byte before it (a BLT-D block may also have forced it),
    and `dist` is that byte's distance from the last entropy start, for the `max_patch_length` split.
    -> (starts (B, N+1) bool, dist (B, N+1) long: each column's distance from the last entropy start).
    """
    estart = valid_ext & ((position_ids <= 1) | F.pad(entropies > threshold, (1, 0), value=False))
    j = torch.arange(estart.shape[1], device=estart.device)
    last = torch.where(estart, j, -(1 << 40))  # columns before any start: never valid, their distance unused
    if carried is not None:
        estart[:, 0] = valid_ext[:, 0] & carried[0]
        last[:, 0] = torch.where(estart[:, 0], 0, -carried[1])
    dist = j - last.cummax(-1).values
    if max_patch_length is None:
        return estart, dist
    split = valid_ext & (dist % max_patch_length == 0)
    if carried is not None:
        split[:, 0] = False  # column 0's split, too, was decided with the byte before it
    return estart | split, dist
