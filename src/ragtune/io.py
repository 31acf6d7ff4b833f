"""Atomic writes and JSON Lines.

Every artifact is written under a temporary name in its final folder and renamed into place,
so a job killed halfway never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owned(final: Path) -> Path:
    """``final`` itself, when it names one entry inside its folder: the only path an atomic
    write may replace (and, for a folder, remove first). A path ending in '..' or '.' would
    name a folder above, such as the whole results folder. A '..' earlier in the path (a
    results folder given as ``../elsewhere``) is fine: the last part still names an entry."""
    if final.name in ("", ".", "..") or os.path.dirname(os.path.normpath(final)) != (
        os.path.normpath(final.parent)
    ):
        raise ValueError(
            f"refusing to write {final}: it resolves to {final.resolve()}, not to an entry of "
            f"its folder {final.parent}; a name in the config ('..'?) made this path"
        )
    return final


def _plain_modes(path: Path) -> None:
    """The modes a plain ``open`` / ``mkdir`` gives under the umask, on ``path`` and, for a
    folder, on everything in it: some writers (safetensors) leave their files owner-only."""
    mask = _umask()
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    for entry in entries:
        if not entry.is_symlink():
            os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file or folder is made owner-only (``mkstemp`` / ``mkdtemp``); before the
    rename it gets the mode a plain ``open`` or ``mkdir`` would have given it under the umask,
    so that colleagues on a shared cluster can read ``results/`` as they read any other file."""
    final = _owned(Path(path))
    final.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            _plain_modes(tmp)
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _open_text(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    path = Path(path)
    with _open_text(path, "r") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically; return how many were written."""
    n = 0
    path = Path(path)
    with atomic_path(path) as tmp:
        # The temporary name has no .gz suffix, so compress according to the final name.
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
