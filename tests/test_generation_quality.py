"""Generation-quality metrics on fixtures with known answers: mock models whose outputs we control."""

from types import SimpleNamespace

import pytest
import torch

from blt_hf import generation_quality as gq
from blt_hf.data import Document
from blt_hf.tokenization_fast_blt import BYTE_OFFSET


def test_metrics_on_known_strings():
    assert gq.edit_similarity("abcd", "abcd") == 1.0
    assert gq.edit_similarity("", "") == 1.0
    assert gq.edit_similarity("abcd", "abxy") == pytest.approx(0.5)  # 2 * 2 matches / 8 characters
    assert gq.edit_similarity("", "x") == 0.0
    assert gq.longest_run(b"") == 0
    assert gq.longest_run(b"ab  c    d") == 4
    assert gq.distinct_ngram_ratio(b"aaaaaa") == pytest.approx(1 / 3)  # 3 four-grams, one distinct
    assert gq.distinct_ngram_ratio(b"abcdef") == 1.0
    assert gq.is_degenerate(b"x" + b" " * 16) and not gq.is_degenerate(b"x" + b" " * 15)


SOURCE = "import os\n\n# a comment\ndef f(x):\n    return x + 1\n    \n    y = 2\n"


def test_line_tasks_skip_blank_and_comment_lines_and_end_with_indentation():
    tasks = gq.line_completion_tasks([Document("m.py", SOURCE), Document("notes.txt", SOURCE)], n=10)
    assert [(t.line_number, t.target) for t in tasks] == [(3, b"def f(x):"), (4, b"return x + 1"), (6, b"y = 2")]
    by_line = {t.line_number: t for t in tasks}
    assert by_line[4].prompt == b"import os\n\n# a comment\ndef f(x):\n    " and by_line[4].starts_file
    short = gq.line_completion_tasks([Document("m.py", SOURCE)], n=10, context_bytes=8)
    assert short[1].prompt == b"f f(x):\n    " and not short[1].starts_file  # 8 bytes of context + indentation
    assert [t.line_number for t in gq.line_completion_tasks([Document("m.py", SOURCE)], n=2)] == [3, 4]


class MockModel:
    """generate() appends the bytes `reply(prompt bytes)` says, one decoder call per byte."""

    def __init__(self, reply):
        self.reply, self.calls, self.prompts = reply, [], []

    def generate(self, ids, max_new_tokens, stop_strings=None, **kwargs):
        self.calls.append(dict(max_new_tokens=max_new_tokens, stop_strings=stop_strings, **kwargs))
        self.prompts.append(ids[0].tolist())
        new = self.reply(gq.to_bytes(ids[0]))[:max_new_tokens]
        if stop_strings and b"\n" in new:
            new = new[: new.index(b"\n") + 1]
        new_ids = torch.tensor([[b + BYTE_OFFSET for b in new]], dtype=torch.long).view(1, -1)
        n = torch.tensor([new_ids.shape[1]])
        return SimpleNamespace(sequences=torch.cat([ids, new_ids], 1), decoder_calls=n, global_calls=n // 4)


def test_line_completion_scores_a_model_we_control():
    tasks = gq.line_completion_tasks([Document("m.py", SOURCE)], n=10)
    answers = {b"def f(x):": b"def f(x):\nmore", b"return x + 1": b"return x + 2 and more", b"y = 2": b"\n"}
    model = MockModel(lambda prompt: answers[next(t.target for t in tasks if t.prompt.endswith(prompt[-20:]))])
    result = gq.line_completion(model, tasks, decoding="diffusion")
    expected_sim = (1.0 + gq.edit_similarity("return x + 2 and more", "return x + 1") + 0.0) / 3
    assert result.exact_match == pytest.approx(1 / 3)
    assert result.edit_similarity == pytest.approx(expected_sim)
    assert [p for _, p in result.predictions] == [b"def f(x):", b"return x + 2 and more", b""]
    assert all(c["stop_strings"] == ["\n"] and c["max_new_tokens"] == 64 and c["decoding"] == "diffusion"
               for c in model.calls)
    assert result.timing["generated_bytes"] == 10 + 21 + 1  # bytes returned, newline included


def test_degeneration_flags_runs_and_repetition():
    prompts = [("a.py", b"x = 1\n"), ("b.py", b"y = 2\n")]
    model = MockModel(lambda prompt: b"z = 3\n" + b" " * 20 if prompt.startswith(b"x") else b"abcdefgh")
    result = gq.degeneration(model, prompts, new_bytes=256)
    assert result.longest_runs == [20, 1]
    assert result.degeneration_rate == 0.5
    assert result.distinct_4gram == pytest.approx((gq.distinct_ngram_ratio(b"z = 3\n" + b" " * 20) + 1.0) / 2)
    assert all(c["eos_token_id"] is None for c in model.calls)


HEADERS = "class A:\n    def f(self):\n        pass\ndef g(x):  # one line\ndef h(a,\n      b):\n    def f(self):\n"


def test_function_headers_are_distinct_one_line_defs_sent_after_bos():
    docs = [Document("b.py", "def z():\n"), Document("a.py", HEADERS), Document("c.txt", "def t():\n")]
    headers = gq.function_header_prompts(docs, 10)
    # g has a comment after its colon, h spans two lines, t is not in a .py file
    assert headers == [("a.py", b"def f(self):"), ("b.py", b"def z():")]
    assert gq.function_header_prompts(docs, 1) == [("a.py", b"def f(self):")]
    model = MockModel(lambda prompt: b"\n" + b" " * 127 if prompt.endswith(b"z():") else b"\n    return 1\n")
    result = gq.degeneration(model, headers, new_bytes=gq.HEADER_NEW_BYTES, bos=True)
    assert result.longest_runs == [4, 127] and result.degeneration_rate == 0.5
    assert [c["max_new_tokens"] for c in model.calls] == [128, 128]
    assert model.prompts == [[gq.BOS_ID] + [b + BYTE_OFFSET for b in h] for _, h in headers]
    gq.degeneration(model, headers[:1])  # continuation prompts are cut from inside a file: no BOS
    assert model.prompts[-1] == [b + BYTE_OFFSET for b in headers[0][1]]


class MockBlockModel(torch.nn.Module):
    """Block path that is right exactly at block offset 0 and, elsewhere, always predicts a space."""

    def __init__(self, block_size=4):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(diffusion_block_size=block_size)

    def forward(self, input_ids, labels, diffusion_t):
        b, Bs = input_ids.shape[0], self.config.diffusion_block_size
        targets = (input_ids[:, : 3 * Bs] % 200 + BYTE_OFFSET).view(b, 3, Bs)
        targets[:, 2, 2:] = -100  # a block cut short by the end of its document
        g = torch.Generator().manual_seed(int(diffusion_t * 100))
        masked = (torch.rand(targets.shape, generator=g) < diffusion_t) & (targets >= 0)
        masked[:, 0, :] = True  # one fully masked block per row: revealed fraction 0
        pred = torch.full_like(targets, BYTE_OFFSET + ord(" "))
        pred[..., 0] = targets[..., 0]
        return SimpleNamespace(block_logits=torch.nn.functional.one_hot(pred.clamp(min=0), 260).float(),
                               block_targets=targets, block_masked=masked)


def test_block_accuracy_by_position_and_revealed_fraction():
    rows = torch.randint(40, 200, (3, 16), generator=torch.Generator().manual_seed(0))  # no space byte (32)
    acc = gq.block_accuracy(MockBlockModel(), rows, mask_rates=(0.5, 1.0), batch_size=2)
    assert acc["by_position"] == [1.0, 0.0, 0.0, 0.0]
    assert acc["by_revealed"][0] is not None and 0 < acc["by_revealed"][0] < 1  # offset 0 right, 1..3 wrong
    assert acc["target_space_share"] == 0.0
    assert acc["predicted_space_share"] == pytest.approx(1 - acc["overall"])  # every miss is a space
    with pytest.raises(ValueError, match="BLT-D"):
        gq.block_accuracy(MockBlockModel(block_size=0), rows)
