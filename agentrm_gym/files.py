"""Files on the ground floor: atomic writes, JSONL (append, read, repair a torn last line), the cache dir.

* :func:`write_json_atomic` / :func:`write_text_atomic` - a temporary file in the target's directory,
  then ``os.replace`` (a reader never sees a half-written file); JSON is strict (NaN / inf as ``null``,
  :func:`strict_json`);
* :func:`append_jsonl` / :func:`read_jsonl` / :func:`repair_jsonl` / :func:`rewrite_jsonl` /
  :func:`write_jsonl_atomic` - JSON lines, appended as work finishes; a last line cut short by an
  interrupted writer is skipped on read and dropped on repair;
* :func:`write_dir_atomic` / :func:`remove_debris` - a directory written under a hidden temporary name and
  renamed into place; what an interrupted writer left (hidden entries) removed before a stage resumes;
* :func:`kill_point` - named points where the kill-resume tests SIGKILL the process (``AGENTRM_KILL_AT``);
* :func:`cache_dir` - ``$AGENTRM_CACHE`` (default ``~/.cache/agentrm_gym``), where generated data lives.

Nothing here imports another agentrm_gym module.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` through a temporary file and a rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        kill_point("atomic-write")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) through a temporary file and a rename (never a half-written file)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN / inf floats (also numpy ones, inside dicts, lists and tuples) as ``None``.

    Strict JSON readers (JavaScript, ``jq``, Go) reject the bare ``NaN`` / ``Infinity`` Python writes.
    Other values are returned as they are (``json.dumps(default=str)`` handles paths and the like).
    """
    if isinstance(obj, float):  # numpy.float64 is a float subclass
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    if type(obj).__module__ == "numpy":  # numpy scalars and arrays: as Python values
        if hasattr(obj, "tolist"):
            return strict_json(obj.tolist())
    return obj


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 1, ensure_ascii: bool = False) -> Path:
    """Write ``data`` as strict JSON atomically: NaN / inf become ``null`` (:func:`strict_json`),
    ``default=str`` for paths and other non-JSON values."""
    text = json.dumps(strict_json(data), indent=indent, ensure_ascii=ensure_ascii, default=str, allow_nan=False)
    return write_text_atomic(path, text)


def append_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """Append records (dicts, or objects with ``to_dict()``) to a JSONL file, one a line.

    Append-only, so an interrupted run loses nothing already written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r.to_dict() if hasattr(r, "to_dict") else r, ensure_ascii=False) + "\n"
                   for r in records)
    with path.open("a", encoding="utf-8") as f:
        if _KILL_ENV in os.environ or _KILL_TRACE_ENV in os.environ:  # the kill-resume tests: a kill here leaves the last line cut short
            f.write(text[: len(text) // 2])
            f.flush()
            kill_point("append")
            text = text[len(text) // 2:]
        f.write(text)
        f.flush()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read a JSONL file, skipping a truncated last line left by an interrupted writer."""
    with Path(path).open(encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                return
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({exc.msg})") from exc


def repair_jsonl(path: str | Path) -> None:
    """Drop a last line cut short by an interrupted writer, so that appending to the file stays valid JSONL."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def write_jsonl_atomic(path: str | Path, records: Iterable[Any]) -> Path:
    """Write a whole JSONL file atomically (records: dicts, or objects with ``to_dict()``)."""
    return write_text_atomic(path, "".join(
        json.dumps(r.to_dict() if hasattr(r, "to_dict") else r, ensure_ascii=False) + "\n" for r in records))


def rewrite_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The complete records of ``path`` (``[]`` if it does not exist), rewriting it atomically without a
    cut-short or unparsable last line."""
    path = Path(path)
    if not path.exists():
        return []
    records = list(read_jsonl(path))
    write_jsonl_atomic(path, records)
    return records


def write_dir_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Fill a directory through ``write(tmp)`` on a hidden temporary sibling, then rename it to ``path``.

    A reader (or a resumed stage) never sees a half-written directory: an interrupted writer leaves only
    the hidden ``.<name>.partial`` entry, which :func:`remove_debris` removes. An existing ``path`` is
    replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write(tmp)
    kill_point("atomic-dir")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def remove_debris(directory: str | Path) -> list[Path]:
    """Remove every hidden entry (a name starting with ``.``) under ``directory``; returns what was removed.

    Stages write hidden names only as temporaries (this module's atomic writes, :func:`write_dir_atomic`,
    the temporary files libraries such as ``transformers`` create beside their outputs), so whatever hidden
    entry is left when a stage starts again is the debris of an interrupted write, whatever its name.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in sorted(directory.rglob(".*"), key=lambda p: len(p.parts)):
        if any(p in removed for p in entry.parents):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


#: The environment variable naming the point and count at which :func:`kill_point` kills the process.
_KILL_ENV = "AGENTRM_KILL_AT"
_KILL_TRACE_ENV = "AGENTRM_KILL_TRACE"
_kill_counts: dict[str, int] = {}


def kill_point(name: str) -> None:
    """A named point of a stage where the kill-resume tests SIGKILL this process.

    With ``AGENTRM_KILL_AT=NAME:N`` the process kills itself at the N-th call of ``kill_point(NAME)``; with
    ``AGENTRM_KILL_TRACE=FILE`` each call appends its name to FILE (how a test learns a stage's points and
    their counts). The counts depend on the seed only, so a kill lands at the same place on a fast and on
    a slow machine. Without either variable this does nothing.
    """
    at, trace = os.environ.get(_KILL_ENV), os.environ.get(_KILL_TRACE_ENV)
    if not at and not trace:
        return
    n = _kill_counts[name] = _kill_counts.get(name, 0) + 1
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if at == f"{name}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


def cache_dir(*parts: str) -> Path:
    """``$AGENTRM_CACHE`` (default ``~/.cache/agentrm_gym``) joined with ``parts``, created on demand."""
    root = Path(os.environ.get("AGENTRM_CACHE", Path.home() / ".cache" / "agentrm_gym"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
