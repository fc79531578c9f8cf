"""Draw BLT-D's denoising passes in the terminal (`blt-hf generate --show-steps`).

`StepPrinter` is a streamer: `generate(..., streamer=StepPrinter())` calls `put` with the prompt
and every committed chunk (row 0) and `put_draft` after every denoising pass (generation_fast_blt
`denoise`). It prints one line per pass: the last committed bytes (context) and the block, with
still-masked bytes as a block glyph and the bytes unmasked by this pass highlighted (ANSI colour
on a terminal, plain text otherwise); a pass that ends a block early (`unmasking_fallback="end_block"`
or `"next_or_end"`) says so. Every byte is drawn as exactly one character, so the block lines up pass
after pass. For BLT-DV it adds one line per draft: how many bytes verification kept.
`summary_line` is the one-line cost summary `blt-hf generate` prints after the text.
"""

import os
import sys

from .tokenization_fast_blt import BYTE_OFFSET, EOS_ID, MASK_ID

NEW, GREY, DIM, RESET = "\033[30;42m", "\033[90m", "\033[2m", "\033[0m"  # NEW: on green, so spaces show
# One character per byte: (unicode, ascii fallback) for the bytes that do not print as themselves.
GLYPHS = {"mask": ("█", "_"), "eos": ("∎", "#"), "\n": ("↵", "$"), "\t": ("→", ">"), "other": ("·", "?")}


def can_encode(stream, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
        return True
    except (LookupError, UnicodeEncodeError):
        return False


class StepPrinter:
    """Streamer that prints every denoising pass of row 0; `context` committed bytes shown before the block."""

    def __init__(self, stream=None, color: bool | None = None, context: int = 24, verify: bool = False):
        self.out = stream or sys.stdout
        tty = getattr(self.out, "isatty", lambda: False)()
        self.color = tty and "NO_COLOR" not in os.environ if color is None else color
        self.unicode = can_encode(self.out, "".join(g[0] for g in GLYPHS.values()))
        self.context, self.verify = context, verify
        self.committed: list[int] = []  # every id streamed so far (prompt included)
        self.block = self.passes = 0
        self.draft, self.given, self.pending_verdict = None, 0, False
        self.print(f"{'block':>5} {'pass':>4}  {'context':>{context}}│block  (█ masked, new bytes highlighted)"
                   .replace("█", self.glyph("mask")))

    # ------------------------------------------------------------------ streamer interface

    def put(self, value):
        """Prompt (1, N) or committed ids (C,): becomes context; after a BLT-DV draft, reports the verdict."""
        ids = [int(i) for i in value.reshape(-1)]
        if self.pending_verdict:
            self.report_verdict(ids)
        self.committed += ids

    def put_draft(self, value, masked=None, unmasked=None, **kwargs):
        """One denoising pass: value (B, Bs) ids with MASK at still-masked positions; masked/unmasked (B, Bs)."""
        value, masked, unmasked = value[0].tolist(), masked[0].tolist(), unmasked[0].tolist()
        if self.draft is None:  # first pass of a new block
            self.block, self.passes = self.block + 1, 0
            # Bytes known before the first pass (BLT-DV's pending byte) are already committed.
            self.given = sum(1 for v, m, u in zip(value, masked, unmasked) if v != MASK_ID and not m and not u)
        self.passes += 1
        end = len(self.committed) - self.given
        ctx = self.committed[max(0, end - self.context): end]
        ctx = [i for i in ctx if i >= BYTE_OFFSET or i == EOS_ID]
        # Positions past the requested length stay MASK but are never decoded: not drawn.
        width = max((j + 1 for j, (v, m) in enumerate(zip(value, masked)) if v != MASK_ID or m), default=0)
        cells = [self.cell(v, m, u) for v, m, u in zip(value[:width], masked[:width], unmasked[:width])]
        text = "".join(self.glyph_for(i) for i in ctx).rjust(self.context)
        text = f"{DIM}{text}{RESET}" if self.color else text
        done = not any(masked)
        # unmasking_fallback="end_block" / "next_or_end": a pass that decides nothing ends the block at its first MASK
        ends = " (block ends)" if done and not any(unmasked) else ""
        self.print(f"{self.block:>5} {self.passes:>4}  {text}│{''.join(cells)}│ +{sum(unmasked[:width])}{ends}")
        self.draft = None if done else value
        if done and self.verify:
            self.pending_verdict, self.last_draft = True, value

    def end(self):
        self.out.flush()

    # ------------------------------------------------------------------ drawing

    def report_verdict(self, chunk):
        """BLT-DV: the verifier keeps drafted bytes up to the first mismatch, then adds its own byte."""
        drafted = self.last_draft[self.given:]  # a cut block (end_block) drafted only up to its first MASK
        drafted = drafted[: drafted.index(MASK_ID)] if MASK_ID in drafted else drafted
        kept = 0  # the chunk is shorter than kept + 1 only where max_new_tokens cut it
        while kept < min(len(drafted), len(chunk)) and drafted[kept] == chunk[kept]:
            kept += 1
        self.pending_verdict = False
        self.print(f"{'':>5} {'':>4}  {'verified: kept':>{self.context}} {kept} of {len(drafted)} drafted bytes")

    def glyph(self, name: str) -> str:
        return GLYPHS[name][0 if self.unicode else 1]

    def glyph_for(self, i: int) -> str:
        if i == MASK_ID:
            return self.glyph("mask")
        if i == EOS_ID:
            return self.glyph("eos")
        b = i - BYTE_OFFSET
        if 32 <= b < 127:
            return chr(b)
        return self.glyph({10: "\n", 9: "\t"}.get(b, "other"))

    def cell(self, i: int, masked: bool, new: bool) -> str:
        g = self.glyph("mask") if masked else self.glyph_for(i)
        if not self.color:
            return g
        return f"{GREY}{g}{RESET}" if masked else f"{NEW}{g}{RESET}" if new else g

    def print(self, line: str):
        print(line, file=self.out, flush=True)


def summary_line(o, n, seconds, out) -> str:
    """One line: bytes, bytes/s, calls per byte (Fast BLT's cost counters), acceptance where drafts are verified."""
    knob = {"diffusion": f"B={o.block_size}, {o.unmasking}", "diffusion_verify": f"B={o.block_size}, {o.unmasking}",
            "self_speculation": f"k={o.draft_length}"}.get(o.decoding)
    if knob and o.unmasking == "confidence" and "diffusion" in o.decoding:
        knob += f" {o.confidence_threshold}"
    elif knob and o.unmasking == "entropy_bound" and "diffusion" in o.decoding:
        knob += f" {o.entropy_bound}"
    per = max(n, 1)
    glob, paper = int(out.global_calls[0]) / per, int(out.paper_global_calls[0]) / per
    parts = [f"{n} bytes in {seconds:.2f} s", f"{n / max(seconds, 1e-9):.1f} bytes/s",
             f"decoder calls/byte {int(out.decoder_calls[0]) / per:.3f}",
             f"global calls/byte {glob:.3f}" + (f" (paper's count {paper:.3f})" if paper != glob else "")]
    drafted = int(out.drafted_bytes[0])
    if o.decoding in ("self_speculation", "diffusion_verify"):
        parts.append(f"acceptance {int(out.accepted_bytes[0]) / max(drafted, 1):.2f} "
                     f"({int(out.accepted_bytes[0])}/{drafted} drafted)")
    return f"[{o.decoding}{f' ({knob})' if knob else ''}] " + " | ".join(parts)
