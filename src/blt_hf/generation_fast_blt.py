"""Generation for FastBltForCausalLM (placeholder: recompute-everything greedy/sampled AR).

To be replaced by the cached AR / BLT-D / BLT-S / BLT-DV decoders.
"""

import torch
from transformers import GenerationConfig


def default_generation_config(config) -> GenerationConfig:
    """Decoding defaults saved in generation_config.json: diffusion for a BLT-D model, else AR."""
    block = config.diffusion_block_size
    return GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False, max_new_tokens=128,
        decoding="diffusion" if block > 0 else "autoregressive", block_size=block or 8,
    )


@torch.no_grad()
def generate(model, input_ids, attention_mask=None, max_new_tokens=None, **kwargs):
    gen = model.generation_config
    max_new_tokens = max_new_tokens or gen.max_new_tokens
    ids = input_ids
    for _ in range(max_new_tokens):
        logits = model(ids, attention_mask=attention_mask).logits[:, -1]
        logits[:, :4] = float("-inf")
        nxt = logits.argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, torch.ones_like(nxt)], 1)
    return ids
