"""Crash-safe training outputs: checkpoints that are complete or ignored, and a `final/` that is always loadable.

* A Trainer checkpoint is written in place (`checkpoint-N/`), so a kill or a full disk mid-save leaves
  a partial directory that Trainer's own resume would pick (it takes the highest N). Before resuming,
  `resume_checkpoint` checks every `checkpoint-N` for completeness, sets incomplete ones aside as
  `checkpoint-N.incomplete` (warning which, and why) and resumes from the newest complete one; with
  none it starts fresh and says so.
* Published directories (`final/`, the entropy model) are symlinks to versioned siblings, switched with
  one atomic rename: at every instant the name points at a complete directory, old or new.
* A full disk is reported as such, with the directory, instead of torch's `iostream error`.
"""

import errno
import json
import logging
import os
import re
import shutil
import struct
import uuid
import zipfile
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors")
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt")


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (header unreadable, or shorter than its header says), or None."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as err:
        return f"{path.name}: unreadable header ({err.__class__.__name__})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    size = path.stat().st_size
    return None if size == 8 + n + end else f"{path.name}: {size} bytes, its header needs {8 + n + end}"


def checkpoint_problems(path, needs_training_state: bool = True) -> list[str]:
    """Everything missing or truncated in a Trainer checkpoint directory ([] = complete)."""
    path, problems = Path(path), []
    try:
        json.loads((path / "trainer_state.json").read_text())["global_step"]
    except (OSError, ValueError, KeyError) as err:
        problems.append(f"trainer_state.json: {err.__class__.__name__}")
    weights = [path / name for name in WEIGHT_FILES if (path / name).exists()]
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            weights += [path / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{index.name}: {err.__class__.__name__}")
    if not weights and not index.exists():
        problems.append("no model weights")
    problems += [p for w in weights if (p := (f"{w.name}: missing" if not w.exists() else safetensors_problem(w)))]
    required = TRAINING_STATE_FILES if needs_training_state else ()
    problems += [f"{name}: missing" for name in required if not (path / name).exists()]
    if needs_training_state and not list(path.glob("rng_state*.pth")):  # without it, resume is not exact
        problems.append("rng_state.pth: missing")
    for f in sorted(path.glob("*.pt")) + sorted(path.glob("*.pth")):  # torch.save writes zip archives
        if not zipfile.is_zipfile(f):
            problems.append(f"{f.name}: truncated")
    return problems


def resume_checkpoint(output_dir, needs_training_state: bool = True) -> str | None:
    """The newest complete `checkpoint-N` in output_dir (incomplete ones set aside, with a warning), or None."""
    output_dir = Path(output_dir)
    found = sorted((int(m.group(1)), p) for p in output_dir.glob("checkpoint-*")
                   if p.is_dir() and (m := CHECKPOINT_RE.match(p.name)))
    for _, path in reversed(found):
        problems = checkpoint_problems(path, needs_training_state)
        if not problems:
            return str(path)
        aside = path.with_name(f"{path.name}.incomplete")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(path, aside)
        logger.warning("skipping incomplete checkpoint %s (%s); moved to %s", path, "; ".join(problems), aside.name)
    logger.warning("nothing to resume from in %s: starting from step 0", output_dir)
    return None


def publish_dir(tmp, path) -> Path:
    """Make `path` name the finished directory `tmp`, atomically: `path` becomes a symlink to a versioned
    sibling `.{name}-<id>`, replaced by one rename, so it never names a missing or partial directory.
    A plain directory left at `path` by an older version is moved aside first (the only non-atomic case)."""
    tmp, path = Path(tmp), Path(path)
    version = path.with_name(f".{path.name}-{uuid.uuid4().hex[:12]}")
    os.replace(tmp, version)
    link = path.with_name(f".{path.name}.link-{uuid.uuid4().hex[:12]}")
    os.symlink(version.name, link)
    if path.is_dir() and not path.is_symlink():
        os.replace(path, path.with_name(f".{path.name}-legacy-{uuid.uuid4().hex[:12]}"))
    os.replace(link, path)
    for stale in path.parent.glob(f".{path.name}-*"):  # earlier versions (also of interrupted publishes)
        if stale.name != version.name:
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    for stale in path.parent.glob(f".{path.name}.link-*"):
        stale.unlink(missing_ok=True)
    return path


def is_disk_full(err: BaseException, directory) -> bool:
    """ENOSPC, or torch's C++ stream error on a disk with (almost) no free space left."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, RuntimeError) and ("iostream" in str(err) or "file write failed" in str(err)):
        try:
            return shutil.disk_usage(directory).free < 64 << 20
        except OSError:
            return False
    return False


class DiskFullError(OSError):
    def __init__(self, directory):
        free = shutil.disk_usage(directory).free
        super().__init__(errno.ENOSPC, f"disk full while writing to {directory} ({free / 2**20:.1f} MiB free): "
                                       "free some space, then resume with --resume_from_checkpoint true "
                                       "(incomplete checkpoints are skipped)")


@contextmanager
def reporting_full_disk(directory):
    """Re-raise a full disk inside the block as DiskFullError naming `directory`; other errors unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if is_disk_full(err, directory):
            raise DiskFullError(directory) from err
        raise
