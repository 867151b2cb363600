"""OppNDA's file selection: which files of a folder are inputs, and why the others are not."""
from __future__ import annotations

import os
from operator import attrgetter
from pathlib import Path
from typing import Any

from ..errors import OppndaError
from ..naming import memo_for, plain_name
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


#: what the selection decided for a regular file's name, per selection rule set (extension, filters,
#: output prefixes, name pattern): a re-run of a folder decides each name once; bounded like the
#: name pattern's own memory
_DECISIONS: dict[tuple, dict[str, tuple[dict[str, str] | None, str | None]]] = {}


def _decisions(config: AveragerConfig, prefixes: list[str]) -> dict[str, tuple[dict[str, str] | None, str | None]]:
    return memo_for(_DECISIONS, (config.extension, config.contains, tuple(config.report_types), tuple(prefixes),
                                 config.pattern.definition()))


def _decide(name: str, config: AveragerConfig, prefixes: list[str]) -> tuple[dict[str, str] | None, str | None]:
    """(parameters, None) if a regular file of this name is an input, else (None, why not)."""
    ext = config.extension
    plain = plain_name(name)
    if ext and not plain.endswith(ext):
        return None, f"not a {ext} file"
    if "average" in name.lower():
        return None, "earlier averaged output (name contains 'average')"
    pre = next((p for p in prefixes if name.startswith(p)), None)
    if pre is not None:
        return None, f"earlier averaged output (name starts with output prefix {pre!r})"
    if config.contains and config.contains not in name:
        return None, f"name does not contain {config.contains!r} (file_filter.contains)"
    if config.report_types and not any((rt == "" or rt in name) for rt in config.report_types):
        return None, "report type not in the config's report_types"
    values, reason = config.pattern.parse_with_reason(plain)
    if values is None:
        return None, reason or "file name does not match the name pattern"
    return values, None


def _select(folder: Path, config: AveragerConfig,
            params: dict[str, dict[str, str]] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """OppNDA's file selection over the folder listing (non-recursive, sorted by name)."""
    try:
        entries = sorted(os.scandir(folder), key=attrgetter("name"))
    except OSError as exc:
        raise OppndaError(f"Cannot list folder {folder}: {exc}.") from None
    prefixes = sorted({s.prefix() for s in config.strategies if s.prefix()})
    decided = _decisions(config, prefixes)
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    ext = config.extension
    for e in entries:
        name = e.name
        if name in OWN_FILES:
            continue
        try:
            regular = e.is_file()
        except OSError as exc:
            skipped.append((e.path, f"cannot stat: {exc.strerror or exc}"))
            continue
        if not regular:
            if not ext or plain_name(name).endswith(ext):  # named like a report: say why it is not read
                skipped.append((e.path, f"not a regular file ({_file_kind(e)})"))
            continue
        hit = decided.get(name)
        if hit is None:
            hit = decided[name] = _decide(name, config, prefixes)
        values, reason = hit
        path = e.path
        if values is None:
            skipped.append((path, reason))
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

