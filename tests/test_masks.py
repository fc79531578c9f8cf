"""Pure mask, patching and hashing functions: exhaustive small cases and transformers' reference."""

import torch
from transformers.models.blt import modeling_blt as hf

from blt_hf import masks
from blt_hf.modeling_fast_blt import hash_ngram_ids, positions_in_document
from blt_hf.patching import patch_starts_from_entropies


def test_causal_mask_terms():
    pos = torch.arange(5)[None]
    valid = torch.tensor([[False, True, True, True, True]])
    m = masks.causal_mask(pos, pos, valid, window=2)[0, 0]
    expected = torch.tensor([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]])
    assert torch.equal(m.long(), expected)
    doc = torch.tensor([[0, 0, 1, 1, 1]])
    m = masks.causal_mask(pos, pos, torch.ones_like(valid), None, doc, doc)[0, 0]
    assert not m[2:, :2].any() and m[4, 2:].all()


def test_block_diffusion_mask_docstring_example():
    order = torch.tensor([[0, 1, 2, 3, 2, 3]])
    start = torch.tensor([[0, 1, 2, 3, 2, 2]])
    block = torch.tensor([[-1, -1, -1, -1, 0, 0]])
    doc, valid = torch.zeros_like(order), torch.ones_like(order, dtype=torch.bool)
    s = dict(order=order, start=start, block=block, pos=order, doc=doc, valid=valid)
    m = masks.block_diffusion_mask(s, s)[0, 0].long()
    expected = torch.tensor([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1]])
    assert torch.equal(m, expected)


def test_block_rows_never_see_their_answers_or_other_blocks():
    g = torch.Generator().manual_seed(0)
    N, Bs = 30, 4
    starts = sorted(set(torch.randint(1, N, (10,), generator=g).tolist()))
    order = torch.cat([torch.arange(N)] + [torch.arange(s, s + Bs) for s in starts])[None]
    start = torch.cat([torch.arange(N)] + [torch.full((Bs,), s) for s in starts])[None]
    block = torch.cat([torch.full((N,), -1)] + [torch.full((Bs,), i) for i in range(len(starts))])[None]
    doc = (order >= 17).long()  # two packed documents
    s = dict(order=order, start=start, block=block, pos=order, doc=doc, valid=torch.ones_like(order, dtype=torch.bool))
    m = masks.block_diffusion_mask(s, s, 8)[0, 0]
    q_block, k_clean = block[0][:, None] >= 0, (block[0] < 0)[None, :]
    assert not (m & q_block & k_clean & (order[0][None, :] >= start[0][:, None])).any()  # no answers
    other_block = (block[0][:, None] != block[0][None, :]) & q_block & ~k_clean
    assert not (m & other_block).any()  # no other block
    assert not (m & (doc[0][:, None] != doc[0][None, :]) & k_clean).any()  # no other document
    assert not (m & ~q_block & ~k_clean).any()  # clean bytes never see blocks
    assert (m & q_block & ~other_block & ~k_clean).sum() == len(starts) * Bs * Bs  # blocks bidirectional


def test_decoder_latent_ids_alignment():
    # patches [0], [1 2 3], [4 5]; byte 6 would open a new patch
    starts_ext = torch.tensor([[1, 1, 0, 0, 1, 0, 1]], dtype=torch.bool)
    ids = starts_ext[:, :-1].long().cumsum(-1) - 1
    got = masks.decoder_latent_ids(ids, starts_ext[:, 1:])
    # non-final bytes of patch p read o_{p-1}; final bytes (complete patches) read o_p
    assert got.tolist() == [[0, 0, 0, 1, 1, 2]]


def test_patch_rule_matches_transformers():
    g = torch.Generator().manual_seed(0)
    for max_len in (None, 3):
        ent = torch.rand(4, 40, generator=g) * 3
        valid = torch.ones(4, 40, dtype=torch.bool)
        pos = positions_in_document(torch.zeros(4, 41, dtype=torch.long), torch.cat([valid, valid[:, :1] & False], 1))
        ours = patch_starts_from_entropies(ent, valid, pos, 1.5, max_len)[:, :40]
        for row in range(4):
            lengths = hf.BltPatcher.patch_lengths_from_entropies(ent[row:row + 1], 40, 4, 1.5)
            lengths = hf.process_patch_lengths(lengths, max_len)
            lengths = lengths[lengths > 0]
            expected = torch.zeros(40, dtype=torch.bool)
            expected[(lengths.cumsum(0) - lengths)[lengths.cumsum(0) - lengths < 40]] = True
            assert torch.equal(ours[row], expected)


def test_hash_ids_match_transformers_with_int64_wraparound():
    ids = torch.randint(0, 260, (2, 50), generator=torch.Generator().manual_seed(1))
    ours = hash_ngram_ids(ids, [3, 4, 8], 2, 500002)
    column = 0
    for f in range(2):
        for n in (3, 4, 8):
            expected = hf.byte_group_hash_function(ids, n, hf_primes()[f], 500002) + column * 500002
            assert torch.equal(ours[..., column], expected)
            column += 1


def hf_primes():
    return [1000000007, 5915587277]


def test_positions_restart_per_document():
    doc = torch.tensor([[0, 0, 1, 1, 1, 2]])
    valid = torch.tensor([[True, True, True, True, True, False]])
    assert positions_in_document(doc, valid).tolist() == [[0, 1, 0, 1, 2, 0]]


def test_additive_opens_rows_without_keys_and_keeps_the_rest():
    """A padding query's row (no allowed key) sees every key, so no row is all dtype-min: cast down to bf16
    (CUDA autocast does this to SDPA's fp32 mask) fp32's min becomes -inf, and a row of -inf has no softmax."""
    m = torch.tensor([[[[True, False, False], [False, False, False], [True, True, False]]]])
    a = masks.additive(m, torch.float32)
    low = torch.finfo(torch.float32).min
    assert torch.equal(a[0, 0], torch.tensor([[0, low, low], [0, 0, 0], [0, 0, low]]))
    assert torch.isfinite(a.to(torch.bfloat16)).any(-1).all()
    # The block-diffusion parts that share one softmax per block query keep their rows: a block query with
    # no prefix (a block at a document's start) sees only its own block, never the whole prefix instead.
    prefix = torch.tensor([[[[True, True, False], [False, False, False], [True, False, False]]]])  # 3 block rows
    own = torch.ones(1, 1, 1, 1, 3, dtype=torch.bool)  # one block of 3 sees itself
    d = masks.BlockDiffusionMask(m, prefix, own, 1, 3).additive(torch.float32)
    assert torch.equal(d.clean, a) and torch.equal(d.prefix[0, 0, 1], torch.full((3,), low))
    assert torch.equal(d.own, torch.zeros_like(d.own))
