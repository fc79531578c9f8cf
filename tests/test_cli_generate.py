"""`blt-hf generate` on a tiny saved random BLT-D model, and the generation benchmark's pure helpers."""

import math
import re

import pytest
import torch
from conftest import DraftRecorder, load_benchmark, random_ids, save_tiny_blt_d

from blt_hf import FastBltForCausalLM, FastBltTokenizer, cli
from blt_hf.data import Document

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "def f(x):\n    "
PASS_LINE = re.compile(r"^\s+\d+\s+\d+\s.*│.*│ \+\d+( \(block ends\))?$")  # "block pass context│block│ +new"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(save_tiny_blt_d(tmp_path_factory.mktemp("tiny_bltd"), block_size=8))


def run_cli(capsys, *args):
    cli.main(["generate", *args])
    return capsys.readouterr().out


@pytest.mark.parametrize("decoding", [None, "autoregressive", "diffusion", "self_speculation", "diffusion_verify"])
def test_generate_prints_continuation_and_summary(capsys, model_dir, decoding):
    extra = ["--decoding", decoding] if decoding else []
    out = run_cli(capsys, PROMPT, "--model", model_dir, "--max-new-tokens", "12", *extra)
    *text, summary = out.rstrip("\n").split("\n")
    assert text, out
    assert summary.startswith(f"[{decoding or 'diffusion'}")  # a BLT-D model defaults to diffusion
    for field in ("bytes/s", "decoder calls/byte", "global calls/byte"):
        assert field in summary
    n = int(re.search(r"\] (\d+) bytes in", summary).group(1))
    assert 1 <= n <= 12
    assert ("acceptance" in summary) == (decoding in ("self_speculation", "diffusion_verify"))


@pytest.mark.parametrize("unmasking", ["one_step", "confidence"])
def test_show_steps_draws_one_line_per_pass(capsys, model_dir, unmasking):
    out = run_cli(capsys, PROMPT, "--model", model_dir, "--max-new-tokens", "16", "--decoding", "diffusion",
                  "--unmasking", unmasking, "--show-steps")
    passes = [line for line in out.split("\n") if PASS_LINE.match(line)]
    model = FastBltForCausalLM.from_pretrained(model_dir).eval()
    ids = FastBltTokenizer()(PROMPT, return_tensors="pt").input_ids
    ref = model.generate(ids, max_new_tokens=16, decoding="diffusion", unmasking=unmasking,
                         return_dict_in_generate=True)
    assert len(passes) == int(ref.decoder_calls[0]) > 0
    if unmasking == "one_step":
        assert len(passes) == 2  # 16 bytes = two blocks of 8, one pass each
    assert "\033[" not in out  # captured output is not a terminal: no colour codes
    last_block = passes[-1].split("│")[1]
    assert len(last_block) == 8 and "█" not in last_block  # the finished block, one character per byte


def test_show_steps_without_denoising_passes_prints_a_note_and_no_table(capsys, model_dir):
    assert cli.main(["generate", PROMPT, "--model", model_dir, "--max-new-tokens", "8", "--decoding",
                     "autoregressive", "--show-steps"]) == 0
    captured = capsys.readouterr()
    assert "has no denoising passes to draw" in captured.err
    assert "block" not in captured.out and captured.out.rstrip("\n").split("\n")[-1].startswith("[autoregressive")


def test_show_steps_marks_blocks_ended_early(capsys, model_dir):
    args = ("--max-new-tokens", "16", "--decoding", "diffusion", "--unmasking-fallback", "end_block",
            "--first-byte-from-ar")
    out = run_cli(capsys, PROMPT, "--model", model_dir, *args, "--show-steps")
    passes = [line for line in out.split("\n") if PASS_LINE.match(line)]
    model = FastBltForCausalLM.from_pretrained(model_dir).eval()
    ids = FastBltTokenizer()(PROMPT, return_tensors="pt").input_ids
    ref = model.generate(ids, max_new_tokens=16, decoding="diffusion", unmasking_fallback="end_block",
                         first_byte_from_ar=True, return_dict_in_generate=True)
    assert len(passes) == int(ref.decoder_calls[0])
    ended = [i for i, line in enumerate(passes) if line.endswith("(block ends)")]
    assert 0 < len(ended) < int(ref.cycles[0]), "some blocks, not all, were cut (the random model is unsure)"
    for i in ended:  # a pass that decided nothing, and the last of its block
        assert passes[i].endswith("│ +0 (block ends)")
        assert i + 1 == len(passes) or passes[i + 1].split()[1] == "1"


def test_show_steps_reports_verification(capsys, model_dir):
    out = run_cli(capsys, PROMPT, "--model", model_dir, "--max-new-tokens", "10", "--decoding", "diffusion_verify",
                  "--unmasking", "one_step", "--show-steps")
    assert "verified: kept" in out


def test_stream_prints_the_same_text(capsys, model_dir):
    plain = run_cli(capsys, PROMPT, "--model", model_dir, "--max-new-tokens", "12", "--decoding", "autoregressive")
    streamed = run_cli(capsys, PROMPT, "--model", model_dir, "--max-new-tokens", "12", "--decoding",
                       "autoregressive", "--stream")
    assert streamed.rsplit("\n", 2)[0] == plain.rsplit("\n", 2)[0]  # text before the summary line


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no model at .*--model DIR"):
        cli.main(["generate", "hello", "--model", str(tmp_path / "nothing")])


def test_bad_option_is_a_clear_error(model_dir):
    with pytest.raises(SystemExit, match="`block_size` must be >= 1"):
        cli.main(["generate", "hello", "--model", model_dir, "--block-size", "0"])


def test_non_utf8_prompt_is_generated_from_its_exact_bytes(capsys, model_dir):
    import os

    prompt = os.fsdecode(b"caf\xe9 = 1\n")  # how Python hands a Latin-1 argv to the program
    assert cli.main(["generate", prompt, "--model", model_dir, "--max-new-tokens", "4"]) == 0
    assert "bytes in" in capsys.readouterr().out


@pytest.mark.parametrize("threads", ["-1", "0", "two"])
def test_bad_thread_count_is_one_line(capsys, model_dir, threads):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "x", "--model", model_dir, "--threads", threads])
    assert exit_info.value.code == 2 and "must be a whole number >= 1" in capsys.readouterr().err


def test_ctrl_c_and_closed_pipe_end_quietly(capsys, model_dir, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(FastBltForCausalLM, "generate", interrupt)
    assert cli.main(["generate", "x", "--model", model_dir, "--stream"]) == 130
    assert "interrupted" in capsys.readouterr().err

    def closed(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(FastBltForCausalLM, "generate", closed)
    assert cli.main(["generate", "x", "--model", model_dir]) == 141


def test_missing_and_broken_models_are_one_line(tmp_path, model_dir, capsys):
    import shutil

    for command in (["eval", str(tmp_path / "nothing")], ["convert", str(tmp_path / "nothing"), str(tmp_path / "o")]):
        with pytest.raises(SystemExit, match="no model at"):
            cli.main(command)
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(SystemExit, match="cannot load the model at"):
        cli.main(["generate", "x", "--model", str(broken)])


@pytest.mark.parametrize("flag,value,message", [("--batch_size", "0", ">= 1"), ("--max_rows", "0", ">= 1"),
                                                ("--seq_len", "1", ">= 2"), ("--line_completion", "-1", ">= 0")])
def test_eval_sizes_out_of_range_name_the_flag(capsys, model_dir, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", model_dir, flag, value])
    assert exit_info.value.code == 2 and f"argument {flag}: must be a whole number {message}" in capsys.readouterr().err


def test_a_missing_optional_dependency_names_its_extra(capsys, model_dir, monkeypatch):
    import blt_hf.data

    def missing(name):
        def build_corpus(*args, **kwargs):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return build_corpus

    monkeypatch.setattr(blt_hf.data, "build_corpus", missing("datasets"))
    assert cli.main(["eval", model_dir]) == 1
    assert "needs the `datasets` package: pip install 'blt_hf[train]'" in capsys.readouterr().err
    monkeypatch.setattr(blt_hf.data, "build_corpus", missing("not_an_extra"))  # a real bug: not hidden
    with pytest.raises(ModuleNotFoundError):
        cli.main(["eval", model_dir])


@pytest.mark.parametrize("rates", ["2.0,-1", "0", "a,b"])
def test_eval_mask_rates_out_of_range(model_dir, rates):
    with pytest.raises(SystemExit, match="mask_rates"):
        cli.main(["eval", model_dir, "--mask_rates", rates])


@pytest.mark.parametrize("decoding", ["diffusion", "diffusion_verify"])
def test_put_draft_sees_every_pass(model_dir, decoding):
    model = FastBltForCausalLM.from_pretrained(model_dir).eval()
    ids = FastBltTokenizer()(PROMPT, return_tensors="pt").input_ids
    rec = DraftRecorder()
    out = model.generate(ids, max_new_tokens=16, decoding=decoding, unmasking="confidence", streamer=rec,
                         return_dict_in_generate=True)
    plain = model.generate(ids, max_new_tokens=16, decoding=decoding, unmasking="confidence")
    assert torch.equal(out.sequences, plain)  # watching changes nothing
    # BLT-DV's decoder calls also hold the prompt's pass and one verification per cycle; every cycle
    # commits (puts) once, after the prompt and the first byte.
    others = 1 + len(rec.committed) - 2 if decoding == "diffusion_verify" else 0
    assert len(rec.drafts) == int(out.decoder_calls[0]) - others
    for value, masked, unmasked in rec.drafts:
        assert ((value == 3) | ~masked).all() and not (masked & unmasked).any()  # still-masked positions hold MASK
    if decoding == "diffusion":
        assert torch.equal(rec.drafts[-1][0][0], out.sequences[0, -8:])  # the last pass is the committed block


def test_transformers_text_diffusion_streamer(capsys, model_dir):
    from transformers import TextDiffusionStreamer

    model = FastBltForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = FastBltTokenizer()
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=16, decoding="diffusion",
                         streamer=TextDiffusionStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))
    printed = capsys.readouterr().out
    assert "\0338\033[J" in printed  # drafts were drawn, then cleared
    assert printed.endswith(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True) + "\n")


# ----------------------------------------------------------------------------- benchmarks/bench_generate.py


def load_report():
    return load_benchmark("bench_generate")


def test_continuation_bits_matches_manual_sum(model_dir):
    report = load_report()
    model = FastBltForCausalLM.from_pretrained(model_dir).eval()
    prompt, cont = random_ids(1, 10, seed=1)[0], random_ids(1, 6, seed=2)[0, 1:]
    bits, n = report.continuation_bits(model, prompt, cont)
    ids = torch.cat([prompt, cont])[None]
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    manual = -sum(logp[len(prompt) - 1 + i, int(cont[i])] for i in range(len(cont))) / math.log(2)
    assert n == len(cont)
    assert bits == pytest.approx(float(manual), rel=1e-5)


def test_held_out_prompts_end_on_a_line():
    report = load_report()
    docs = [Document(f"f{i}.py", "x = 1\n" * 200) for i in range(5)]
    prompts = report.held_out_prompts(docs, n=3, prompt_bytes=64)
    assert len(prompts) == 3
    for name, ids in prompts:
        text = bytes(int(i) - 4 for i in ids[1:]).decode()
        assert ids[0] == 1 and text.endswith("\n") and len(text) <= 64


def test_goals_judge_the_shipped_blt_d_against_ar():
    goals = load_report().goals
    row = dict(speed_vs_ar=1.0, decoder_calls_per_byte=1.0, identical_to_ar=True)
    for speed, passed in [(2.1, True), (1.55, False)]:
        table = [dict(row, setting="ar"), dict(row, setting="blt_d_default", speed_vs_ar=speed)]
        (text, ok), = goals(table)
        assert ok is passed and f"({speed:.2f}x)" in text
