"""Tiny random configurations shared by the tests (CPU, a few ms per forward)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import BltConfig, BltForCausalLM

from blt_hf import FastBltConfig, FastBltForCausalLM


def tiny_blt_fields(cross_attn_k=2, hash_sizes=(3, 4, 5), enc_layers=1, enc_all=False, max_patch_length=None,
                    threshold=1.0, global_hidden=64, **overrides):
    """Fields valid for both transformers' BltConfig and FastBltConfig."""
    local = dict(hidden_size=32, num_attention_heads=2, cross_attn_k=cross_attn_k, hidden_size_global=global_hidden)
    fields = dict(
        vocab_size=260, cross_attn_k=cross_attn_k, encoder_hash_byte_group_size=list(hash_sizes),
        encoder_hash_byte_group_vocab=97, patching_threshold=threshold, max_patch_length=max_patch_length,
        patcher_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        encoder_config=dict(local, num_hidden_layers=enc_layers, cross_attn_all_layers=enc_all),
        decoder_config=dict(local, num_hidden_layers=2, intermediate_size=64),
        global_config=dict(hidden_size=global_hidden, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    )
    fields.update(overrides)
    return fields


def sharpen_patcher(model, ids, quantile=0.6):
    """Make the random patcher's entropies spread out and put the threshold inside their range,
    so patches have several bytes (a random patcher is near-uniform: every byte a patch)."""
    from blt_hf.sampling import entropy

    inner = model.model
    with torch.no_grad():
        inner.patcher.lm_head.weight.mul_(8.0)
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        from blt_hf import masks

        logits = inner.patcher(ids, pos, masks.causal_mask(pos, pos, torch.ones_like(ids, dtype=torch.bool)))
        threshold = entropy(logits).flatten().quantile(quantile).item()
    model.config.patching_threshold = threshold
    return threshold


def load_benchmark(name):
    """benchmarks/NAME.py as a module (benchmarks/ is not a package)."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_ids(batch, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 260, (batch, length), generator=g)
    ids[:, 0] = 1
    return ids


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are overhead-bound: one intra-op thread is faster, and far steadier on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields())).eval()
    sharpen_patcher(model, random_ids(1, 64))
    return model


def hf_pair(tmp_path, **kw):
    """A random transformers BltForCausalLM and the same weights loaded into FastBltForCausalLM."""
    torch.manual_seed(0)
    ref = BltForCausalLM(BltConfig(**tiny_blt_fields(**kw))).eval()
    ours = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(**kw)))
    ours.load_state_dict(ref.state_dict())
    ours.eval()
    ref.config.patching_threshold = sharpen_patcher(ours, random_ids(1, 64))
    ref.load_state_dict(ours.state_dict())
    return ref, ours


def save_tiny_blt_d(path, block_size: int, with_tokenizer: bool = False):
    """Save a tiny random BLT-D model (patcher with varying entropies) to `path`; returns path."""
    from blt_hf import FastBltTokenizer

    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=block_size))).eval()
    sharpen_patcher(model, random_ids(1, 64))
    model.save_pretrained(path)
    if with_tokenizer:
        FastBltTokenizer().save_pretrained(path)
    return path


class DraftRecorder:
    """Streamer with put_draft: records every denoising pass generate() reports."""

    def __init__(self):
        self.drafts, self.committed = [], []

    def put(self, value):
        self.committed.append(value.reshape(-1))

    def put_draft(self, value, masked, unmasked):
        self.drafts.append((value, masked, unmasked))

    def end(self):
        pass
