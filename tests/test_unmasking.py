"""The BLT-D unmasking rules and the samplers, as pure tensor functions (exhaustive small cases)."""

import torch

from blt_hf import sampling


def test_confidence_rule_takes_all_above_alpha():
    conf = torch.tensor([[0.9, 0.2, 0.8, 0.75], [0.1, 0.6, 0.3, 0.2]])
    masked = torch.tensor([[True, True, False, True], [True, True, True, True]])
    got = sampling.unmask_confidence(conf, masked, alpha=0.7)
    # row 0: masked positions above 0.7 are 0 and 3 (2 is above but already filled);
    # row 1: none above 0.7 -> the single most confident masked position.
    assert got.tolist() == [[True, False, False, True], [False, True, False, False]]


def test_confidence_rule_fallback_ignores_filled_positions_and_ties_go_left():
    conf = torch.tensor([[0.99, 0.4, 0.4, 0.1]])
    masked = torch.tensor([[False, True, True, True]])
    assert sampling.unmask_confidence(conf, masked, 0.5).tolist() == [[False, True, False, False]]


def test_confidence_rule_full_row_selects_nothing():
    conf = torch.rand(2, 4)
    masked = torch.tensor([[False] * 4, [True, False, False, False]])
    assert sampling.unmask_confidence(conf, masked, 0.9).tolist() == [[False] * 4, [True, False, False, False]]


def test_entropy_bound_takes_longest_low_entropy_prefix():
    ent = torch.tensor([[0.5, 0.1, 2.0, 0.3], [3.0, 2.5, 0.05, 4.0]])
    masked = torch.tensor([[True, True, True, True], [True, True, False, True]])
    got = sampling.unmask_entropy_bound(ent, masked, gamma=1.0)
    # row 0: sorted 0.1, 0.3, 0.5 (sum 0.9 <= 1), + 2.0 exceeds -> positions 1, 3, 0.
    # row 1: position 2 is filled; the lowest masked (2.5) alone exceeds gamma but one is always taken.
    assert got.tolist() == [[True, True, False, True], [False, True, False, False]]


def test_entropy_bound_uses_the_plain_sum():
    ent = torch.tensor([[0.5, 0.5, 0.5]])
    masked = torch.ones(1, 3, dtype=torch.bool)
    assert sampling.unmask_entropy_bound(ent, masked, 1.0).tolist() == [[True, True, False]]
    assert sampling.unmask_entropy_bound(ent, masked, 1.5).tolist() == [[True, True, True]]


def test_one_step_and_dispatch():
    masked = torch.tensor([[True, False, True]])
    assert sampling.unmask_all(masked).tolist() == masked.tolist()
    conf, ent = torch.tensor([[0.1, 0.9, 0.8]]), torch.zeros(1, 3)
    assert sampling.select_positions("confidence", masked, conf, ent, 0.5, 1.0).tolist() == [[False, False, True]]
    assert sampling.select_positions("one_step", masked, conf, ent, 0.5, 1.0).tolist() == masked.tolist()


def test_greedy_sample_and_confidence():
    logits = torch.tensor([[[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]])
    ids, conf = sampling.sample(logits, do_sample=False)
    assert ids.tolist() == [[1, 0]]
    torch.testing.assert_close(conf, logits.softmax(-1).amax(-1))


def test_top_k_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert sampling.process_logits(logits, top_k=2).isfinite().tolist() == [[True, True, False, False]]
    assert sampling.process_logits(logits, top_p=0.7).isfinite().tolist() == [[True, True, False, False]]
    assert sampling.process_logits(logits, top_p=0.5).isfinite().tolist() == [[True, False, False, False]]
    torch.manual_seed(0)
    ids, _ = sampling.sample(logits.expand(64, 4), do_sample=True, top_k=2)
    assert set(ids.tolist()) <= {0, 1}


def test_entropy_matches_definition():
    logits = torch.randn(3, 5)
    p = logits.softmax(-1)
    torch.testing.assert_close(sampling.entropy(logits), -(p * p.log()).sum(-1))
