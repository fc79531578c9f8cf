"""The byte tokenizer backed by `tokenizers` (the pipeline of the tokenizer.json we write): `is_fast`,
offsets mapping, fast batches. Same ids, same text and same special-token handling as
`FastBltTokenizer`; registered as the fast class, so `AutoTokenizer` (use_fast=True, the default)
returns it once `blt_hf` is imported.
"""

from transformers.tokenization_utils_tokenizers import TokenizersBackend

from .tokenization_fast_blt import _SPECIAL_ATTRS, SPECIAL_TOKENS, FastBltTokenizer, build_backend_tokenizer, decode_runs


class FastBltTokenizerFast(TokenizersBackend):
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = FastBltTokenizer

    def __init__(self, tokenizer_file=None, add_bos: bool = True, add_eos: bool = False, model_max_length: int = 4096,
                 padding_side: str = "right", split_special_tokens: bool = True, **kwargs):
        if tokenizer_file is None and kwargs.get("tokenizer_object") is None:
            kwargs["tokenizer_object"] = build_backend_tokenizer(add_bos, add_eos)
        self.add_bos, self.add_eos = add_bos, add_eos
        for attr, s in zip(_SPECIAL_ATTRS, SPECIAL_TOKENS):
            kwargs.setdefault(attr, s)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(tokenizer_file=tokenizer_file, add_bos=add_bos, add_eos=add_eos,
                         model_max_length=model_max_length, padding_side=padding_side,
                         split_special_tokens=split_special_tokens, **kwargs)

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        return decode_runs(token_ids, lambda run: super(FastBltTokenizerFast, self)._decode(
            run, skip_special_tokens=True, **kwargs), skip_special_tokens)


# Saved tokenizers carry auto_map + this code (trust_remote_code=True loads them without blt_hf).
FastBltTokenizerFast.register_for_auto_class("AutoTokenizer")
