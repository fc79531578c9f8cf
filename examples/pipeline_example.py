"""Text generation through transformers' pipeline with every blt_hf decoder, plus streaming.

    python examples/pipeline_example.py MODEL_DIR     (a saved FastBlt model + tokenizer)
    python examples/pipeline_example.py               (builds a small random one first)
"""

import sys
import tempfile
import threading

import torch
from transformers import TextIteratorStreamer, pipeline

import blt_hf  # noqa: F401  (registers "fast_blt" with the Auto classes)
from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltTokenizer


def random_model_dir() -> str:
    torch.manual_seed(0)
    local = dict(hidden_size=64, num_attention_heads=2)
    config = FastBltConfig(encoder_hash_byte_group_size=[3, 4, 5], encoder_hash_byte_group_vocab=1024,
                           patcher_config=dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2),
                           encoder_config=dict(local, num_hidden_layers=1), decoder_config=dict(local),
                           global_config=dict(hidden_size=128, num_attention_heads=4), diffusion_block_size=4)
    path = tempfile.mkdtemp(prefix="blt_hf_")
    FastBltForCausalLM(config).save_pretrained(path)
    FastBltTokenizer().save_pretrained(path)
    return path


def main():
    pipe = pipeline("text-generation", model=sys.argv[1] if len(sys.argv) > 1 else random_model_dir())
    prompts = ["def hello(name):", "The byte latent transformer"]
    for decoding, knobs in [("autoregressive", {}), ("self_speculation", dict(draft_length=4)),
                            ("diffusion", dict(block_size=4, unmasking="confidence", confidence_threshold=0.7)),
                            ("diffusion_verify", dict(block_size=4, confidence_threshold=0.3))]:
        out = pipe(prompts, batch_size=2, max_new_tokens=32, do_sample=False, return_full_text=False,
                   decoding=decoding, return_dict_in_generate=True, **knobs)
        calls = [(int(o[0]["decoder_calls"]), int(o[0]["global_calls"])) for o in out]
        print(f"{decoding:17s} (decoder, global) calls per prompt {calls}: {out[0][0]['generated_text']!r}")

    streamer = TextIteratorStreamer(pipe.tokenizer, skip_prompt=True)
    thread = threading.Thread(target=pipe, args=(prompts[0],),
                              kwargs=dict(max_new_tokens=32, streamer=streamer, decoding="autoregressive"))
    thread.start()
    print("streamed:", repr("".join(streamer)))
    thread.join()


if __name__ == "__main__":
    main()
