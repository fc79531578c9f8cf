"""One check of what `forward` and `generate` are given, so bad input fails here with a ValueError
naming the argument, its type / shape / dtype and what is expected, never deep inside torch.

Accepted: `input_ids` a (batch, length) tensor of any integer dtype (int32 works as int64), ids in
the vocabulary, at least one byte, no longer than the model's position range; `attention_mask`
None or a tensor of the same shape holding 0/1 (any integer or bool dtype), at least one real byte
per row. Generation also needs left padding (real bytes last).
"""

import torch


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def byte_ids(config, input_ids, attention_mask=None, *, left_padded: bool = False, infer_padding: bool = False):
    """-> (input_ids as int64 (B, N), valid (B, N) bool), or ValueError naming what is wrong. With
    `infer_padding` (generation) and no attention_mask, PAD ids are padding, as transformers' generate()
    infers its mask from pad_token_id (here PAD is never a byte, so no text is lost)."""
    if not isinstance(input_ids, torch.Tensor):
        raise ValueError(f"input_ids must be a torch.Tensor of byte ids with shape (batch, length), got "
                         f"{_describe(input_ids)} (a tokenizer with return_tensors='pt' gives one); inputs_embeds is "
                         "not supported because the hash n-gram embeddings need the ids")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer byte ids, got {_describe(input_ids)}")
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape (batch, length) with at least one byte, got "
                         f"{_describe(input_ids)}")
    input_ids = input_ids.long()
    bad = (input_ids < 0) | (input_ids >= config.vocab_size)
    if bad.any():
        raise ValueError(f"input_ids contains id {input_ids[bad][0].item()}, outside the vocabulary "
                         f"[0, {config.vocab_size})")
    if input_ids.shape[1] > config.max_bytes:
        raise ValueError(f"Token indices sequence length is longer than the specified maximum sequence length for "
                         f"this model ({input_ids.shape[1]} > {config.max_bytes}, config.max_position_embeddings)")
    pad = config.pad_token_id
    if attention_mask is None and infer_padding and pad is not None and (input_ids == pad).any():
        attention_mask = (input_ids != pad).long()
        empty = (~attention_mask.bool().any(-1)).nonzero().flatten()
        if len(empty):
            raise ValueError(f"input_ids row {empty[0].item()} holds only PAD ids ({pad}): every row needs at least "
                             "one real byte (a BOS at least)")
    valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else mask_bool(attention_mask,
                                                                                                 input_ids)
    if left_padded and (not valid[:, -1].all() or (valid.long().diff(dim=1) < 0).any()):
        raise ValueError("generate() needs left padding (attention_mask 0...0 1...1 per row); "
                         "set tokenizer.padding_side = 'left'")
    return input_ids, valid


def mask_bool(attention_mask, input_ids) -> torch.Tensor:
    """attention_mask -> bool (B, N), checked against input_ids' shape and for a real byte in every row."""
    if not isinstance(attention_mask, torch.Tensor):
        raise ValueError(f"attention_mask must be a torch.Tensor like input_ids, got {_describe(attention_mask)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape "
                         f"{tuple(input_ids.shape)}; they must match (1 = real byte, 0 = padding)")
    if attention_mask.is_floating_point() or attention_mask.is_complex() or not (
            (attention_mask == 0) | (attention_mask == 1)).all():
        raise ValueError(f"attention_mask must hold 0 (padding) and 1 (real byte), got {_describe(attention_mask)}")
    valid = attention_mask.bool()
    empty = (~valid.any(-1)).nonzero().flatten()
    if len(empty):
        raise ValueError(f"attention_mask row {empty[0].item()} is all zeros: every row needs at least one real "
                         "byte (a BOS at least)")
    return valid
