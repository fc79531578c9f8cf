"""Each decoder's control flow on a mock next-byte head, independent of what real weights predict.

The output head is replaced by one that always ranks the same byte first, so every draft is
accepted, every block fills in one pass, and the counts each decoder must produce are known in
closed form: commits, cycles, calls, the max_new_tokens budget, EOS and padding."""

import pytest
import torch
from conftest import random_ids, tiny_blt_fields
from torch import nn

from blt_hf import FastBltConfig, FastBltForCausalLM

pytestmark = pytest.mark.usefixtures("one_thread")
BYTE = 104  # the id the mock head always prefers


class ConstantHead(nn.Module):
    """Logits that rank `favourite` first by a wide margin, whatever the decoder state."""

    def __init__(self, vocab, favourite):
        super().__init__()
        self.register_buffer("row", torch.where(torch.arange(vocab) == favourite, 10.0, 0.0))

    def forward(self, h):
        return self.row.to(h.dtype).expand(*h.shape[:-1], -1)


def mock_model(favourite=BYTE, block=4):
    torch.manual_seed(0)
    model = FastBltForCausalLM(FastBltConfig(**tiny_blt_fields(diffusion_block_size=block))).eval()
    model.lm_head = ConstantHead(model.config.vocab_size, favourite)
    return model


def run(model, n, decoding, **kw):
    return model.generate(random_ids(2, 5, seed=1), max_new_tokens=n, do_sample=False, eos_token_id=2,
                          decoding=decoding, return_dict_in_generate=True, **kw)


@pytest.mark.parametrize("n", [1, 6, 11])
def test_autoregressive_commits_one_byte_per_cycle(n):
    out = run(mock_model(), n, "autoregressive")
    assert (out.sequences[:, 5:] == BYTE).all() and out.sequences.shape[1] == 5 + n
    assert (out.cycles == n).all() and (out.decoder_calls == n).all()


@pytest.mark.parametrize("n,k", [(1, 4), (9, 4), (10, 3), (13, 8)])
def test_self_speculation_accepts_every_draft_and_keeps_the_budget(n, k):
    out = run(mock_model(), n, "self_speculation", draft_length=k)
    assert (out.sequences[:, 5:] == BYTE).all() and out.sequences.shape[1] == 5 + n
    assert torch.equal(out.accepted_bytes, out.drafted_bytes)  # nothing rejected, no rollback
    cycles = 1 + -(-(n - 1) // (k + 1))  # the prompt's byte, then k drafted + 1 free byte per cycle
    assert (out.cycles == cycles).all() and (out.accepted_bytes == n - cycles).all()


@pytest.mark.parametrize("n", [1, 4, 10])
def test_diffusion_fills_each_block_in_one_pass(n):
    out = run(mock_model(), n, "diffusion", block_size=4, confidence_threshold=0.9)
    assert (out.sequences[:, 5:] == BYTE).all() and out.sequences.shape[1] == 5 + n
    blocks = -(-n // 4)
    assert (out.cycles == blocks).all() and (out.decoder_calls == blocks).all() and (out.global_calls == blocks).all()


@pytest.mark.parametrize("n", [1, 7, 12])
def test_diffusion_verify_accepts_every_drafted_block(n):
    out = run(mock_model(), n, "diffusion_verify", block_size=4, unmasking="one_step")
    assert (out.sequences[:, 5:] == BYTE).all() and out.sequences.shape[1] == 5 + n
    assert torch.equal(out.accepted_bytes, out.drafted_bytes)
    assert (out.cycles == 1 + -(-(n - 1) // 5)).all()  # B = 4 drafted + 1 free byte per cycle


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_eos_ends_every_row_after_one_byte_and_pads(decoding):
    out = run(mock_model(favourite=2), 9, decoding, **({"unmasking": "one_step"} if "diffusion" in decoding else {}))
    assert out.sequences.shape[1] == 6  # all rows stopped: trimmed to the longest
    assert (out.sequences[:, 5] == 2).all()
