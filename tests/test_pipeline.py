"""pipeline("text-generation") on a saved tiny model: plain, decoding kwargs, batched, streaming."""

import threading

import pytest
from conftest import save_tiny_blt_d
from transformers import TextIteratorStreamer, pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    return save_tiny_blt_d(tmp_path_factory.mktemp("blt_d"), block_size=4, with_tokenizer=True)


@pytest.fixture(scope="module")
def pipe(saved_dir):
    return pipeline("text-generation", model=str(saved_dir))


def test_pipeline_uses_saved_generation_defaults(pipe):
    assert pipe.model.generation_config.decoding == "diffusion"
    out = pipe("hello", max_new_tokens=8)
    assert out[0]["generated_text"].startswith("hello")


@pytest.mark.parametrize("decoding", ["autoregressive", "self_speculation", "diffusion", "diffusion_verify"])
def test_pipeline_decoding_kwargs_match_generate(pipe, decoding):
    out = pipe("hello", max_new_tokens=8, do_sample=False, decoding=decoding, return_full_text=False,
               eos_token_id=None)
    ids = pipe.tokenizer("hello", return_tensors="pt").input_ids
    direct = pipe.model.generate(ids, max_new_tokens=8, do_sample=False, decoding=decoding, eos_token_id=None)
    assert out[0]["generated_text"] == pipe.tokenizer.decode(direct[0, ids.shape[1]:], skip_special_tokens=True)


def test_pipeline_batch_left_padding(pipe):
    prompts = ["hi", "a much longer prompt"]
    batched = pipe(prompts, batch_size=2, max_new_tokens=8, do_sample=False, return_full_text=False,
                   decoding="self_speculation", draft_length=3)
    alone = [pipe(p, max_new_tokens=8, do_sample=False, return_full_text=False, decoding="self_speculation",
                  draft_length=3) for p in prompts]
    assert [b[0]["generated_text"] for b in batched] == [a[0]["generated_text"] for a in alone]


def test_pipeline_returns_counters_with_return_dict(pipe):
    out = pipe("hello", max_new_tokens=8, do_sample=False, decoding="diffusion", return_dict_in_generate=True)
    assert int(out[0]["global_calls"]) == 2


def test_pipeline_text_iterator_streamer(pipe):
    streamer = TextIteratorStreamer(pipe.tokenizer, skip_prompt=True)
    kwargs = dict(max_new_tokens=12, do_sample=False, streamer=streamer, decoding="autoregressive", eos_token_id=None)
    thread = threading.Thread(target=pipe, args=("hello",), kwargs=kwargs)
    thread.start()
    streamed = "".join(streamer)
    thread.join()
    expected = pipe("hello", max_new_tokens=12, do_sample=False, decoding="autoregressive", eos_token_id=None,
                    return_full_text=False)[0]["generated_text"]
    assert streamed == expected
