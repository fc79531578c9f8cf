"""Generation quality the way a user feels it (issue 8): line completion, degeneration, block accuracy.

* Line completion (CodeXGLUE style): held-out lines picked deterministically (no blank or comment
  lines); prompt = up to 400 bytes before the line plus its indentation; up to 64 new bytes, cut at
  the first newline; exact match and edit similarity (difflib ratio) against the true line.
* Degeneration: 256-byte continuations; a continuation is degenerate when its longest run of one
  repeated byte is >= 16; plus the distinct-4-gram ratio (unique / total 4-grams).
* Function headers: the README's job (`blt-hf generate "def read_config(path):"`) on many prompts:
  distinct `def ...:` lines of the held-out files, alone after BOS as the command line gives them,
  128 new bytes each, judged by the same degeneration rule, so one prompt does not decide.
* Teacher-forced block accuracy of the BLT-D path by position inside the block and by the revealed
  fraction of the block, so a weak denoiser shows directly.
Every runner measures bytes/s and decoder calls per byte in the same run, and keeps the texts.
"""

import difflib
import time
from dataclasses import dataclass, field

import torch

from .generation_config_fast_blt import BYTE_DEFAULTS
from .tokenization_fast_blt import BOS_ID, BYTE_OFFSET

LINE_CONTEXT_BYTES, LINE_MAX_NEW_BYTES = 400, 64
HEADER_NEW_BYTES = BYTE_DEFAULTS["max_new_tokens"]  # what generate (and `blt-hf generate`) writes by default
DEGENERATE_RUN, DISTINCT_N = 16, 4

# Decoder settings compared by the report and the ablations: (name, generate kwargs). The BLT-D rows
# are the paper's rules, so they say first_byte_from_ar=False (a model's own default may differ).
PAPER_BLT_D = dict(decoding="diffusion", first_byte_from_ar=False, unmasking_fallback="most_confident",
                   repatch_blocks=False)
SETTINGS = {
    "ar": dict(decoding="autoregressive"),
    "blt_d_conf0.7": dict(PAPER_BLT_D, unmasking="confidence", confidence_threshold=0.7),
    "blt_d_conf0.5": dict(PAPER_BLT_D, unmasking="confidence", confidence_threshold=0.5),
    "blt_d_eb1.0": dict(PAPER_BLT_D, unmasking="entropy_bound", entropy_bound=1.0),
    "blt_d_onestep": dict(PAPER_BLT_D, unmasking="one_step"),
    "blt_s_k4": dict(decoding="self_speculation", draft_length=4),
    "blt_dv_onestep": dict(decoding="diffusion_verify", unmasking="one_step"),
}


# ----------------------------------------------------------------------------- metrics (pure functions)


def edit_similarity(prediction: str, target: str) -> float:
    """difflib's ratio in [0, 1]: 2 * matching characters / total characters (1 = identical)."""
    if not prediction and not target:
        return 1.0
    return difflib.SequenceMatcher(None, prediction, target, autojunk=False).ratio()


def longest_run(data: bytes) -> int:
    """Length of the longest run of one repeated byte (0 for empty input)."""
    best, run = 0, 0
    for i, b in enumerate(data):
        run = run + 1 if i and b == data[i - 1] else 1
        best = max(best, run)
    return best


def distinct_ngram_ratio(data: bytes, n: int = DISTINCT_N) -> float:
    """Unique n-grams / n-grams (1.0 when there are none): low values mean repetition."""
    grams = [data[i:i + n] for i in range(len(data) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def is_degenerate(data: bytes, run: int = DEGENERATE_RUN) -> bool:
    return longest_run(data) >= run


# ----------------------------------------------------------------------------- held-out tasks


@dataclass(frozen=True)
class LineTask:
    """One line to complete: `prompt` ends with the line's indentation; `target` is the rest of the line."""

    name: str
    line_number: int
    prompt: bytes
    target: bytes
    starts_file: bool  # the prompt reaches the file's first byte, so it is given BOS as in training


def candidate_lines(text: str):
    """(line number, byte offset, indentation, content) of every line worth completing."""
    data, offset = text.encode("utf-8"), 0
    for number, line in enumerate(data.split(b"\n")):
        content = line.lstrip(b" \t")
        if number > 0 and content.strip() and not content.startswith(b"#"):
            yield number, offset, line[: len(line) - len(content)], content.rstrip(b"\r")
        offset += len(line) + 1


def line_completion_tasks(docs, n: int, context_bytes: int = LINE_CONTEXT_BYTES) -> list[LineTask]:
    """n lines evenly spaced over every candidate line of the `.py` documents, sorted by name."""
    candidates = []
    for doc in sorted(docs, key=lambda d: d.name):
        if doc.name.endswith(".py"):
            data = doc.text.encode("utf-8")
            candidates += [(doc.name, data, *c) for c in candidate_lines(doc.text)]
    tasks, k = [], min(n, len(candidates))
    for i in range(k):
        name, data, number, offset, indent, content = candidates[i * len(candidates) // k]
        start = max(0, offset - context_bytes)
        tasks.append(LineTask(name, number, data[start:offset] + indent, content, start == 0))
    return tasks


def continuation_prompts(docs, n: int, prompt_bytes: int = 192, suffix: str | None = ".py") -> list[tuple[str, bytes]]:
    """n evenly spaced documents (names ending with `suffix`; None = all), each cut at the first line
    after 40% of the file (code bodies, not licence headers), up to `prompt_bytes` ending on a newline;
    files too short for half a prompt, or with very long lines, are skipped."""
    chosen = []
    for doc in sorted(docs, key=lambda d: d.name):
        data = doc.text.encode("utf-8")
        start = data.find(b"\n", int(0.4 * len(data))) + 1
        chunk = data[start: start + prompt_bytes]
        chunk = chunk[: chunk.rfind(b"\n") + 1]
        if (suffix is None or doc.name.endswith(suffix)) and start > 0 and len(chunk) >= prompt_bytes // 2:
            chosen.append((doc.name, chunk))
    k = min(n, len(chosen))
    return [chosen[i * len(chosen) // k] for i in range(k)]


def function_header_prompts(docs, n: int) -> list[tuple[str, bytes]]:
    """n evenly spaced distinct function headers (`def ...:` on one line, indentation stripped) of the
    `.py` documents, sorted by name, in order of first appearance."""
    seen = {}
    for doc in sorted(docs, key=lambda d: d.name):
        if doc.name.endswith(".py"):
            for line in doc.text.encode("utf-8").split(b"\n"):
                header = line.strip()
                if header.startswith(b"def ") and header.endswith(b":") and header not in seen:
                    seen[header] = doc.name
    chosen = [(name, header) for header, name in seen.items()]
    k = min(n, len(chosen))
    return [chosen[i * len(chosen) // k] for i in range(k)]


def to_ids(data: bytes, bos: bool) -> torch.Tensor:
    return torch.tensor(([BOS_ID] if bos else []) + [b + BYTE_OFFSET for b in data])[None]


def to_bytes(ids) -> bytes:
    return bytes(int(i) - BYTE_OFFSET for i in ids if int(i) >= BYTE_OFFSET)


# ----------------------------------------------------------------------------- runners


@dataclass
class Timing:
    """Generated bytes, wall seconds and model passes summed over one setting's calls."""

    seconds: float = 0.0
    bytes: int = 0
    decoder_calls: int = 0
    global_calls: int = 0

    def add(self, seconds, out, prompt_len):
        self.seconds += seconds
        self.bytes += int((out.sequences[0, prompt_len:] != 0).sum())
        self.decoder_calls += int(out.decoder_calls.sum())
        self.global_calls += int(out.global_calls.sum())

    def summary(self) -> dict:
        per = max(self.bytes, 1)
        return dict(bytes_per_s=self.bytes / max(self.seconds, 1e-9), decoder_calls_per_byte=self.decoder_calls / per,
                    global_calls_per_byte=self.global_calls / per, generated_bytes=self.bytes)


def timed_generate(model, ids, timing: Timing, **kwargs):
    start = time.perf_counter()
    out = model.generate(ids, do_sample=False, return_dict_in_generate=True, **kwargs)
    timing.add(time.perf_counter() - start, out, ids.shape[1])
    return out.sequences[0, ids.shape[1]:]


@dataclass
class LineCompletionResult:
    exact_match: float
    edit_similarity: float
    timing: dict
    predictions: list = field(default_factory=list)  # (task, predicted line) pairs


@torch.no_grad()
def line_completion(model, tasks, max_new_bytes: int = LINE_MAX_NEW_BYTES, **generate_kwargs) -> LineCompletionResult:
    """Complete every task's line with one decoder setting (greedy, batch 1, stop at the first newline)."""
    timing, predictions, exact, similarity = Timing(), [], 0, 0.0
    for task in tasks:
        new = timed_generate(model, to_ids(task.prompt, task.starts_file), timing, max_new_tokens=max_new_bytes,
                             stop_strings=["\n"], **generate_kwargs)
        line = to_bytes(new).split(b"\n")[0]
        pred, true = line.decode("utf-8", "replace").rstrip(), task.target.decode("utf-8", "replace").rstrip()
        exact += pred == true
        similarity += edit_similarity(pred, true)
        predictions.append((task, line))
    n = max(len(tasks), 1)
    return LineCompletionResult(exact / n, similarity / n, timing.summary(), predictions)


@dataclass
class DegenerationResult:
    degeneration_rate: float
    distinct_4gram: float
    longest_runs: list
    timing: dict
    continuations: list = field(default_factory=list)  # bytes, one per prompt


@torch.no_grad()
def degeneration(model, prompts, new_bytes: int = 256, bos: bool = False, **generate_kwargs) -> DegenerationResult:
    """`new_bytes`-byte continuations (greedy, EOS ignored) of each (name, prompt bytes); `bos`: the prompts
    start a document (function headers, as `blt-hf generate` sends them)."""
    timing, texts = Timing(), []
    for _, prompt in prompts:
        new = timed_generate(model, to_ids(prompt, bos), timing, max_new_tokens=new_bytes, eos_token_id=None,
                             **generate_kwargs)
        texts.append(to_bytes(new))
    runs = [longest_run(t) for t in texts]
    n = max(len(texts), 1)
    return DegenerationResult(sum(r >= DEGENERATE_RUN for r in runs) / n,
                              sum(distinct_ngram_ratio(t) for t in texts) / n, runs, timing.summary(), texts)


@torch.no_grad()
def block_accuracy(model, rows, mask_rates=(0.25, 0.5, 0.75, 1.0), batch_size: int = 8, seed: int = 0,
                   revealed_bins: int = 4) -> dict:
    """Teacher-forced one-pass accuracy of the BLT-D block path on masked block bytes.

    {"by_position": [acc at block offset 0..B-1], "by_revealed": [acc per revealed-fraction bin],
    "overall", "predicted_space_share", "target_space_share", "masked_bytes"} pooled over `mask_rates`
    (each block masked at a fixed rate t, seeded as `evaluation.bits_per_byte`).
    """
    model.eval()
    B = model.config.diffusion_block_size
    if B < 1:
        raise ValueError("block_accuracy needs a BLT-D model (config.diffusion_block_size > 0)")
    hits_pos, count_pos = torch.zeros(B), torch.zeros(B)
    hits_rev, count_rev = torch.zeros(revealed_bins), torch.zeros(revealed_bins)
    space = BYTE_OFFSET + ord(" ")
    pred_space = target_space = 0
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for t in mask_rates:
            for i in range(0, len(rows), batch_size):
                ids = rows[i:i + batch_size].to(device)
                out = model(input_ids=ids, labels=ids, diffusion_t=t)
                masked, targets = out.block_masked.cpu(), out.block_targets.cpu()
                hit = (out.block_logits.argmax(-1).cpu() == targets) & masked
                real = (targets >= 0).sum(-1, keepdim=True)  # (b, nb, 1)
                revealed = (real - masked.sum(-1, keepdim=True)).float() / real.clamp(min=1)
                rev_bin = (revealed * revealed_bins).long().clamp(max=revealed_bins - 1).expand_as(masked)
                hits_pos += hit.sum((0, 1)).float()
                count_pos += masked.sum((0, 1)).float()
                hits_rev.index_add_(0, rev_bin[masked], hit[masked].float())
                count_rev.index_add_(0, rev_bin[masked], torch.ones(int(masked.sum())))
                pred_space += int((out.block_logits.argmax(-1).cpu()[masked] == space).sum())
                target_space += int((targets[masked] == space).sum())
    total = max(float(count_pos.sum()), 1.0)
    ratio = lambda h, c: [float(a / b) if b else None for a, b in zip(h, c)]  # noqa: E731
    return dict(by_position=ratio(hits_pos, count_pos), by_revealed=ratio(hits_rev, count_rev),
                overall=float(hits_pos.sum()) / total, predicted_space_share=pred_space / total,
                target_space_share=target_space / total, masked_bytes=int(total), mask_rates=list(mask_rates))
