"""Offline corpus: split by file, packing with BOS/EOS, determinism."""

import numpy as np
import pytest

from blt_hf.data import (Document, build_corpus, function_documents, pack_documents, split_documents, stdlib_documents,
                         text_documents)
from blt_hf.tokenization_fast_blt import BOS_ID, BYTE_OFFSET, EOS_ID


def _docs(n=40):
    return [Document(f"pkg/mod{i}.py", f"# module {i}\n" + "x = 1\n" * (i % 5 + 1)) for i in range(n)]


def test_split_is_by_file_deterministic_and_stable():
    docs = _docs()
    train, val = split_documents(docs, 0.25)
    assert val and train and {d.name for d in train}.isdisjoint({d.name for d in val})
    assert sorted(d.name for d in train + val) == sorted(d.name for d in docs)
    assert split_documents(docs, 0.25) == (train, val)
    # A file's split depends on its own name only: adding files moves nobody.
    _, val_more = split_documents(docs + [Document("new.py", "y = 2\n")], 0.25)
    assert {d.name for d in val} <= {d.name for d in val_more}


def test_packing_frames_documents_and_cuts_fixed_rows():
    docs = [Document("a", "hello"), Document("b", "wörld!"), Document("c", "xyz" * 10)]
    ds = pack_documents(docs, seq_len=8)
    rows = np.array(ds["input_ids"])
    stream = [BOS_ID, *(b + BYTE_OFFSET for b in b"hello"), EOS_ID, BOS_ID,
              *(b + BYTE_OFFSET for b in "wörld!".encode()), EOS_ID, BOS_ID, *(b + BYTE_OFFSET for b in b"xyz" * 10),
              EOS_ID]
    assert rows.shape == (len(stream) // 8, 8)
    assert rows.flatten().tolist() == stream[: rows.size]  # the tail that does not fill a row is dropped
    assert len(pack_documents(docs, seq_len=8, max_bytes=16)) == 2


def test_text_documents_reads_a_directory_sorted_and_skips_dirs(tmp_path):
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.py").write_text("ay")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "c.txt").write_text("no")
    (tmp_path / "d.bin").write_bytes(b"\0")
    docs = text_documents(tmp_path, skip_dirs={"skip"})
    assert [d.name for d in docs] == ["a.py", "b.txt"]


def test_build_corpus_from_a_directory_is_deterministic(tmp_path):
    for i in range(12):
        (tmp_path / f"f{i}.txt").write_text(f"file {i} " * 30)
    a = build_corpus(tmp_path, seq_len=32, validation_fraction=0.3)
    b = build_corpus(tmp_path, seq_len=32, validation_fraction=0.3)
    assert len(a["train"]) and len(a["validation"])
    assert a["train"]["input_ids"] == b["train"]["input_ids"]
    assert a["validation"]["input_ids"] == b["validation"]["input_ids"]


def test_stdlib_default_corpus_has_sources_and_docs():
    docs = stdlib_documents()
    names = [d.name for d in docs]
    assert "os.py" in names and not any("/test/" in f"/{n}" or "site-packages" in n for n in names)
    assert any(n.startswith("pydoc_data/topics.py#") for n in names)
    assert len(stdlib_documents(max_files=3)) == 3


def test_undecodable_files_are_skipped_and_reported(tmp_path, caplog):
    import logging

    from blt_hf.data import text_documents

    (tmp_path / "good.txt").write_text("hello\n")
    (tmp_path / "noise.txt").write_bytes(bytes(range(128, 256)) * 4)
    with caplog.at_level(logging.WARNING, logger="blt_hf.data"):
        docs = text_documents(tmp_path)
    assert [d.name for d in docs] == ["good.txt"]
    assert "skipped 1 file(s)" in caplog.text and "noise.txt" in caplog.text


@pytest.mark.parametrize("flag,value,message", [("--validation_fraction", "1.0", "validation_fraction must be in"),
                                                 ("--seq_len", "1", "seq_len must be >= 2"),
                                                 ("--function_fraction", "1.5", "function_fraction must be in"),
                                                 ("--data_dir", "/nonexistent/dir", "is not a directory")])
def test_training_arguments_are_checked_before_any_work(tmp_path, capsys, flag, value, message):
    from blt_hf import cli

    code = cli.main(["train", "--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--use_cpu", "true",
                     "--report_to", "none", flag, value])
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "entropy_model").exists()


SOURCE = """import os


def top(x):
    return x + 1


class Box:
    @property
    def size(self):
        \"\"\"The size.\"\"\"
        return 3

    async def fetch(self):
        def inner():
            return 1
        return inner()
"""


def test_function_documents_cut_each_def_to_its_end_dedented():
    docs = [Document("pkg/mod.py", SOURCE), Document("notes.txt", "def not_python(): pass\n"),
            Document("broken.py", "def f(:\n")]
    funcs = function_documents(docs, 1.0)
    assert {d.name: d.text for d in funcs} == {
        "pkg/mod.py#4": "def top(x):\n    return x + 1\n",
        "pkg/mod.py#10": 'def size(self):\n    """The size."""\n    return 3\n',  # starts at def, not the decorator
        "pkg/mod.py#14": "async def fetch(self):\n    def inner():\n        return 1\n    return inner()\n",
        "pkg/mod.py#15": "def inner():\n    return 1\n",
    }
    assert function_documents(docs, 0.0) == []
    # a share: the same functions every time, about that share of many
    many = [Document(f"m{i}.py", SOURCE) for i in range(200)]
    half = function_documents(many, 0.5)
    assert half == function_documents(many, 0.5) and 0.4 < len(half) / 800 < 0.6


def test_build_corpus_adds_functions_to_train_only(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i}.py").write_text(SOURCE * 4)
    plain = build_corpus(tmp_path, seq_len=64, validation_fraction=0.2)
    more = build_corpus(tmp_path, seq_len=64, validation_fraction=0.2, function_fraction=1.0)
    assert len(more["train"]) > len(plain["train"])
    assert more["validation"]["input_ids"] == plain["validation"]["input_ids"]
