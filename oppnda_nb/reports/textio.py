"""Reading report bytes safely (plain or gzip) and validating that they are text, whole or in blocks."""
from __future__ import annotations

import gzip
import os
import zlib
from typing import BinaryIO, Iterator

import numpy as np

from .base import ReportError, snippet

GZIP_MAGIC = b"\x1f\x8b"


def _open_error(path: str, exc: BaseException) -> ReportError:
    if isinstance(exc, FileNotFoundError):
        return ReportError(path, "file not found (was it moved or deleted?)")
    if isinstance(exc, IsADirectoryError):
        return ReportError(path, "is a directory, not a report file")
    if isinstance(exc, PermissionError):
        return ReportError(path, "permission denied: cannot read the file (check its permissions)")
    if isinstance(exc, MemoryError):
        return ReportError(path, "out of memory while reading the file")
    if isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error)):
        return ReportError(path, f"not a valid gzip file (corrupt or cut off): {exc}")
    return ReportError(path, f"cannot read the file: {getattr(exc, 'strerror', None) or exc}")


def open_report(path: str) -> BinaryIO:
    """The file's bytes as a stream: gzip-compressed files (``*.txt.gz`` or gzip magic) are decompressed."""
    try:
        fh = open(path, "rb")
        if fh.read(2) == GZIP_MAGIC:
            fh.seek(0)
            return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
        fh.seek(0)
        return fh
    except (OSError, MemoryError) as exc:
        raise _open_error(path, exc) from None


def is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == GZIP_MAGIC
    except OSError:
        return False


#: the first read of :func:`_read_bytes`: a key:value report (about 400 bytes) is read whole by it
_FIRST_READ = 1 << 16


def _read_bytes(path: str) -> bytes:
    """The whole file's (decompressed) bytes; gzip is recognised by its magic bytes. Read through the
    file descriptor (no file object: a tiny report costs half the time), one read for a small file."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, _FIRST_READ)
            if len(data) == _FIRST_READ:       # more: the rest, sized by the file
                parts, got = [data], len(data)
                while True:
                    more = os.read(fd, max(os.fstat(fd).st_size - got, 0) + _FIRST_READ)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
        finally:
            os.close(fd)
        return gzip.decompress(data) if data[:2] == GZIP_MAGIC else data
    except (OSError, MemoryError, EOFError, zlib.error) as exc:
        raise _open_error(path, exc) from None


def read_head(path: str, n: int) -> bytes:
    """The first ``n`` (decompressed) bytes, b"" if unreadable (for sniffing)."""
    try:
        with open_report(path) as fh:
            return fh.read(n)
    except (ReportError, OSError, EOFError, zlib.error):
        return b""


def _check_chars(path: str, data: bytes, offset: int) -> None:
    """NUL bytes and non-UTF-8 bytes in ``data`` (which starts at file offset ``offset``) are errors."""
    if b"\x00" in data:
        at = offset + data.index(b"\x00")
        raise ReportError(path, f"contains NUL bytes (first at offset {at}): binary data, not a text report")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start]
            raise ReportError(path, f"not UTF-8/ASCII text: byte 0x{bad:02x} at offset {offset + exc.start} "
                                    "(wrong encoding or binary data? ONE writes ASCII)") from None


def _empty_error(path: str) -> ReportError:
    return ReportError(path, "empty file (0 bytes): ONE writes most reports only when a run ends, "
                             "so the run was probably killed or is still running")


def _cut_line(path: str, partial: bytes, total: int, complete: bool, warns: list[str], strict: bool) -> None:
    """The file ends without a newline: error if nothing complete is left (or ``strict``), else warn."""
    shown = snippet(partial[:60].decode("utf-8", "replace"))
    if not complete:
        raise ReportError(path, f"truncated: no complete line (the file ends mid-line after {total} bytes: {shown})")
    if strict:
        raise ReportError(path, f"truncated: the last line {shown} has no newline, so its value may be cut "
                                "(run killed while writing?); ONE ends every line with a newline. "
                                "Re-run or remove the file")
    warns.append(f"truncated: the file does not end with a newline; incomplete last line {shown} dropped "
                 "(run killed while writing?)")


def _check_text(path: str, data: bytes, warns: list[str], *, strict_end: bool = False) -> bytes:
    """Validate that ``data`` is a newline-terminated text report; drop an incomplete last line
    (``strict_end``: an incomplete last line with content is an error, for key:value reports)."""
    if not data:
        raise _empty_error(path)
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        data = data[3:]
        warns.append("file starts with a UTF-8 byte order mark (ignored); ONE writes plain ASCII")
    _check_chars(path, data, 3 if bom else 0)
    if data.isspace():
        raise ReportError(path, f"contains only whitespace ({len(data)} bytes), no report data")
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        partial = data[cut + 1:]
        complete = not (cut < 0 or data[:cut + 1].isspace())
        _cut_line(path, partial, len(data), complete, warns, strict_end and bool(partial.strip()))
        data = data[:cut + 1]
    return data


def count_lines(data: bytes) -> int:
    """Newlines in ``data``: numpy compares 8-10x faster than ``bytes.count`` for one byte."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


class LineAt:
    """The 1-based number of the line starting at byte ``offset`` of the (decompressed) file
    ``path``, counted only when asked (an error message): the snapshot blocks skip counting lines."""

    __slots__ = ("path", "offset", "_n")

    def __init__(self, path: str, offset: int) -> None:
        self.path, self.offset, self._n = path, offset, None

    def __int__(self) -> int:
        if self._n is None:
            n, left = 1, self.offset
            try:
                with open_report(self.path) as fh:
                    while left > 0:
                        raw = fh.read(min(left, 1 << 22))
                        if not raw:
                            break
                        n += count_lines(raw)
                        left -= len(raw)
            except (ReportError, OSError, EOFError, zlib.error):
                pass                             # the file changed under us: the count so far
            self._n = n
        return self._n

    __index__ = __int__

    def __gt__(self, other: int) -> bool:
        return self.offset > 0 and int(self) > other

    def __eq__(self, other: object) -> bool:
        return int(self) == other

    def __hash__(self) -> int:
        return hash(int(self))

    def __str__(self) -> str:
        return str(int(self))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(int(self), spec)


class Blocks:
    """Complete-line blocks of about ``chunk_bytes`` (validated like :func:`_check_text`) with the
    1-based number of each block's first line, as ``(block, line)`` pairs. Memory: one block plus
    one partial line. :meth:`snapshots` makes them whole snapshots instead (cut only before '[' lines)."""

    def __init__(self, path: str, chunk_bytes: int, warns: list[str]) -> None:
        self.path, self.chunk_bytes, self.warns = path, chunk_bytes, warns
        self.cut = b"\n"        # blocks end after this (without its last byte)
        self.lazy = False       # line numbers: LineAt (counted on demand) instead of counted ints

    def snapshots(self, most: int | None = None) -> "Blocks":
        """Cut blocks only before lines starting with '[' (a snapshot is never split; one larger than
        ``chunk_bytes`` makes a larger block) and count lines only when a number is asked for;
        ``most``: read at most this many bytes at a time (smaller blocks than ``chunk_bytes``)."""
        self.cut, self.lazy = b"\n[", True
        if most is not None:
            self.chunk_bytes = max(1, min(self.chunk_bytes, int(most)))
        return self

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        return _blocks(self.path, self.chunk_bytes, self.warns, self.cut, self.lazy)


def iter_blocks(path: str, chunk_bytes: int, warns: list[str]) -> Blocks:
    """Complete-line blocks of about ``chunk_bytes`` with their first line's number (:class:`Blocks`)."""
    return Blocks(path, chunk_bytes, warns)


def _blocks(path: str, chunk_bytes: int, warns: list[str], sep: bytes, lazy: bool) -> Iterator[tuple[bytes, int]]:
    carry: list[bytes] = []     # what follows the last cut (for b"\n": never a newline)
    offset = 0          # file offset of carry[0]
    line = 1
    content = False     # a non-whitespace byte seen
    first = True
    total = 0
    keep = len(sep) - 1         # bytes of the separator that belong to the next block
    tail = b""
    try:
        with open_report(path) as fh:
            while True:
                raw = fh.read(chunk_bytes)
                total += len(raw)
                eof = not raw
                if first and raw:
                    first = False
                    if raw.startswith(b"\xef\xbb\xbf"):
                        raw = raw[3:]
                        offset = 3
                        warns.append("file starts with a UTF-8 byte order mark (ignored); ONE writes plain ASCII")
                block = b""
                if not eof:
                    cut = raw.rfind(sep)
                    if cut < 0 and keep and carry and carry[-1].endswith(sep[:1]) and raw.startswith(sep[1:]):
                        # the separator spans the two reads: cut after the carry
                        block = b"".join(carry)
                        carry = [raw]
                    elif cut < 0:
                        carry.append(raw)
                        continue
                    else:
                        cut += 1                # block: up to and with the newline
                        if carry:    # one copy: the carried part and this read's complete part
                            block = b"".join(carry + [memoryview(raw)[:cut]])
                        else:
                            block = raw if cut == len(raw) else raw[:cut]
                        carry = [raw[cut:]] if cut < len(raw) else []
                    del raw
                elif carry and keep:            # the end: the carried snapshots' complete lines
                    rest = b"".join(carry)
                    nl = rest.rfind(b"\n") + 1
                    block, tail = rest[:nl], rest[nl:]
                    carry = [tail] if tail else []
                if block:
                    _check_chars(path, block, offset)
                    if content or not block.isspace():
                        content = True
                        yield block, (LineAt(path, offset) if lazy else line)
                    if not lazy:
                        line += count_lines(block)
                    offset += len(block)
                if eof:
                    break
    except ReportError:
        raise
    except (OSError, MemoryError, EOFError, zlib.error) as exc:
        raise _open_error(path, exc) from None
    if total == 0:
        raise _empty_error(path)
    if carry:
        rest = b"".join(carry)
        _check_chars(path, rest, offset)
        if not content and rest.isspace():
            raise ReportError(path, f"contains only whitespace ({total} bytes), no report data")
        _cut_line(path, rest, total, content, warns, False)
    elif not content:
        raise ReportError(path, f"contains only whitespace ({total} bytes), no report data")
