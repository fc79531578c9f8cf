"""Generation for FastBltForCausalLM: cached AR BLT, BLT-D (diffusion), BLT-S (self-speculation), BLT-DV.

Contract: `generate(model, input_ids, attention_mask, ...)` returns the prompt as passed (left
padding included) followed by the new bytes, PAD after a row stops (EOS / stop string /
max_new_tokens); with `return_dict_in_generate` a `FastBltGenerateOutput` with per-row counters.
Every step costs O(new bytes): the patcher, encoder and decoder keep per-byte KV caches and the
global transformer a per-patch one (cache_fast_blt.py); only new bytes and newly completed
patches are computed. One cycle = `append` (patcher + encoder on new bytes, incremental
patching) -> `run_global` (patches completed since the last call) -> `run_decoder`.
With `cache_implementation="static"` the steps after the prefill run at fixed shapes (cache_fast_blt.py)
and, with a compile config, compiled (`step`): `encode_bytes`, `global_pass`, `clean_logits`,
`block_logits` hold the tensor work, the functions around them the host-side decisions.
Counters: `decoder_calls` = local-decoder passes, `global_calls` = global-transformer passes that
processed at least one patch of the row, `encoder_calls` = encoder passes, `cycles` = commits; the
paper's own counts (`paper_*`, cost.py) sit beside them.
"""

import functools
import logging
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.utils import ModelOutput

from .cache_fast_blt import DecodeState, put_columns
from .cost import paper_counts
from .generation_config_fast_blt import DECODER_DEFAULTS, FastBltGenerationConfig
from .inputs import byte_ids
from .masks import causal_mask
from .patching import patch_rule
from .sampling import entropy, first_true, process_logits, sample, select_positions

# Design choices (DESIGN.md §5), matching the BLT-D training layout of modeling_fast_blt.py:
# - A BLT-D block at position N starts a new patch: the open last patch is closed at N
#   (`force_boundary`) and the global model runs on it, so the block cross-attends o_{i-1}, the last
#   complete patch, exactly as a training block cut at patch start s_i. The forced boundary stays
#   in the clean patching of the committed bytes; boundaries inside a block follow the entropy rule.
# - Block inputs are byte-embedding lookups (MASK id for unknown bytes), or with
#   config.diffusion_block_input = "encoder" byte + hash n-grams through the encoder layers, at their
#   own RoPE positions; a block sees every committed byte (window applied) and itself bidirectionally.
# - Options beyond the paper: `first_byte_from_ar` (the block's first byte from the next-byte head,
#   free in the merged pass), `unmasking_fallback="leftmost"` or `"end_block"` (a pass where no byte
#   passes the threshold ends the block before its first undecided byte, instead of committing an
#   unsure one that later passes would take as context; `"next_or_end"` commits it when it is the
#   block's next byte in order and ends the block otherwise), `repatch_blocks` (Algorithm 1: the block
#   start's forced boundary is re-decided by the entropy patcher after commit).
# - BLT-D merges the clean decoder pass over a committed block with the next block's first
#   denoising pass (one decoder call), and the global pass over the block's inner patches with
#   the next block's patch closing (one global call): global_calls == number of blocks and
#   decoder_calls == denoising passes. The prompt's global/decoder passes merge the same way.
# - BLT-S drafts k bytes with encoder + decoder only (last complete latent, no patcher, no global);
#   verification is one causal pass over [pending byte, drafts], not reused for the next draft:
#   per cycle k + 1 decoder calls and <= 1 global call. BLT-DV drafts a block of B + 1 positions:
#   the pending (already verified) byte, known, then B new bytes (the paper's B drafted bytes after
#   the correction byte); it verifies them the same way; the draft's forced patch boundary is undone
#   before verification, so outputs equal AR under greedy decoding. A draft cut by "end_block" drafts
#   only the bytes before its cut, and verification runs over as many columns as the longest draft.
# - Unmasking: confidence = probability of the chosen byte; entropy bound on the plain sum;
#   ties go to the leftmost position. Sampling uses torch's global RNG (seeded runs repeat).
# - Host syncs: one per step to decide whether the global model runs (two when it does), one per
#   denoising pass, one per BLT-S/DV cycle (row lengths) and one more per BLT-DV cycle (the draft's
#   width), one per commit for stopping.

logger = logging.getLogger(__name__)
# generate() arguments that are not generation-config fields: the rest are FastBltGenerationConfig's.
RUNTIME_ARGUMENTS = {"tokenizer", "stopping_criteria", "logits_processor", "force_diffusion"}
# Config fields the decoders honour; any other field set away from its default raises, as does an
# unknown name (stock transformers' behaviour), instead of being ignored.
HONOURED = {"max_new_tokens", "max_length", "do_sample", "temperature", "top_k", "top_p", "eos_token_id",
            "pad_token_id", "bos_token_id", "stop_strings", "return_dict_in_generate", "num_return_sequences",
            "use_cache", "repetition_penalty", "no_repeat_ngram_size", "bad_words_ids", "min_new_tokens",
            "output_scores", "output_logits", "cache_implementation", "compile_config", "disable_compile",
            "max_cache_len", *DECODER_DEFAULTS}
# Those that change the next-byte distribution: meaningful for the causal decoders (AR, and BLT-S /
# BLT-DV, whose verification applies them at every position, so they stay equal to AR), not for BLT-D.
PROCESSOR_OPTIONS = {"logits_processor": None, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                     "bad_words_ids": None, "min_new_tokens": None}
# A static cache's global pass pools its new patches from this many trailing columns when they fit.
POOL_COLUMNS = 64
# A static cache's columns come in multiples of this (unless max_cache_len says how many).
STATIC_COLUMNS = 256
# Per-step outputs: the autoregressive decoder only (one distribution per committed byte).
STEP_OUTPUTS = ("output_scores", "output_logits")


@dataclass
class FastBltGenerateOutput(ModelOutput):
    """sequences (B, N + new); per-row counters (B,) long (cost.py: what they mean, the paper's counts)."""

    sequences: torch.Tensor | None = None
    scores: tuple | None = None  # output_scores (AR): per new byte, the (B, V) scores it was chosen from
    logits: tuple | None = None  # output_logits (AR): per new byte, the (B, V) next-byte logits
    decoder_calls: torch.Tensor | None = None
    global_calls: torch.Tensor | None = None
    encoder_calls: torch.Tensor | None = None
    cycles: torch.Tensor | None = None
    accepted_bytes: torch.Tensor | None = None
    drafted_bytes: torch.Tensor | None = None
    paper_decoder_calls: torch.Tensor | None = None
    paper_global_calls: torch.Tensor | None = None


@dataclass
class Counters:
    """Per-row work (B,) long, for return_dict_in_generate; cost.py adds the paper's counts from `cycles`."""

    decoder_calls: torch.Tensor
    global_calls: torch.Tensor
    encoder_calls: torch.Tensor
    accepted_bytes: torch.Tensor
    drafted_bytes: torch.Tensor

    @classmethod
    def zeros(cls, batch: int, device) -> "Counters":
        return cls(*(torch.zeros(batch, dtype=torch.long, device=device) for _ in range(5)))


@dataclass
class Options:
    decoding: str
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    block_size: int
    unmasking: str
    unmasking_fallback: str
    first_byte_from_ar: bool
    repatch_blocks: bool
    confidence_threshold: float
    entropy_bound: float
    draft_length: int
    eos_token_id: list
    processors: object  # transformers LogitsProcessorList or None
    stop_strings: list
    return_dict: bool
    num_return_sequences: int
    output_scores: bool
    output_logits: bool
    static: bool  # cache_implementation="static": fixed-shape decoding steps
    compile_config: object  # transformers CompileConfig of the compiled steps, None = eager
    max_cache_len: int | None  # static cache columns (prompt + new bytes + a block/draft must fit)


# ----------------------------------------------------------------------------- options and validation


def merged_config(model, generation_config, kwargs) -> tuple[FastBltGenerationConfig, dict, set]:
    """transformers' precedence: kwargs > an explicit `generation_config` > the model's generation_config >
    FastBltGenerationConfig's defaults. -> (config, runtime arguments, names the caller set)."""
    gc = FastBltGenerationConfig.from_dict((generation_config or GenerationConfig()).to_dict())
    runtime = {}
    for name, value in kwargs.items():
        if name in RUNTIME_ARGUMENTS:
            runtime[name] = value
        elif not hasattr(gc, name):
            unknown = sorted(k for k in kwargs if k not in RUNTIME_ARGUMENTS and not hasattr(gc, k))
            raise ValueError(f"The following `model_kwargs` are not used by the model: {unknown} (note: typos in the "
                             "generate arguments will also show up in this list)")
        elif value is not None:  # None: unset, as in transformers
            setattr(gc, name, value)
    user_set = {k for k, v in vars(gc).items() if v is not None and not k.startswith("_")}
    fill_unset(gc, model.generation_config.to_dict())
    if any(getattr(gc, name) for name in STEP_OUTPUTS):
        gc.return_dict_in_generate = True  # as transformers
    gc.validate(user_set_attributes=user_set)
    # after validate: the global defaults are not the caller's choices (no "top_k is set" warning)
    fill_unset(gc, gc._get_default_generation_params())
    return gc, runtime, user_set


def fill_unset(gc, values) -> None:
    for name, value in values.items():
        if not name.startswith("_") and name in vars(gc) and getattr(gc, name) is None:
            setattr(gc, name, value)


@functools.cache
def neutral_values() -> dict:
    """Every config field at its default (built once: a GenerationConfig validates on construction)."""
    neutral = FastBltGenerationConfig()
    fill_unset(neutral, neutral._get_default_generation_params())
    return dict(vars(neutral))


def check_supported(gc: FastBltGenerationConfig) -> None:
    """Config fields no decoder here implements must keep their default; say which one and why."""
    neutral = neutral_values()
    for name, value in vars(gc).items():
        if name in HONOURED or name.startswith("_") or name == "transformers_version":
            continue
        off = neutral.get(name)
        if value is not None and value != off and not (hasattr(value, "__len__") and len(value) == 0):
            raise ValueError(f"`{name}={value!r}` is not supported by blt_hf's decoding={gc.decoding!r} (greedy or "
                             f"sampled byte decoding; only `stopping_criteria`, stop strings and EOS end a row early)")
    for name in STEP_OUTPUTS:
        if getattr(gc, name) and gc.decoding != "autoregressive":
            raise ValueError(f"`{name}=True` is supported by decoding='autoregressive' only (one distribution per "
                             f"new byte); got decoding={gc.decoding!r}")


def logits_processors(o, prompt_len, values):
    """transformers' LogitsProcessorList for the processor options given (None when there are none)."""
    from transformers import (LogitsProcessorList, MinNewTokensLengthLogitsProcessor, NoBadWordsLogitsProcessor,
                              NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor)

    given = [n for n, v in values.items() if v is not None and v != PROCESSOR_OPTIONS[n] and not (
        hasattr(v, "__len__") and len(v) == 0)]
    if not given:
        return None
    if o.decoding == "diffusion":
        raise ValueError(f"`{given[0]}` is not supported by decoding='diffusion': a block's bytes are ranked before "
                         "their left context exists; use it with autoregressive, self_speculation or "
                         "diffusion_verify (equal to autoregressive)")
    processors = LogitsProcessorList()
    if values["min_new_tokens"]:
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_len, values["min_new_tokens"], o.eos_token_id))
    if values["repetition_penalty"] not in (None, 1.0):
        processors.append(RepetitionPenaltyLogitsProcessor(values["repetition_penalty"]))
    if values["no_repeat_ngram_size"]:
        processors.append(NoRepeatNGramLogitsProcessor(values["no_repeat_ngram_size"]))
    if values["bad_words_ids"]:
        processors.append(NoBadWordsLogitsProcessor(values["bad_words_ids"], o.eos_token_id))
    processors.extend(values["logits_processor"] or [])
    return processors


def resolve_options(model, prompt_len, generation_config, kwargs) -> tuple[Options, dict]:
    """The merged, validated settings of one generate() call -> (Options, runtime arguments)."""
    gc, runtime, user_set = merged_config(model, generation_config, kwargs)
    check_supported(gc)
    max_new = gc.max_new_tokens
    if "max_length" in user_set and "max_new_tokens" not in user_set:  # the caller's max_length, as transformers
        max_new = gc.max_length - prompt_len
        if max_new < 0:
            raise ValueError(f"max_length={gc.max_length} is shorter than the prompt ({prompt_len} bytes): max_length "
                             "counts the prompt's bytes too; set max_new_tokens to count only new bytes")
    eos, stops = gc.eos_token_id, gc.stop_strings or []
    opts = Options(
        decoding=gc.decoding, max_new_tokens=max_new, do_sample=bool(gc.do_sample), temperature=float(gc.temperature),
        top_k=gc.top_k, top_p=float(gc.top_p), block_size=gc.block_size, unmasking=gc.unmasking,
        unmasking_fallback=gc.unmasking_fallback, first_byte_from_ar=gc.first_byte_from_ar,
        repatch_blocks=gc.repatch_blocks, confidence_threshold=float(gc.confidence_threshold),
        entropy_bound=float(gc.entropy_bound), draft_length=gc.draft_length,
        eos_token_id=[] if eos is None else [eos] if isinstance(eos, int) else list(eos), processors=None,
        stop_strings=[stops] if isinstance(stops, str) else list(stops), return_dict=bool(gc.return_dict_in_generate),
        num_return_sequences=gc.num_return_sequences, output_scores=bool(gc.output_scores),
        output_logits=bool(gc.output_logits), static=gc.cache_implementation == "static",
        compile_config=compile_config(model, gc), max_cache_len=gc.max_cache_len,
    )
    opts.processors = logits_processors(opts, prompt_len, {**{n: getattr(gc, n, None) for n in PROCESSOR_OPTIONS},
                                                           "logits_processor": runtime.get("logits_processor")})
    validate(model, opts, prompt_len, bool(runtime.get("force_diffusion", False)))
    # Work is bounded by the bytes asked for: a block or draft longer than max_new_tokens can only add
    # positions that are never committed (buffers are sized from these).
    opts.block_size = min(opts.block_size, max(opts.max_new_tokens, 1))
    opts.draft_length = min(opts.draft_length, max(opts.max_new_tokens, 1))
    return opts, runtime


def compile_config(model, gc):
    """transformers' rule: a static cache compiles the decoding steps on CUDA by default, on any device when a
    `compile_config` is given, never with `disable_compile=True`."""
    if gc.cache_implementation != "static" or gc.disable_compile:
        return None
    if gc.compile_config is not None:
        return gc.compile_config
    if model.device.type == "cuda":
        from transformers.generation.configuration_utils import CompileConfig

        return CompileConfig()
    return None


def slack_columns(o: Options) -> int:
    """Columns past the committed bytes that a draft or a BLT-D block may occupy."""
    return max(o.block_size, o.draft_length) + 2


def validate(model, o: Options, prompt_len: int, force_diffusion: bool) -> None:
    """What FastBltGenerationConfig.validate cannot check alone: the model, the prompt, the mix of options."""
    trained = model.config.diffusion_block_size > 0
    if o.decoding in ("diffusion", "diffusion_verify") and not (trained or force_diffusion):
        raise ValueError(f"decoding={o.decoding!r} needs a model trained with the BLT-D objective "
                         "(config.diffusion_block_size > 0); pass force_diffusion=True to run it anyway")
    limit = model.config.max_bytes
    for name in ("block_size", "draft_length"):
        if not 1 <= getattr(o, name) <= limit:
            raise ValueError(f"{name} must be between 1 and the model's position range ({limit}, "
                             f"config.max_position_embeddings), got {getattr(o, name)}")
    trained_block = model.config.diffusion_block_size
    if o.decoding == "diffusion" and trained and o.block_size != trained_block:
        logger.warning("block_size=%d differs from the block size this model was trained with (%d): BLT-D quality "
                       "is only known for the trained one", o.block_size, trained_block)
    if o.do_sample and not 0 < o.temperature < float("inf"):
        raise ValueError(f"temperature must be > 0 and finite when sampling, got {o.temperature}")
    if not 0 < o.top_p <= 1 or o.top_k < 0:
        raise ValueError(f"top_p must be in (0, 1] and top_k >= 0, got top_p={o.top_p}, top_k={o.top_k}")
    if o.max_new_tokens < 0 or o.num_return_sequences < 1:
        raise ValueError(f"max_new_tokens must be >= 0 and num_return_sequences >= 1, got {o.max_new_tokens} "
                         f"and {o.num_return_sequences}")
    slack = 2 * slack_columns(o)
    if o.max_cache_len is not None and (not o.static or o.max_cache_len < prompt_len + o.max_new_tokens + slack):
        raise ValueError(f"max_cache_len={o.max_cache_len} needs cache_implementation='static' and room for the prompt "
                         f"({prompt_len}) + max_new_tokens ({o.max_new_tokens}) + {slack} columns for a block or draft")
    if prompt_len + o.max_new_tokens > limit:
        raise ValueError(f"prompt ({prompt_len} bytes) + max_new_tokens ({o.max_new_tokens}) is longer than the "
                         f"model allows (config.max_position_embeddings = {limit})")


# ----------------------------------------------------------------------------- the cached components


def step(st: DecodeState, fn):
    """`fn` as this generation runs its decoding steps: compiled with the static cache's compile config
    (set after the prefill, whose shapes are the prompt's), else `fn` itself."""
    if st.compile_config is None:
        return fn
    if fn not in st.compiled:  # looked up once per generation, not per step
        key = (fn, repr(st.compile_config.to_dict()))
        if key not in COMPILED:
            COMPILED[key] = torch.compile(fn, **st.compile_config.to_dict())
        compiled = COMPILED[key]
        # CUDA graphs reuse their output memory on the next replay: keep copies (a mask, logits: small).
        st.compiled[fn] = lambda *args: clone_output(compiled(*args))
    return st.compiled[fn]


def clone_output(out):
    return out.clone() if isinstance(out, torch.Tensor) else out


COMPILED = {}  # (function, compile settings) -> torch.compile'd function; dynamo keeps one graph per shape


def compile_steps(st: DecodeState, o: Options) -> None:
    """From now on run the steps compiled (when o.compile_config is set). The buffers keep their addresses
    for the whole generation: marked static, CUDA graphs update them in place instead of copying them."""
    if o.compile_config is None or st.compile_config is not None:
        return
    for tensor in st.buffers():
        torch._dynamo.mark_static_address(tensor)
    st.compile_config = o.compile_config


def key_mask(st: DecodeState, q_pos, end, window):
    """Causal (windowed) mask of queries at positions q_pos (B, Q) over committed slots < end (B,)."""
    hi = st.view()
    cols = torch.arange(hi, device=q_pos.device)
    ok = st.valid[:, :hi].bool() & (cols < end[:, None])
    return causal_mask(q_pos, st.pos[:, :hi], ok, window)


def write_bytes(st: DecodeState, cols, ids, valid, t, offset: int = 0):
    """Store Q new bytes per row at `cols` (B, Q) after tail `t`; -> their position ids (B, Q)."""
    before = t.pos + t.valid + offset  # real bytes before the chunk
    pos = (before[:, None] + valid.long().cumsum(-1) - 1).clamp(min=0)
    st.write(cols, ids=ids * valid, pos=pos, valid=valid.long())  # PAD (0) under padding, as hash n-grams see
    return pos


def run_patcher(model, st, cols, pos, ids, mask):
    """Entropy model on the new bytes with its KV cache -> H (B, Q) in nats."""
    return model.model.entropies(ids, pos, mask, st.patcher.at(cols, st.view()))


def update_patches(model, st, cols, valid, H, t):
    """Incremental entropy patching of Q new bytes after tail `t`: the full-sequence rule (patching.py),
    continuing from the decision stored with the previous byte (`nstart`, where a BLT-D block start
    forces a boundary: `force_boundary`) and its distance from the last entropy start (`dist`)."""
    c, Q = model.config, cols.shape[1]
    ext = torch.cat([valid, torch.ones_like(valid[:, :1])], 1)  # (B, Q+1): + the byte after the chunk
    pos = (t.pos + t.valid)[:, None] + ext.long().cumsum(-1) - 1  # position in the document
    if H is None:  # no patcher: every byte is a patch
        H = torch.full(valid.shape, float("inf"), device=valid.device)
    starts, dist = patch_rule(H, ext, pos, c.patching_threshold, c.max_patch_length, (t.nstart.bool(), t.dist))
    pid = torch.where(valid, t.pid[:, None] + starts[:, :Q].long().cumsum(-1), -1)
    st.write(cols, pid=pid, nstart=starts[:, 1:].long(), dist=dist[:, 1:])


def force_boundary(st: DecodeState):
    """A BLT-D block starts a new patch: close the open one. -> what to restore for BLT-DV."""
    t = st.tail()
    saved = t.nstart, t.dist, st.glob.clone()
    st.set_tail("nstart", torch.ones_like(t.nstart))
    st.set_tail("dist", torch.zeros_like(t.dist))
    return saved


def restore_boundary(st: DecodeState, saved) -> None:
    st.set_tail("nstart", saved[0])
    st.set_tail("dist", saved[1])
    st.glob = saved[2]


def run_encoder(model, st, cols, pos, mask):
    """Hash n-gram embedding (window of the 7 previous bytes) + local encoder layers on the new bytes."""
    inner, w = model.model, max(model.config.encoder_hash_byte_group_size) - 1
    Q = cols.shape[1]
    window_cols = cols[:, :1] - w + torch.arange(w + Q, device=cols.device)
    ids = torch.where(window_cols >= 0, st.ids.gather(1, window_cols.clamp(min=0)), 0)
    h = inner.byte_states(ids, pos, mask, cache=st.encoder.at(cols, st.view()), context=w)  # (B, Q, He)
    put_columns(st.enc, cols, h)


def append(model, st, ids, valid, counters=None, active=None):
    """Commit Q new bytes per row: patcher + incremental patching + encoder. The decoder runs later."""
    if counters is not None:
        counters.encoder_calls += active.long()
    st.len_hi += ids.shape[1]
    mask = step(st, encode_bytes)(model, st, ids, valid)
    st.length = st.length + ids.shape[1]
    return mask  # also the decoder's mask for these bytes (same positions, keys and window)


def encode_bytes(model, st, ids, valid):
    """append's tensor work: writes the bytes' fields, caches and encoder states at columns past `length`
    (no host state: it compiles to one graph per chunk size; BLT-DV's cut drafts give up to B + 1 sizes)
    -> the chunk's causal mask."""
    c, Q, t = model.config, ids.shape[1], st.tail()
    cols = st.length[:, None] + torch.arange(Q, device=ids.device)
    pos = write_bytes(st, cols, ids, valid, t)
    end = st.length + Q
    mask = key_mask(st, pos, end, c.local_attention_window_len)
    H = None
    if st.patcher is not None:
        same = c.patcher_config.sliding_window == c.local_attention_window_len
        H = run_patcher(model, st, cols, pos, ids, mask if same else key_mask(st, pos, end,
                                                                               c.patcher_config.sliding_window))
    update_patches(model, st, cols, valid, H, t)
    run_encoder(model, st, cols, pos, mask)
    return mask


def run_global(model, st, active, counters) -> None:
    """Pool every patch completed since the last call and run the global transformer on them, in one pass."""
    done, total = st.glob, st.complete_patches()
    n_new, top = torch.stack([(total - done).max(), total.max()]).tolist()  # the step's host sync
    if n_new <= 0:  # most AR steps complete no patch
        return
    hi = st.view()
    cols = torch.arange(hi, device=done.device)
    first = torch.where(new_patch_bytes(st, done, total, cols.expand(len(done), -1)), cols, hi).min(-1).values
    if st.static:
        # Fixed shapes: a fixed number of patch queries (a chunk completes fewer than `slack`; the extra
        # ones, like a row's beyond its own new patches, write only columns past `total`, which no mask
        # admits and the real patches overwrite), pooled from the last POOL_COLUMNS columns of each row
        # when the new patches fit there (they do unless a patch is very long), else from every column.
        width = POOL_COLUMNS if int((st.length - first).max()) <= POOL_COLUMNS else hi
        cols = st.length[:, None] - width + torch.arange(width, device=done.device) if width < hi else cols
        n_new, ghi = max(n_new, st.slack), st.capacity
    else:  # from the first byte of a new patch; the global attention reads the patches processed so far
        lo, done_max = torch.stack([first.min(), done.max()]).tolist()
        cols, ghi = cols[lo:], done_max + n_new
    step(st, global_pass)(model, st, done, total, n_new, cols.expand(len(done), -1), ghi)
    counters.global_calls += (active & (total > done)).long()
    st.glob, st.patch_hi = total, max(st.patch_hi, top)


def new_patch_bytes(st, done, total, cols):
    """(B, C) bool: is column cols[b, c] a committed byte of one of the patches [done, total) of row b
    (columns below 0 or past length are not: nothing, or stale drafts)."""
    at = cols.clamp(min=0)
    ok = (cols >= 0) & (cols < st.length[:, None]) & st.read("valid", at).bool()
    pid = st.read("pid", at)
    return ok & (pid >= done[:, None]) & (pid < total[:, None])


def global_pass(model, st, done, total, n_new, cols, ghi):
    """Pool patches [done, total) from the encoder states at columns `cols` (B, C) and run them through the
    global transformer (attention over its columns [0, ghi)); their decoder-side latent slots land in st.lat."""
    inner = model.model
    rel = torch.where(new_patch_bytes(st, done, total, cols), st.read("pid", cols.clamp(min=0)) - done[:, None], -1)
    enc = st.enc.gather(1, cols.clamp(min=0)[..., None].expand(-1, -1, st.enc.shape[-1]))
    latents = inner.local_encoder.pool(enc, rel, n_new)  # (B, n_new, k*He); needs whole patches
    gpos = done[:, None] + torch.arange(n_new, device=done.device)  # patch index = global RoPE position
    key_cols = torch.arange(ghi, device=done.device).expand(len(done), -1)
    mask = causal_mask(gpos, key_cols, key_cols < total[:, None])
    slots = inner.latent_slots(inner.global_step(latents, gpos, mask, st.global_.at(gpos, ghi)))  # (B, n_new, k, Hd)
    put_columns(st.lat, gpos, slots)


def block_key_mask(st, cols, pos, end, block_end, window):
    """key_mask, plus: queries at cols >= end (a BLT-D block) also see the whole block [end, block_end)."""
    mask = key_mask(st, pos, end, window)  # (B, 1, Q, hi)
    if block_end is None:
        return mask
    kcols = torch.arange(st.view(), device=cols.device)
    in_block = (kcols >= end[:, None]) & (kcols < block_end[:, None])  # (B, hi)
    q_block = (cols >= end[:, None])[:, None, :, None]
    return torch.where(q_block, mask | in_block[:, None, None, :], mask)


def block_states(model, st, block, cols, pos):
    """Decoder inputs of a BLT-D block (B, Bs, Hd): byte embeddings, or with diffusion_block_input
    "encoder" byte + hash n-gram embeddings through the encoder layers over the committed prefix and
    the block (its encoder KV lands past `length`, overwritten when the block is committed)."""
    inner, c = model.model, model.config
    if c.diffusion_block_input != "encoder":
        return inner.local_encoder.embed_tokens(block)
    w = max(c.encoder_hash_byte_group_size) - 1
    before_cols = st.length[:, None] - w + torch.arange(w, device=block.device)
    before = torch.where(before_cols >= 0, st.ids.gather(1, before_cols.clamp(min=0)), 0)
    mask = block_key_mask(st, cols, pos, st.length, st.length + block.shape[1], c.local_attention_window_len)
    return inner.byte_states(torch.cat([before, block], 1), pos, mask, cache=st.encoder.at(cols, st.view()),
                             context=w)


def run_decoder(model, st, h, cols, pos, latent, end, block_end=None, mask=None):
    """Local decoder on queries h (B, Q, Hd) at `cols`, each reading its `latent` (B, Q) patch.

    Clean queries attend causally to committed slots < end. If `block_end` (B,) is given, queries
    at cols >= end form a BLT-D block: they see the committed slots (window applied) and the whole
    block [end, block_end) bidirectionally, nothing else (block_diffusion_mask in training).
    """
    if mask is None:
        mask = block_key_mask(st, cols, pos, end, block_end, model.config.local_attention_window_len)
    # Every processed patch (a step gathers its own); at least one: before the first patch completes
    # the bytes read slot 0, still zeros. Static: all of them, without reading the host-side count
    # (a compiled step would specialise on it and recompile whenever a patch completes).
    slots = st.lat if st.static else st.lat[:, : max(st.patch_hi, 1)]
    return model.model.decode(h, pos, mask, slots, latent, st.decoder.at(cols, st.view()))


def clean_latents(st, cols):
    """Latent each committed byte reads: its patch if complete, else the previous one (decoder alignment)."""
    return (st.read("pid", cols) + st.read("nstart", cols) - 1).clamp(min=0)


def decode_clean(model, st, q, counters, active, all_logits=False, mask=None):
    """Decoder pass over each row's last q committed bytes -> logits (B, q or 1, V)."""
    counters.decoder_calls += active.long()
    return step(st, clean_logits)(model, st, q, all_logits, mask)


def clean_logits(model, st, q, all_logits, mask):
    cols = st.length[:, None] - q + torch.arange(q, device=st.length.device)
    h = st.enc.gather(1, cols[..., None].expand(-1, -1, st.enc.shape[-1]))
    out = run_decoder(model, st, h, cols, st.read("pos", cols), clean_latents(st, cols), st.length, mask=mask)
    return special_masked(model, model.lm_head(out if all_logits else out[:, -1:]).float())


def special_masked(model, logits):
    """PAD, BOS and MASK are never generated."""
    c = model.config
    ids = [i for i in (c.pad_token_id, c.bos_token_id, c.mask_token_id) if i is not None]
    logits[..., ids] = float("-inf")
    return logits


def pick(o: Options, logits):
    """-> (ids, probability of each chosen id): BLT-D's unmasking rules need the confidence."""
    return sample(logits, o.do_sample, o.temperature, o.top_k, o.top_p)


def pick_ids(o: Options, logits):
    """Ids only: greedy AR and verification skip the softmax."""
    if not o.do_sample:
        return logits.argmax(-1)
    return pick(o, logits)[0]


# ----------------------------------------------------------------------------- drafting and verification


def draft_decoder(model, st, tok, k, counters, active):
    """BLT-S draft: k greedy bytes from the local encoder + decoder alone, every one reading the
    last complete latent (patch boundaries ignored, no patcher, no global). Writes only past `length`."""
    latent = st.latest_latent()[:, None]
    ones = torch.ones_like(tok[:, None], dtype=torch.bool)
    x, drafts, t = tok[:, None], [], st.tail()
    window = model.config.local_attention_window_len
    for i in range(k):
        cols = st.length[:, None] + i
        pos = write_bytes(st, cols, x, ones, t, offset=i)
        mask = key_mask(st, pos, st.length + i + 1, window)
        run_encoder(model, st, cols, pos, mask)
        counters.encoder_calls += active.long()
        h = st.enc.gather(1, cols[..., None].expand(-1, -1, st.enc.shape[-1]))
        out = run_decoder(model, st, h, cols, pos, latent, st.length + i + 1, mask=mask)
        x = special_masked(model, model.lm_head(out).float()).argmax(-1)  # (B, 1)
        drafts.append(x)
    counters.decoder_calls += k * active.long()
    return torch.cat(drafts, 1)


def verify(model, st, o, chunk, counters, active, process=None):
    """One causal BLT pass over chunk = [pending byte, drafts] (B, C); keep drafts up to the first
    mismatch. -> (bytes to output (B, C), how many (B,), next pending byte (B,)). `process` applies the
    logits processors at every position, with that position's own context (Tracker.process)."""
    start, C = st.length, chunk.shape[1]
    append(model, st, chunk, torch.ones_like(chunk, dtype=torch.bool), counters, active)
    run_global(model, st, active, counters)
    logits = decode_clean(model, st, C, counters, active, all_logits=True)
    v = pick_ids(o, logits if process is None else process(logits, chunk))  # (B, C)
    accepted = (chunk[:, 1:] == v[:, :-1]).long().cumprod(-1).sum(-1)  # (B,)
    nxt = v.gather(1, accepted[:, None])[:, 0]  # the model's own byte: correction or free extra byte
    st.rollback(torch.where(active, start + 1 + accepted, start))
    j = torch.arange(C, device=chunk.device)
    out = torch.where(j < accepted[:, None], torch.cat([chunk[:, 1:], chunk[:, :1]], 1), nxt[:, None])
    counters.accepted_bytes += accepted * active
    counters.drafted_bytes += (chunk[:, 1:] != model.config.mask_token_id).long().cumprod(-1).sum(-1) * active
    return out, accepted + 1, nxt


def denoise(model, st, o, block, masked, q_clean, counters, active, on_pass=None):
    """BLT-D: decoder passes over one block at columns [length, length+Bs) until no MASK is left, or
    with unmasking_fallback="end_block" until a pass decides nothing in a block whose first byte is
    decided: the block then ends before its first undecided byte. -> (block, bytes to keep (B,)).

    Block inputs follow config.diffusion_block_input (`block_states`), at their own RoPE positions;
    every block position cross-attends the latest latent (the patch `force_boundary` just closed).
    The first pass also decodes the q_clean committed bytes whose decoder KV is still missing (the
    clean pass of the previous block, merged: one decoder call instead of two); with
    `first_byte_from_ar` the last of them gives the block's first byte from the next-byte head,
    taken in that same pass (the byte AR decoding would choose there, given the closed patch).
    `on_pass` (a streamer's `put_draft`, as transformers' TextDiffusionStreamer) sees every pass:
    value = the block (B, Bs) with MASK where still masked, masked / unmasked (B, Bs) bool.
    """
    mask_id, end_block = model.config.mask_token_id, cuts_blocks(o)
    keep = torch.full_like(block[:, 0], block.shape[1])
    while True:
        logits = step(st, block_logits)(model, st, block, q_clean, o.first_byte_from_ar and q_clean > 0)
        ids, conf = pick(o, logits)  # sampling stays eager: compiled code draws other random numbers
        ent = entropy(logits)
        if o.first_byte_from_ar and q_clean > 0:  # offset 0 is the next-byte head's: certain under both rules
            conf, ent = conf.clone(), ent.clone()
            conf[:, 0], ent[:, 0] = 2.0, 0.0
        chosen = select_positions(o.unmasking, masked, conf, ent, o.confidence_threshold, o.entropy_bound,
                                  "leftmost" if end_block else o.unmasking_fallback)
        counters.decoder_calls += (active & masked.any(-1)).long()
        if model.config.diffusion_block_input == "encoder":  # the block went through the encoder layers
            counters.encoder_calls += (active & masked.any(-1)).long()
        if end_block:  # rows where nothing passed, with a decided first byte: stop at the first MASK
            stuck = ~(masked & (conf > o.confidence_threshold)).any(-1) & (block[:, 0] != mask_id) & masked.any(-1)
            first = first_true(masked).long().argmax(-1)
            if o.unmasking_fallback == "next_or_end":  # the next byte in order is the surest: commit it
                stuck &= torch.where(masked, conf, float("-inf")).argmax(-1) != first
            keep = torch.where(stuck, first, keep)
            chosen, masked = chosen & ~stuck[:, None], masked & ~stuck[:, None]
        block, masked, q_clean = torch.where(chosen, ids, block), masked & ~chosen, 0
        if on_pass is not None:
            on_pass(value=block.cpu(), masked=masked.cpu(), unmasked=chosen.cpu())
        if not masked.any():  # one host sync per pass
            return block, keep


def cuts_blocks(o: Options) -> bool:
    """unmasking_fallback="end_block" / "next_or_end" act where a fallback exists: under the confidence rule."""
    return o.unmasking_fallback in ("end_block", "next_or_end") and o.unmasking == "confidence"


def block_logits(model, st, block, q_clean, ar_first):
    """One denoising pass's decoder call -> logits (B, Bs, V) of the block; with `ar_first` offset 0 is the
    next-byte logits of the last clean byte instead of the block's own first position."""
    Bs = block.shape[1]
    bcols = st.length[:, None] + torch.arange(Bs, device=block.device)
    bpos = (st.tail().pos + 1)[:, None] + torch.arange(Bs, device=block.device)
    blat = st.latest_latent()[:, None].expand(-1, Bs)
    h, cols, pos, lat = block_states(model, st, block, bcols, bpos), bcols, bpos, blat
    if q_clean:
        # A cut block leaves fewer new bytes than q_clean: older columns are redone (from column 0 at most).
        ccols = (st.length[:, None] - q_clean + torch.arange(q_clean, device=block.device)).clamp(min=0)
        h = torch.cat([st.enc.gather(1, ccols[..., None].expand(-1, -1, h.shape[-1])), h], 1)
        cols, pos = torch.cat([ccols, bcols], 1), torch.cat([st.read("pos", ccols), bpos], 1)
        lat = torch.cat([clean_latents(st, ccols), blat], 1)
    out = run_decoder(model, st, h, cols, pos, lat, st.length, block_end=st.length + Bs)
    logits = special_masked(model, model.lm_head(out[:, q_clean - ar_first:]).float())  # (B, Bs (+1), V)
    return torch.cat([logits[:, :1], logits[:, 2:]], 1) if ar_first else logits


# ----------------------------------------------------------------------------- the four decoders


def decode_autoregressive(model, st, o, tr, counters, logits, steps):
    """One byte per cycle; `steps` collects output_scores / output_logits (one (B, V) per new byte)."""
    logits = logits[:, -1:]
    while True:
        scores = tr.process(logits)
        if o.output_logits:
            steps["logits"].append(logits[:, 0].float())
        if o.output_scores:  # what the byte is chosen from: processed, and warped when sampling, as transformers
            warped = process_logits(scores.float(), o.temperature, o.top_k, o.top_p) if o.do_sample else scores
            steps["scores"].append(warped[:, 0].float())
        tok = tr.commit(pick_ids(o, scores))
        if not tr.running():
            return
        mask = append(model, st, tok, torch.ones_like(tok, dtype=torch.bool), counters, tr.active)
        run_global(model, st, tr.active, counters)
        logits = decode_clean(model, st, 1, counters, tr.active, mask=mask)


def decode_speculative(model, st, o, tr, counters, logits, diffusion: bool):
    """BLT-S (decoder drafts) or BLT-DV (diffusion drafts), both verified by the causal pass."""
    tok = tr.commit(pick_ids(o, tr.process(logits[:, -1:])))[:, 0]
    while tr.running():
        # A cycle commits at most (drafted bytes + 1): draft no more than the bytes still needed.
        needed = int((tr.end - tr.n).max())
        # BLT-DV drafts B new bytes after the pending (correction) byte, as the paper counts its blocks
        k = min(o.block_size if diffusion else o.draft_length, needed - 1)
        if k < 1:
            chunk = tok[:, None]
        elif diffusion:
            chunk = diffusion_draft(model, st, o, tok, counters, tr.active, tr.put_draft, size=k + 1)
        else:
            chunk = torch.cat([tok[:, None], draft_decoder(model, st, tok, k, counters, tr.active)], 1)
        out, count, tok = verify(model, st, o, chunk, counters, tr.active, tr.process)
        tr.commit(out, count)


def diffusion_draft(model, st, o, tok, counters, active, on_pass=None, size=None):
    """BLT-DV draft: a block of `size` (default block_size + 1) that starts at the pending byte (known,
    so unmasked), then the bytes to draft -> (B, <= size): as wide as the longest draft of a running row."""
    size = size or o.block_size + 1
    saved = force_boundary(st)
    run_global(model, st, active, counters)
    block = torch.full((len(tok), size), model.config.mask_token_id, device=tok.device)
    block[:, 0] = tok
    masked = torch.arange(size, device=tok.device).expand_as(block) > 0
    block, keep = denoise(model, st, o, block, masked, 0, counters, active, on_pass)
    restore_boundary(st, saved)  # verification uses the model's own patches
    # A cut block (unmasking_fallback="end_block") ends before its first undecided byte: MASK from there on
    # (never matched, so verification stops there, and not counted as drafted); columns no running row
    # drafted are dropped, so verification does not run over them.
    keep = torch.where(active, keep, 1)  # a row that has stopped drafts nothing
    block = torch.where(torch.arange(size, device=tok.device) < keep[:, None], block, model.config.mask_token_id)
    return block[:, : int(keep.max())]


def decode_diffusion(model, st, o, tr, counters, q_clean):
    """BLT-D: per block, close the open patch (1 global call), then denoise B MASK positions."""
    B, mask_id = st.length.shape[0], model.config.mask_token_id
    while tr.running():
        saved = force_boundary(st)
        run_global(model, st, tr.active, counters)
        block = torch.full((B, o.block_size), mask_id, dtype=torch.long, device=st.length.device)
        # Positions past a row's end stay MASK (as past-the-end positions do in training): never decoded.
        needed = torch.arange(o.block_size, device=block.device) < (tr.end - tr.n)[:, None]
        block, keep = denoise(model, st, o, block, needed, q_clean, counters, tr.active, tr.put_draft)
        compile_steps(st, o)  # after the first block, whose pass also decoded the prompt
        tr.commit(block, keep)
        if not tr.running():
            break
        if o.repatch_blocks:  # Algorithm 1: the entropy patcher re-decides the block start's boundary
            restore_boundary(st, saved)
        start = st.length
        append(model, st, block, torch.ones_like(block, dtype=torch.bool), counters, tr.active)  # clean pass
        if cuts_blocks(o):
            # A cut block: drop its undecided tail (causal: nothing before the cut saw it). Rows that
            # stopped keep nothing, or rows still cutting blocks would let them outgrow the buffers.
            st.rollback(start + torch.where(tr.active, keep, 0))
        # Re-patching may reopen the patch before the block, whose last byte's decoder KV read the
        # forced latent: the merged clean pass redoes that byte too. After a cut block it also redoes
        # some bytes decoded before (same inputs, same values): one pass shape, whatever was kept.
        q_clean = o.block_size + o.repatch_blocks


# ----------------------------------------------------------------------------- output bookkeeping


class Tracker:
    """New bytes per row, where each row stops (max_new_tokens, EOS, stop string) and the streamer."""

    def __init__(self, o: Options, batch, device, streamer, stopping_criteria=None, prompt=None):
        self.o, self.streamer = o, streamer
        self.criteria, self.prompt = stopping_criteria or None, prompt  # transformers' StoppingCriteriaList
        self.put_draft = getattr(streamer, "put_draft", None)  # watches each denoising pass (denoise)
        self.cap = o.max_new_tokens + slack_columns(o)
        self.out = torch.zeros(batch, self.cap + 1, dtype=torch.long, device=device)  # + a dump column
        self.n = torch.zeros(batch, dtype=torch.long, device=device)
        self.end = torch.full((batch,), o.max_new_tokens, dtype=torch.long, device=device)
        self.eos = torch.tensor(o.eos_token_id or [-1], device=device)
        self.stops = [torch.tensor(list(s.encode("utf-8")), device=device) + 4 for s in o.stop_strings if s]
        self.active = self.n < self.end
        self.streamed = 0
        self.cycles = torch.zeros(batch, dtype=torch.long, device=device)  # commits a row took part in

    def commit(self, chunk, count=None):
        """Append chunk (B, C), `count` (B,) bytes of it per row; update where rows stop. -> chunk."""
        C = chunk.shape[1]
        self.cycles += self.active.long()
        count = torch.full_like(self.n, C) if count is None else count
        j = torch.arange(C, device=chunk.device)
        kept = (j < count[:, None]) & self.active[:, None]
        self.out.scatter_(1, torch.where(kept, self.n[:, None] + j, self.cap).clamp(max=self.cap), chunk)
        eos_at = torch.where(torch.isin(chunk, self.eos) & kept, j, C).min(-1).values  # first EOS in the chunk
        self.end = torch.minimum(self.end, torch.where(eos_at < C, self.n + eos_at + 1, self.end))
        self.n = self.n + torch.where(self.active, count, 0)
        if self.stops:
            self.end = torch.minimum(self.end, self.stop_string_end())
        if self.criteria is not None:
            self.end = torch.where(self.criteria_met() & self.active, torch.minimum(self.end, self.n), self.end)
        self.active = self.n < self.end
        self.stream()
        return chunk

    def process(self, logits, chunk=None):
        """Logits processors on (B, C, V) next-byte logits: position j of row b predicts the byte after
        prompt + the row's committed bytes + chunk[b, 1:j+1] (the drafts being verified), and sees exactly
        that as input_ids, as transformers' generate would. Row by row: rows have different lengths."""
        processors = self.o.processors
        if processors is None:
            return logits
        out = logits.clone()
        for b in range(logits.shape[0]):
            seq = torch.cat([self.prompt[b], self.out[b, : int(self.n[b])]])
            for j in range(logits.shape[1]):
                context = seq if j == 0 else torch.cat([seq, chunk[b, 1: j + 1]])
                out[b, j] = processors(context[None], logits[b, j][None].float())[0]
        return out

    def criteria_met(self):
        """(B,) bool: the user's stopping criteria, called once on the whole batch as transformers does.
        Rows may hold different numbers of new bytes (BLT-S / BLT-DV commit several at a time, stopped
        rows stop growing), so each row is right-aligned behind extra left padding: every row ends with
        its latest byte, which is what stop-sequence criteria (transformers', lm-eval's) look at."""
        n = torch.minimum(self.n, self.end)
        width = int(n.max())
        full = torch.cat([self.prompt, self.out[:, :width]], 1)  # row b: prompt + its first n[b] new bytes
        src = torch.arange(full.shape[1], device=n.device) - (width - n)[:, None]
        aligned = torch.where(src >= 0, full.gather(1, src.clamp(min=0)), 0)  # 0 = PAD
        return self.criteria(aligned, None).bool()

    def stop_string_end(self):
        """(B,) output length up to and including each row's first stop string (cap + 1 if none)."""
        out, j = self.out[:, : self.cap], torch.arange(self.cap, device=self.n.device)
        written = j < self.n[:, None]
        end = torch.full_like(self.n, self.cap + 1)
        for s in self.stops:
            m = len(s)
            if m <= self.cap:
                hit = (out.unfold(1, m, 1) == s).all(-1) & written[:, m - 1:]
                end = torch.minimum(end, torch.where(hit, j[: self.cap - m + 1] + m, self.cap + 1).min(-1).values)
        return end

    def running(self) -> bool:
        return bool(self.active.any())

    def stream(self):
        if self.streamer is None:
            return
        upto = int(torch.minimum(self.n, self.end)[0])
        if upto > self.streamed:
            self.streamer.put(self.out[0, self.streamed: upto].cpu())
            self.streamed = upto

    def sequences(self, prompt, pad_id):
        length = torch.minimum(self.n, self.end)
        width = int(length.max()) if length.numel() else 0
        new = self.out[:, :width]
        new = torch.where(torch.arange(width, device=new.device) < length[:, None], new, pad_id)
        return torch.cat([prompt, new.to(prompt.dtype)], 1)


# ----------------------------------------------------------------------------- entry point


@torch.no_grad()
def generate(model, input_ids=None, attention_mask=None, generation_config=None, streamer=None, **kwargs):
    """FastBltForCausalLM.generate: every kwarg pipeline("text-generation") passes is accepted."""
    input_ids = kwargs.pop("inputs", None) if input_ids is None else input_ids
    input_ids, valid = byte_ids(model.config, input_ids, attention_mask, left_padded=True, infer_padding=True)
    o, runtime = resolve_options(model, input_ids.shape[-1], generation_config, kwargs)
    if streamer is not None and len(input_ids) * o.num_return_sequences > 1:
        # Rows commit different numbers of bytes per step (BLT-S / BLT-DV / stops), so there is no
        # (batch, k) chunk to put(); transformers' own TextStreamer is batch-1 only as well.
        raise ValueError(f"streamer= streams one sequence; got {len(input_ids)} prompt row(s) x "
                         f"num_return_sequences={o.num_return_sequences}. Generate row by row to stream each.")
    if o.num_return_sequences > 1:
        input_ids = input_ids.repeat_interleave(o.num_return_sequences, 0)
        valid = valid.repeat_interleave(o.num_return_sequences, 0)
    B, N = input_ids.shape
    device, pad_id = input_ids.device, model.config.pad_token_id or 0
    if streamer is not None:
        streamer.put(input_ids.cpu())
    tr = Tracker(o, B, device, streamer, runtime.get("stopping_criteria"), input_ids)
    counters = Counters.zeros(B, device)
    steps = {"scores": [], "logits": []}
    if o.max_new_tokens > 0:
        run_decoding(model, o, input_ids, valid, tr, counters, steps)
    if streamer is not None:
        streamer.end()
    sequences = tr.sequences(input_ids, pad_id)
    if not o.return_dict:
        return sequences
    paper_decoder_calls, paper_global_calls = paper_counts(o.decoding, counters.decoder_calls, counters.global_calls,
                                                           tr.cycles)
    return FastBltGenerateOutput(sequences=sequences, scores=tuple(steps["scores"]) if o.output_scores else None,
                                 logits=tuple(steps["logits"]) if o.output_logits else None, **vars(counters),
                                 cycles=tr.cycles, paper_decoder_calls=paper_decoder_calls,
                                 paper_global_calls=paper_global_calls)


def run_decoding(model, o, input_ids, valid, tr, counters, steps):
    B, N = input_ids.shape
    slack = slack_columns(o)
    capacity = N + o.max_new_tokens + 2 * slack
    if o.static:  # one size for every prompt up to it: compiled steps are reused, not recompiled
        capacity = o.max_cache_len or -(-capacity // STATIC_COLUMNS) * STATIC_COLUMNS
    st = DecodeState.empty(model.config, B, capacity, slack, model.dtype, input_ids.device,
                           model.model.patcher is not None, static=o.static)
    append(model, st, input_ids, valid, counters, tr.active)  # prefill: patcher + encoder over the prompt
    if o.decoding == "diffusion":  # its global and decoder passes merge into the first block's
        return decode_diffusion(model, st, o, tr, counters, q_clean=N)
    run_global(model, st, tr.active, counters)
    logits = decode_clean(model, st, N, counters, tr.active)
    compile_steps(st, o)  # the steps from here on have the same shapes whatever the prompt
    if o.decoding == "autoregressive":
        return decode_autoregressive(model, st, o, tr, counters, logits, steps)
    return decode_speculative(model, st, o, tr, counters, logits, diffusion=o.decoding == "diffusion_verify")
