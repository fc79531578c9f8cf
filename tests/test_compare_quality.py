"""benchmarks/compare_quality.py: paired comparisons of two line_completion.py runs, on runs with known answers."""

import math

import pytest

from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import edit_similarity, line_completion_tasks

from conftest import load_benchmark


@pytest.fixture(scope="module")
def compare_quality():
    return load_benchmark("compare_quality")


def test_paired_difference_and_discordant_counts(compare_quality):
    mean, se = compare_quality.paired([0.0, 0.5, 1.0], [1.0, 0.5, 1.0])
    assert mean == pytest.approx(1 / 3)
    assert se == pytest.approx(math.sqrt(((2 / 3) ** 2 + 2 * (1 / 3) ** 2) / 2 / 3))
    assert compare_quality.discordant([16, 20, 3, 1], [40, 2, 17, 0]) == (1, 1, 1)


def test_sign_test_against_enumerated_coin_flips(compare_quality):
    # the reference: enumerate all 2**n ways n fair coins can fall, count the splits at least as uneven
    def reference(a, b):
        n = a + b
        splits = [bin(m).count("1") for m in range(2 ** n)]
        return min(1.0, sum(abs(2 * k - n) >= abs(a - b) for k in splits) / 2 ** n)
    for a, b in [(5, 2), (2, 5), (0, 10), (3, 3), (1, 0), (0, 0), (7, 1)]:
        assert compare_quality.sign_test(a, b) == pytest.approx(reference(a, b))
    assert compare_quality.sign_test(5, 2) == pytest.approx(58 / 128)  # 2 * (1 + 7 + 21) / 2**7


def run(model, predictions, runs, target_es=None):
    es = sum(predictions[1]) / len(predictions[1]) if target_es is None else target_es
    return dict(model=model, meta=dict(lines=len(predictions[0]), prompts=len(runs), headers=0),
                results={"ar": dict(line_predictions=predictions[0], edit_similarity=es, longest_runs=runs)})


def test_compare_scores_each_line_against_its_target(compare_quality):
    tasks = line_completion_tasks(split_documents(stdlib_documents())[1], 4)
    targets = [t.target.decode() for t in tasks]
    wrong = ["x" * len(t) for t in targets]
    exact = [t + "  " for t in targets]  # trailing spaces are ignored, as line_completion() does
    a = run("a", (wrong, [edit_similarity(w, t) for w, t in zip(wrong, targets)]), [20, 1])
    b = run("b", (exact, [1.0] * 4), [1, 1])
    table = compare_quality.compare(a, b, ["ar"])
    row = table[-1].split("|")
    assert float(row[4].split()[0]) == pytest.approx(1 - a["results"]["ar"]["edit_similarity"], abs=1e-3)
    assert row[5].strip() == "0 / 1 / 0 (p 1.00)"
    within = compare_quality.compare(b, b, ["ar"], against="ar")
    assert within[-1].split("|")[4].split()[0] == "+0.000"
    # predictions that do not give the run's own score were made on other lines
    with pytest.raises(ValueError, match="own edit similarity"):
        compare_quality.compare(run("a", (wrong, [0.0]), [1], target_es=0.5), b, ["ar"])
