"""benchmarks/line_completion.py --merge: runs of one model made in separate processes join into one."""

import json

import pytest

from conftest import load_benchmark

TIMING = dict(bytes_per_s=10.0, decoder_calls_per_byte=1.0, global_calls_per_byte=0.2)
ACCURACY = dict(mask_rates=[1.0], overall=0.5, predicted_space_share=0.1, target_space_share=0.1,
                by_position=[0.6, 0.4], by_revealed=[0.5, None, None, None])


@pytest.fixture(scope="module")
def line_completion():
    return load_benchmark("line_completion")


def run(tmp_path, name, settings, model="m", lines=3, accuracy=None):
    results = {s: dict(exact_match=0.5, edit_similarity=0.25, line_timing=TIMING, line_samples=[]) for s in settings}
    meta = dict(lines=lines, prompts=1, headers=0, new_bytes=32, threads=1, command=f"run {name}")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(dict(model=model, meta=meta, block_accuracy=accuracy, results=results)))
    return str(path)


def test_merge_joins_settings_in_order_and_keeps_block_accuracy(line_completion, tmp_path):
    a = run(tmp_path, "a", ["ar"], accuracy=None)
    b = run(tmp_path, "b", ["blt_d", "blt_d_end"], accuracy=ACCURACY)
    out, md = tmp_path / "merged.json", tmp_path / "merged.md"
    line_completion.main(["--merge", a, b, "--json", str(out), "--markdown", str(md)])
    merged = json.loads(out.read_text())
    assert list(merged["results"]) == ["ar", "blt_d", "blt_d_end"]
    assert merged["block_accuracy"] == ACCURACY
    assert merged["meta"]["command"] == "run a ; run b"
    assert "| blt_d_end |" in md.read_text() and "| accuracy | 0.600 | 0.400 |" in md.read_text()


@pytest.mark.parametrize("other", [dict(settings=["ar"]), dict(settings=["x"], model="other"),
                                   dict(settings=["x"], lines=4)])
def test_merge_refuses_repeated_settings_other_models_or_other_tasks(line_completion, tmp_path, other):
    a = run(tmp_path, "a", ["ar"])
    b = run(tmp_path, "b", **other)
    with pytest.raises(ValueError, match="earlier run|another model"):
        line_completion.main(["--merge", a, b, "--json", str(tmp_path / "merged.json")])
