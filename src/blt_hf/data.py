"""Offline byte corpus: local text files -> train/validation splits -> packed byte sequences.

A *document* is one file (or one pydoc topic, see `stdlib_documents`; or, added to the training
split on request, one function, see `function_documents`). Documents go to the
validation split by a hash of their name, so the split is deterministic, never cuts a file in
two, and does not move when files are added or removed. Each split is packed as
`<s> doc </s><s> doc </s>...` and cut into rows of exactly `seq_len` ids (the tail that does not
fill a row is dropped), giving a `datasets.Dataset` with one `input_ids` column. A row may start
or end inside a document; BOS ids mark where documents begin, which is what the model's packed-
sequence handling reads. Nothing here touches the network.
"""

import ast
import hashlib
import logging
import os
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tokenization_fast_blt import encode_bytes

logger = logging.getLogger(__name__)
DEFAULT_SEQ_LEN = 1024  # bytes per row: ~256 patches at the paper's 4-byte mean patch size
DEFAULT_VALIDATION_FRACTION = 0.05
DEFAULT_SUFFIXES = (".py", ".txt", ".rst", ".md")
# Skipped inside the stdlib: tests (huge, repetitive, deliberately odd bytes), installed
# third-party packages, IDLE's test fixtures and the vendored lib2to3 test data.
STDLIB_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})


@dataclass(frozen=True)
class Document:
    name: str  # stable identifier (relative path); decides the split
    text: str


def text_documents(root, suffixes=DEFAULT_SUFFIXES, skip_dirs=frozenset(), max_files: int | None = None):
    """Every file under `root` with one of `suffixes`, sorted by relative path (deterministic)."""
    root = Path(root)
    paths = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip_dirs]  # prune: never walks into site-packages
        paths += [Path(folder) / f for f in files if Path(f).suffix in suffixes]
    docs, undecodable = [], []
    for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix())[:max_files]:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # would train as U+FFFD runs: skip it, and say so below
            undecodable.append(p.relative_to(root).as_posix())
            continue
        if text.strip():
            docs.append(Document(p.relative_to(root).as_posix(), text))
    if undecodable:
        logger.warning("skipped %d file(s) under %s that are not UTF-8 text: %s%s", len(undecodable), root,
                       ", ".join(undecodable[:5]), " ..." if len(undecodable) > 5 else "")
    return docs


def stdlib_documents(max_files: int | None = None) -> list[Document]:
    """The running Python's standard library sources plus the English documentation it ships.

    Sources: every *.py under `sysconfig.get_paths()["stdlib"]` outside STDLIB_SKIP_DIRS.
    Documentation: CPython installs no Doc/ tree, but two English texts ship with every build:
    `pydoc_data/topics.py` (the language-reference topics behind `help()`, ~0.5 MB; each topic
    becomes its own document named `pydoc_data/topics.py#<topic>`, replacing the file itself) and
    the *.txt / *.rst notes in the stdlib (LICENSE.txt, idlelib/*.txt, email/architecture.rst).
    Man pages (roff) and HTML help are not included. ~12 MB in total for CPython 3.11.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = [d for d in text_documents(root, skip_dirs=STDLIB_SKIP_DIRS, max_files=max_files)
            if d.name != "pydoc_data/topics.py"]
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions split pydoc_data into a separate package
        topics = {}
    docs += [Document(f"pydoc_data/topics.py#{key}", topics[key]) for key in sorted(topics)]
    return docs[:max_files]


def function_documents(docs, fraction: float, seed: int = 0) -> list[Document]:
    """Function-level documents cut from the `.py` documents: a function's or method's source from its
    `def` line to its last line, dedented, named `<file>#<def line>`, for the share `fraction` of them
    chosen by a hash of that name (deterministic). Files that do not parse are skipped.

    Why: whole files never start with a `def` line, but the README's job is a function header alone
    after BOS (`blt-hf generate "def read_config(path):"`); these documents put that start in training.
    Only ever given training documents, so every held-out measure stays on whole held-out files.
    """
    if fraction <= 0:
        return []
    out = []
    for doc in docs:
        if not doc.name.endswith(".py"):
            continue
        try:
            tree = ast.parse(doc.text)
        except (SyntaxError, ValueError):  # not Python 3 source (a template or a lib2to3 fixture)
            continue
        lines = doc.text.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            name = f"{doc.name}#{node.lineno}"
            if _unit_hash(name, seed) >= fraction:  # decide first: the unchosen ones are never cut out
                continue
            text = textwrap.dedent("".join(lines[node.lineno - 1:node.end_lineno]))
            # a multi-line string at column 0 inside the body leaves the def indented: not a header start
            if text.startswith(("def ", "async def ")):
                out.append(Document(name, text))
    return out


def _unit_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_validation(name: str, validation_fraction: float, seed: int = 0) -> bool:
    """Hash the name to [0, 1): a file's split depends on its own name only."""
    return _unit_hash(name, seed) < validation_fraction


def split_documents(docs, validation_fraction: float = DEFAULT_VALIDATION_FRACTION, seed: int = 0):
    """(train, validation) lists of documents; at least one document lands in each when possible."""
    val = [d for d in docs if is_validation(d.name, validation_fraction, seed)]
    train = [d for d in docs if not is_validation(d.name, validation_fraction, seed)]
    if validation_fraction > 0 and not val and len(train) > 1:
        val = [train.pop()]  # tiny corpora: the hash gave none, take the last file
    return train, val


def pack_documents(docs, seq_len: int = DEFAULT_SEQ_LEN, max_bytes: int | None = None):
    """Documents -> `datasets.Dataset` of `input_ids` rows of exactly `seq_len` ids."""
    from datasets import Dataset

    stream = np.concatenate(encode_bytes([d.text for d in docs], add_bos=True, add_eos=True)) if docs else np.zeros(0)
    if max_bytes is not None:
        stream = stream[:max_bytes]
    rows = stream[: len(stream) // seq_len * seq_len].reshape(-1, seq_len).astype(np.int64)
    return Dataset.from_dict({"input_ids": rows.tolist()})


def build_corpus(data_dir=None, seq_len: int = DEFAULT_SEQ_LEN, validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
                 max_files: int | None = None, max_train_bytes: int | None = None,
                 max_validation_bytes: int | None = None, seed: int = 0, function_fraction: float = 0.0):
    """A `DatasetDict` with "train" and "validation"; default corpus: `stdlib_documents()`.
    `function_fraction`: that share of the training files' functions is added to "train" as documents of
    their own (`function_documents`), packed after the files (so a `max_train_bytes` cut drops them
    first); "validation" never gets any."""
    from datasets import DatasetDict

    docs = stdlib_documents(max_files) if data_dir is None else text_documents(data_dir, max_files=max_files)
    if not docs:
        raise ValueError(f"no text files found under {data_dir}")
    train, val = split_documents(docs, validation_fraction, seed)
    train = train + function_documents(train, function_fraction, seed)
    return DatasetDict(train=pack_documents(train, seq_len, max_train_bytes),
                       validation=pack_documents(val, seq_len, max_validation_bytes))
