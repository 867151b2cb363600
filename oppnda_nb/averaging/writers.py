"""Atomic writers that only write inside the output folder, and safe output names."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from ..errors import OppndaError

_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


def printable(path: str) -> str:
    """A file name as text that any UTF-8 output takes: bytes that are not UTF-8 (kept by Python as
    surrogates) become ``\\xNN`` escapes, losslessly; every other name is unchanged."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def safe_token(s: str) -> str:
    """``s`` with path separators and control characters replaced by ``_`` (never empty)."""
    return _UNSAFE.sub("_", str(s)) or "_"


def safe_output_name(name: str) -> str:
    """A file name that can only land inside the output folder: separators, drive colons and control
    characters become ``_``, leading dots are dropped (no ``..``, no hidden files), never empty."""
    n = _UNSAFE.sub("_", str(name)).strip()
    n = n.lstrip(".").strip()
    if not n:
        n = "averaged.txt"
    return n[:240]


_UMASK: list[int] = []


def _umask() -> int:
    if not _UMASK:
        old = os.umask(0o022)
        os.umask(old)
        _UMASK.append(old)
    return _UMASK[0]


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w"):
    """A file handle (``mode`` "w": UTF-8 text, "wb": bytes) whose content replaces ``path`` only when
    the block ends without error: a temp file in the same folder + os.replace, so readers never see
    half a file, and large tables are written without a copy in memory."""
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-", suffix=".part")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with (os.fdopen(fd, "wb") if "b" in mode else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def inside(out_dir: Path, name: str) -> Path:
    """``out_dir / name``, refusing any name that would land outside ``out_dir``."""
    target = out_dir / name
    if target.parent.resolve() != out_dir.resolve() or os.path.isabs(name) or name in ("", ".", ".."):
        raise OppndaError(f"Refusing to write {name!r} outside the output folder {out_dir}.")
    return target


class Protected:
    """The run's input files, which an output must never replace. An atomic write replaces the
    directory entry only (a symlink or a hard link at the target leaves its file alone), so the
    target holds an input when its folder is an input's folder (by device and inode, so also
    through a symlinked folder) and the names are equal. The input folders are read once, and only
    when an output already exists."""

    def __init__(self, inputs: Iterable[str]):
        self._inputs = list(inputs)
        self._names: dict[tuple[int, int], set[str]] | None = None   # input folder identity -> names

    def holds(self, target: Path) -> bool:
        if not os.path.lexists(target):
            return False  # not there: it is no input
        try:
            st = os.stat(target.parent)
        except OSError:
            return False
        if self._names is None:
            by_dir: dict[str, set[str]] = {}
            if os.altsep:
                for p in self._inputs:
                    d, name = os.path.split(p)
                    by_dir.setdefault(d or ".", set()).add(name)
            else:   # (the same split, cheaper: a folder "a/" or "a//" is stat-ed as the same folder)
                sep, last = os.sep, None
                for p in self._inputs:
                    d, found, name = p.rpartition(sep)
                    if d != last:
                        names, last = by_dir.setdefault(d or (sep if found else "."), set()), d
                    names.add(name)
            self._names = {}
            for d, names in by_dir.items():
                try:
                    s = os.stat(d)
                except OSError:
                    continue
                self._names.setdefault((s.st_dev, s.st_ino), set()).update(names)
        return target.name in self._names.get((st.st_dev, st.st_ino), ())


class OutputFolder:
    """The folder a run writes into: checked before any work, locked while the run writes.

    :meth:`check` refuses (``OppndaError``) a folder that cannot be written, and any planned
    output that would replace one of the run's input files. :meth:`lock` takes
    ``.oppnda.lock`` (the owner's PID inside; a lock whose process is gone is stale and taken
    over), so two runs never mix their files in one folder.
    """

    LOCK = ".oppnda.lock"

    def __init__(self, path: Path):
        self.path = Path(path)
        self._locked = False

    def check(self, names: list[str] | Callable[[], list[str]], inputs: list[str] | None = None, *,
              input_folders: Iterable[str | os.PathLike] | None = None) -> None:
        """Fail early: the folder must be writable and no planned name may be an input file.
        ``names`` may be a function that gives them; ``input_folders``: the folders every input is
        directly in, if known: when the output folder is none of them, no name can be an input
        there, and the names are not even computed."""
        out = self.path.resolve()
        if input_folders is not None and all(os.path.realpath(f) != str(out) for f in input_folders):
            inputs = None
        if inputs:
            names = names() if callable(names) else names
            here: dict[str, str] = {}  # realpath of each input folder, computed once per folder
            for p in inputs:
                d = os.path.dirname(p)
                if d not in here:
                    here[d] = os.path.realpath(d or ".")
            same = {d for d, real in here.items() if real == str(out)}
            ins = {os.path.basename(p) for p in inputs if os.path.dirname(p) in same} if same else set()
            clash = [n for n in names if n in ins]
            if clash:
                raise OppndaError(
                    f"Refusing to run: {len(clash)} output file(s) would replace input reports in {out} "
                    f"(e.g. {clash[0]}). Choose another output folder (--output) or output_template.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=str(self.path), prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OppndaError(f"Cannot write into the output folder {self.path}: {exc.strerror or exc}. "
                              "Choose a writable folder with --output.") from None

    def lock(self) -> None:
        """Take the folder's lock or raise OppndaError naming the run that holds it."""
        target = self.path / self.LOCK
        self.path.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _lock_owner(target)
                if owner is not None and _alive(owner):
                    raise OppndaError(f"Another run (PID {owner}) is writing into {self.path}. Wait for it, stop "
                                      "it, or choose another output folder (--output).") from None
                try:
                    os.unlink(target)  # stale: its process is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._locked = True
            return
        raise OppndaError(f"Could not lock the output folder {self.path}; try again.")

    def unlock(self) -> None:
        if self._locked:
            self._locked = False
            try:
                os.unlink(self.path / self.LOCK)
            except FileNotFoundError:
                pass

    def write_json(self, name: str, data: dict) -> Path:
        """``name`` in the folder, written atomically."""
        import json

        target = inside(self.path, name)
        atomic_write(target, json.dumps(data, indent=2, default=str) + "\n")
        return target


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
