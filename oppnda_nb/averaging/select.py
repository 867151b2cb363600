"""OppNDA's file selection: which files of a folder are inputs, and why the others are not."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import OppndaError
from ..naming import plain_name
from .config import AveragerConfig, load_config

#: files a run writes beside its averages (never inputs, never listed as skipped)
OWN_FILES = frozenset({"run.json", ".oppnda.lock"})

def _file_kind(entry: os.DirEntry) -> str:
    import stat

    try:
        mode = entry.stat().st_mode
    except OSError:
        return "unreadable"
    for test, word in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return word
    return "special file"


def _select(folder: Path, config: AveragerConfig,
            params: dict[str, dict[str, str]] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """OppNDA's file selection over the folder listing (non-recursive, sorted by name)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise OppndaError(f"Cannot list folder {folder}: {exc}.") from None
    prefixes = sorted({s.prefix() for s in config.strategies if s.prefix()})
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    ext = config.extension
    for e in entries:
        name, path = e.name, e.path
        if name in OWN_FILES:
            continue
        plain = plain_name(name)
        try:
            regular = e.is_file()
        except OSError as exc:
            skipped.append((path, f"cannot stat: {exc.strerror or exc}"))
            continue
        if not regular:
            if not ext or plain.endswith(ext):  # named like a report: say why it is not read
                skipped.append((path, f"not a regular file ({_file_kind(e)})"))
            continue
        if ext and not plain.endswith(ext):
            skipped.append((path, f"not a {ext} file"))
            continue
        if "average" in name.lower():
            skipped.append((path, "earlier averaged output (name contains 'average')"))
            continue
        pre = next((p for p in prefixes if name.startswith(p)), None)
        if pre is not None:
            skipped.append((path, f"earlier averaged output (name starts with output prefix {pre!r})"))
            continue
        if config.contains and config.contains not in name:
            skipped.append((path, f"name does not contain {config.contains!r} (file_filter.contains)"))
            continue
        if config.report_types and not any((rt == "" or rt in name) for rt in config.report_types):
            skipped.append((path, "report type not in the config's report_types"))
            continue
        values, reason = config.pattern.parse_with_reason(plain)
        if values is None:
            skipped.append((path, reason or "file name does not match the name pattern"))
            continue
        files.append(path)
        if params is not None:
            params[path] = values
    return files, skipped


def select_files(folder: str | os.PathLike, config: Any = None, *,
                 params: dict[str, dict[str, str]] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(files to read, [(path, reason)] skipped) for a folder under OppNDA's selection rules.
    ``params``: a dict that receives each selected file's parameters from its name (parsed anyway)."""
    cfg = load_config(config)
    return _select(Path(folder), cfg, params)

