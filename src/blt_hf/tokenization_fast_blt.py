"""Byte-level tokenizer for BLT models.

Id contract (fixed, vocab size 260): 0 ``<pad>``, 1 ``<s>`` (BOS), 2 ``</s>`` (EOS), 3 ``<mask>``,
byte ``b`` -> ``b + 4``. Text is always its raw UTF-8 bytes: a special-token string typed inside
the text (e.g. ``"</s>"``) encodes as bytes, never as the special id, so every string round-trips.
BOS is added by default, EOS is not (prompt convention of the original BLT ``generate``).

Byte tokens are spelled with the GPT-2 byte-level alphabet (byte 32 -> ``"Ġ"``), not ByT5's
``chr(b)``, so that ``get_vocab()`` is exactly the vocab of the ``tokenizer.json`` written by
``save_pretrained`` (a ``tokenizers`` ByteLevel pipeline).
"""

import os

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers.tokenization_python import AddedToken, PreTrainedTokenizer

PAD_ID, BOS_ID, EOS_ID, MASK_ID, BYTE_OFFSET = 0, 1, 2, 3, 4
VOCAB_SIZE = 260
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<mask>")  # index == id
_SPECIAL_ATTRS = ("pad_token", "bos_token", "eos_token", "mask_token")


def _byte_level_alphabet() -> list[str]:
    # GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 and up.
    keep = {*range(33, 127), *range(161, 173), *range(174, 256)}
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


BYTE_TOKENS = _byte_level_alphabet()
_TOKEN_TO_BYTE = {c: b for b, c in enumerate(BYTE_TOKENS)}


def build_backend_tokenizer(add_bos: bool = True, add_eos: bool = False) -> Tokenizer:
    vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    vocab.update({c: b + BYTE_OFFSET for b, c in enumerate(BYTE_TOKENS)})
    # BPE without merges looks up each byte-level char on its own, so a special-token string in the
    # text can never be produced by the model.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    # The special tokens are deliberately NOT registered as added tokens in tokenizer.json: added
    # tokens are matched inside input text, and `Tokenizer.encode_special_tokens = True` (which would
    # turn that off) is not serialized by tokenizers 0.23. Without added tokens the raw file's
    # `decode(skip_special_tokens=True)` cannot skip them, so the decoder drops them instead (Replace
    # acts per token, so the bytes "<", "s", ">" of literal text are kept). Consequence: a raw
    # tokenizers/TokenizersBackend decode never shows special tokens, even with skip_special_tokens=False.
    # (TokenizersBackend re-adds the specials from tokenizer_config.json and, reading
    # split_special_tokens=True there, sets encode_special_tokens itself, so encoding still matches.)
    tok.decoder = decoders.Sequence([*(decoders.Replace(s, "") for s in SPECIAL_TOKENS), decoders.ByteLevel()])
    bos, eos = (["<s>"] if add_bos else []), (["</s>"] if add_eos else [])
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join([*bos, "$A", *eos]),
        pair=" ".join([*bos, "$A", *eos, "$B:1", *(e + ":1" for e in eos)]),
        special_tokens=[("<s>", BOS_ID), ("</s>", EOS_ID)],
    )
    return tok


def encode_bytes(texts: list[str], add_bos: bool = True, add_eos: bool = True) -> list[np.ndarray]:
    head = np.array([BOS_ID] if add_bos else [], dtype=np.int64)
    tail = np.array([EOS_ID] if add_eos else [], dtype=np.int64)
    return [
        np.concatenate((head, np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) + BYTE_OFFSET, tail))
        for t in texts
    ]


def decode_runs(token_ids, decode_bytes, skip_special_tokens: bool) -> str:
    """Text of `token_ids` as transformers' tokenizers decode: special ids become their strings
    ("<s>", "</s>", ...) unless `skip_special_tokens` (lm-eval reads its stop string from
    `decode(eos_id, skip_special_tokens=False)`); runs of byte ids go to `decode_bytes`. Shared by the
    slow and fast classes, so both decode alike (the tokenizer.json pipeline alone always drops
    specials, see build_backend_tokenizer)."""
    token_ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
    parts, run = [], []
    for i in token_ids:
        if 0 <= i < BYTE_OFFSET:
            if run:
                parts.append(decode_bytes(run))
                run = []
            if not skip_special_tokens:
                parts.append(SPECIAL_TOKENS[i])
        else:
            run.append(i)
    if run:
        parts.append(decode_bytes(run))
    return "".join(parts)


class FastBltTokenizer(PreTrainedTokenizer):
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        add_bos: bool = True,
        add_eos: bool = False,
        model_max_length: int = 4096,
        padding_side: str = "right",
        split_special_tokens: bool = True,
        **kwargs,
    ):
        # Named add_bos/add_eos because transformers 5 drops add_bos_token/add_eos_token on save.
        self.add_bos, self.add_eos = add_bos, add_eos
        # Registered before super().__init__ so the specials keep ids 0..3 instead of being appended.
        self._added_tokens_decoder = {
            i: AddedToken(s, special=True, normalized=False, lstrip=False, rstrip=False)
            for i, s in enumerate(SPECIAL_TOKENS)
        }
        for attr, s in zip(_SPECIAL_ATTRS, SPECIAL_TOKENS):
            kwargs.setdefault(attr, s)
        kwargs.pop("tokenizer_file", None)  # from_pretrained offers our own tokenizer.json; not needed
        kwargs.setdefault("clean_up_tokenization_spaces", False)  # would rewrite " ." and break round-trips
        # Explicit kwargs land in init_kwargs, so save_pretrained writes their current values.
        super().__init__(
            add_bos=add_bos,
            add_eos=add_eos,
            model_max_length=model_max_length,
            padding_side=padding_side,
            split_special_tokens=split_special_tokens,  # True: special strings in text are bytes
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    def get_vocab(self) -> dict[str, int]:
        vocab = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
        vocab.update({c: b + BYTE_OFFSET for b, c in enumerate(BYTE_TOKENS)})
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return [BYTE_TOKENS[b] for b in text.encode("utf-8")]

    def _convert_token_to_id(self, token: str) -> int | None:
        b = _TOKEN_TO_BYTE.get(token)
        return None if b is None else b + BYTE_OFFSET  # None like ByT5: there is no <unk>

    def _convert_id_to_token(self, index: int) -> str:
        # Ids 0..3 and user-added tokens never get here (they live in _added_tokens_decoder).
        if not BYTE_OFFSET <= index < VOCAB_SIZE:
            raise ValueError(f"token id {index} is outside the BLT byte vocabulary [0, {VOCAB_SIZE})")
        return BYTE_TOKENS[index - BYTE_OFFSET]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        out = bytearray()
        for t in tokens:
            b = _TOKEN_TO_BYTE.get(t)
            out.extend(t.encode("utf-8") if b is None else (b,))
        # Generated bytes need not be valid UTF-8 (e.g. a cut multi-byte char): never raise.
        return out.decode("utf-8", errors="replace")

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        return decode_runs(token_ids, lambda run: super(FastBltTokenizer, self)._decode(
            run, skip_special_tokens=True, **kwargs), skip_special_tokens)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None):
        bos, eos = ([BOS_ID] if self.add_bos else []), ([EOS_ID] if self.add_eos else [])
        ids = bos + token_ids_0 + eos
        return ids if token_ids_1 is None else ids + token_ids_1 + eos

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False):
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        # -1 marks content positions; everything build_inputs adds around them is special.
        ids = self.build_inputs_with_special_tokens(
            [-1] * len(token_ids_0), None if token_ids_1 is None else [-1] * len(token_ids_1)
        )
        return [int(i != -1) for i in ids]

    def encode_corpus(self, texts: list[str], add_bos: bool = True, add_eos: bool = True) -> list[np.ndarray]:
        return encode_bytes(texts, add_bos=add_bos, add_eos=add_eos)

    def to_backend_tokenizer(self) -> Tokenizer:
        return build_backend_tokenizer(self.add_bos, self.add_eos)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        return ()  # the vocabulary is fixed; nothing to write (as ByT5)

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        files = super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)
        # tokenizer.json lets tools that never import blt_hf (tokenizers, TokenizersBackend) load it.
        path = os.path.join(str(save_directory), (filename_prefix + "-" if filename_prefix else "") + "tokenizer.json")
        self.to_backend_tokenizer().save(path)
        return (*files, path)


# Saved tokenizers carry auto_map + this code (trust_remote_code=True loads them without blt_hf).
FastBltTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "BOS_ID",
    "BYTE_OFFSET",
    "EOS_ID",
    "MASK_ID",
    "PAD_ID",
    "VOCAB_SIZE",
    "FastBltTokenizer",
    "build_backend_tokenizer",
    "decode_runs",
    "encode_bytes",
]
