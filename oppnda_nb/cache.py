"""A per-file summary cache on disk (SQLite), so re-running a sweep only reads new or changed files.

An entry is keyed by the file's absolute path, its size, its ``mtime_ns`` and a ``version`` the
caller gives (parser version + summarize settings, see :func:`version_key`): any change of one
of them is a miss, so a different name pattern or separator never reuses a summary. The value
is any picklable object (the job stores :class:`averaging.FileSummary`).

The cache must never break a run: a corrupt database is moved aside and rebuilt (warning), an
unusable one (read-only folder, ...) turns the cache off for this instance (warning), and a
writer that cannot get the lock from a concurrent run skips storing (debug). Concurrent runs
share the file safely (WAL journal, busy timeout, one transaction per batch).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import sqlite3
import time
from array import array
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import __version__
from .memory_model import cache_dir
from .reports.catalog import SUMMARY_VERSION

log = logging.getLogger("oppnda_nb.cache")

#: the database file in :func:`memory_model.cache_dir`
FILENAME = "summaries.sqlite"
#: bump when the table layout changes (an old database is then rebuilt, not misread)
SCHEMA = 1
#: paths per ``IN (...)`` query (SQLite's variable limit is 999 on old builds)
BATCH = 500
#: SQLite's default limit of ``?`` variables per statement (999 before 3.32)
MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: seconds a connection waits for a concurrent writer before giving up
BUSY_TIMEOUT_S = 5.0
#: a file modified this close to (or after) the moment it was read may change again within the
#: file system's mtime resolution without changing size or mtime: it is not cached ("racy" entry)
RACY_NS = 2_000_000_000
#: pickle protocol of stored values (fixed so every supported Python reads them)
PROTOCOL = 4
#: whole-run results kept (the newest ones; see :meth:`SummaryCache.put_run`)
RUNS_KEPT = 16

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS summaries (
    path TEXT NOT NULL,
    version TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (path, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    stored_at REAL NOT NULL,
    value BLOB NOT NULL
);
"""

FileKey = tuple[str, int, int]  # (path, size, mtime_ns)


def default_path() -> Path:
    """``<cache_dir>/summaries.sqlite`` (``$OPPNDA_CACHE_DIR`` moves it)."""
    return cache_dir() / FILENAME


def version_key(*parts: Any) -> str:
    """A version string for the cache from the package and readers' versions and any picklable settings.

    ``version_key(settings)`` with a :class:`averaging.SummarizeSettings`: another name pattern,
    separator or ignore list gives another key, so their summaries are never mixed; so does a new
    :data:`reports.catalog.SUMMARY_VERSION` (readers whose values changed).
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(pickle.dumps(part, protocol=PROTOCOL))
    return f"{__version__}.{SUMMARY_VERSION}:{digest.hexdigest()[:20]}"


def settled_limit(read_started_ns: int | None = None) -> int:
    """The newest mtime_ns a file read from ``read_started_ns`` on (default: now) may have for its
    summary to be kept: one modified later may still change without changing its stat (:data:`RACY_NS`)."""
    return (read_started_ns if read_started_ns is not None else time.time_ns()) - RACY_NS


def stat_keys(paths: Iterable[str]) -> list[FileKey]:
    """``(path, size, mtime_ns)`` of each file that exists (vanished files are left out)."""
    out: list[FileKey] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return out


def _absolute(paths: Iterable[str]) -> list[str]:
    """``os.path.abspath`` of each path, with the working directory read once and each folder
    normalised once (a run's thousands of paths share a few folders)."""
    cwd = os.getcwd()
    norm, join, isabs, sep = os.path.normpath, os.path.join, os.path.isabs, os.sep
    folders: dict[str, str] = {}
    out = []
    for p in map(str, paths):
        head, _, name = p.rpartition(sep)
        if not head or name in ("", ".", "..") or (os.altsep and os.altsep in name):
            out.append(norm(p if isabs(p) else join(cwd, p)))
            continue
        folder = folders.get(head)
        if folder is None:
            folder = folders[head] = norm(head if isabs(head) else join(cwd, head))
        out.append(folder + name if folder.endswith(sep) else folder + sep + name)
    return out


def run_key(version: str, files: Sequence[FileKey], extra: Any = None) -> str:
    """The key of a whole run's result: the cache version, every input's (absolute path, size,
    mtime_ns) in order, and ``extra`` (e.g. the skipped files). Any change gives another key."""
    digest = hashlib.sha256(version.encode())
    paths, sizes, mtimes = zip(*files) if files else ((), (), ())
    digest.update("\0".join(_absolute(paths)).encode("utf-8", "surrogateescape"))
    digest.update(array("q", sizes).tobytes() + array("q", mtimes).tobytes())
    digest.update(pickle.dumps((len(files), extra), protocol=PROTOCOL))
    return digest.hexdigest()


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Damaged or foreign file (rebuild it) — as opposed to locked/busy/read-only (leave it)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or (code & 0xFF) in (11, 26)
    msg = str(exc).lower()
    return "not a database" in msg or "malformed" in msg or "corrupt" in msg


def _is_locked(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg



@contextlib.contextmanager
def _immediate(con: sqlite3.Connection):
    """One write transaction that takes the write lock at once (BEGIN IMMEDIATE): committed when the
    block ends, rolled back when it raises."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _insert(con: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    """``INSERT OR REPLACE`` of many rows, as few statements as SQLite's variable limit allows.
    (Not executemany: it steps once per row and takes the GIL again after each step, which waits
    out the interpreter's switch interval while another thread parses: 21,450 rows took 2 s.)"""
    width = len(rows[0])
    limit = MAX_VARIABLES
    if hasattr(con, "getlimit"):  # (Python 3.11+: the build's own limit, which a distribution may lower)
        limit = min(limit, con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    per = max(1, limit // width)
    one = "(" + ", ".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        con.execute(f"INSERT OR REPLACE INTO {table} VALUES " + ", ".join([one] * len(chunk)),
                    [v for row in chunk for v in row])


class RecentSummaries:
    """The summaries a finished run had, kept for as long as its result is: the next run in this
    process takes the unchanged ones (same path as given, size, mtime_ns and version) from here
    before asking the database, so a notebook that re-runs on a folder that grew by a few files
    loads none of the others again (and shares them with the old result instead of copying them).
    Like the database, it holds no file modified less than :data:`RACY_NS` before it was read."""

    __slots__ = ("version", "entries", "__weakref__")

    def __init__(self, version: str, entries: dict[str, tuple[int, int, Any]]):
        self.version = version
        self.entries = entries  # path -> (size, mtime_ns, summary)

    def get_many(self, paths_with_stat: Sequence[FileKey], version: str) -> dict[str, Any]:
        """``{path: summary}`` of the files whose size and mtime_ns match, for ``version`` only."""
        if version != self.version:
            return {}
        found = {}
        get = self.entries.get
        for p, size, mtime_ns in paths_with_stat:
            e = get(p)
            if e is not None and e[0] == size and e[1] == mtime_ns:
                found[p] = e[2]
        return found


class SummaryCache:
    """Per-file summaries on disk, keyed by (absolute path, size, mtime_ns, version).

    ``path``: the database file (default :func:`default_path`). ``version``: what produced the
    values (:func:`version_key`). A connection is opened per call, so an instance may be used
    from any thread and survives forks.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, version: str):
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.version = str(version)
        self.enabled = True
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self.skipped_writes = 0
        self._ready = False

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                              check_same_thread=False)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            con.close()
            raise
        return con

    def _init_db(self) -> None:
        """Create the folder and tables (once per instance); rebuild a damaged or foreign file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            con = None
            try:
                con = self._connect()
                mode = con.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    con.execute("PRAGMA journal_mode = WAL")  # persistent: set once per database
                con.executescript(_TABLES)
                row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                elif row[0] != str(SCHEMA):
                    raise sqlite3.DatabaseError(f"file is not a database of schema {SCHEMA} (found {row[0]})")
                self._ready = True
                return
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or _is_locked(exc) or not _is_corruption(exc):
                    raise
                if con is not None:
                    con.close()
                    con = None
                self._move_aside(exc)
            finally:
                if con is not None:
                    con.close()

    def _move_aside(self, exc: BaseException) -> None:
        """Rename a damaged database (and its journal files) out of the way, keeping it to look at."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        log.warning("the summary cache %s is unreadable (%s); moved it to %s and starting an empty one",
                    self.path, exc, aside.name)
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            pass  # another process moved it already
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                os.remove(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass

    @contextmanager
    def _db(self, what: str) -> Iterator[sqlite3.Connection | None]:
        """A connection, or None when the cache is off or broken (the caller then misses/skips)."""
        if not self.enabled:
            yield None
            return
        con = None
        try:
            for attempt in (1, 2):
                if not self._ready:
                    self._init_db()
                try:
                    con = self._connect()
                    break
                except sqlite3.DatabaseError as exc:  # damaged since this instance set it up
                    if attempt == 2 or not _is_corruption(exc):
                        raise
                    self._move_aside(exc)
                    self._ready = False
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and _is_locked(exc):
                log.debug("summary cache %s busy while %s; not using it this time", self.path, what)
            else:
                log.warning("summary cache %s not usable (%s); running without it", self.path, exc)
                self.enabled = False
            if con is not None:
                con.close()
            yield None
            return
        try:
            yield con
        finally:
            con.close()

    def _failed(self, exc: sqlite3.Error, what: str) -> None:
        """One operation failed: locked -> debug; damaged -> move aside (next call rebuilds)."""
        if isinstance(exc, sqlite3.DatabaseError) and _is_locked(exc):
            log.debug("summary cache %s locked by another run while %s; skipped", self.path, what)
        elif isinstance(exc, sqlite3.DatabaseError) and _is_corruption(exc):
            self._move_aside(exc)
            self._ready = False
        else:
            log.warning("summary cache %s failed while %s (%s); skipped", self.path, what, exc)

    # -- the API ---------------------------------------------------------------------
    def get_many(self, paths_with_stat: Sequence[FileKey]) -> dict[str, Any]:
        """The cached values of the files whose size and mtime_ns match: ``{path as given: value}``.

        ``paths_with_stat``: ``(path, size, mtime_ns)`` as :func:`stat_keys` gives them. One query
        per :data:`BATCH` paths; an entry that no longer unpickles is a miss.
        """
        wanted: dict[str, tuple[str, int, int]] = {}
        for a, (p, size, mtime_ns) in zip(_absolute(k[0] for k in paths_with_stat), paths_with_stat):
            wanted[a] = (str(p), int(size), int(mtime_ns))
        found: dict[str, Any] = {}
        if not wanted:
            return found
        keys = list(wanted)
        with self._db("reading") as con:
            if con is not None:
                try:
                    for i in range(0, len(keys), BATCH):
                        chunk = keys[i:i + BATCH]
                        marks = ",".join("?" * len(chunk))
                        rows = con.execute(
                            f"SELECT path, size, mtime_ns, value FROM summaries "
                            f"WHERE version = ? AND path IN ({marks})", (self.version, *chunk)).fetchall()
                        for apath, size, mtime_ns, blob in rows:
                            given, want_size, want_mtime = wanted[apath]
                            if size != want_size or mtime_ns != want_mtime:
                                continue
                            try:
                                found[given] = pickle.loads(blob)
                            except Exception as exc:  # a class that changed shape: recompute
                                log.debug("summary cache entry for %s does not load (%s); a miss", apath, exc)
                except sqlite3.Error as exc:
                    self._failed(exc, "reading")
                    found = {}
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def put_many(self, items: Sequence[tuple[str, int, int, Any]], *, read_started_ns: int | None = None) -> int:
        """Store ``(path, size, mtime_ns, value)`` entries in one transaction; the number stored.

        ``size``/``mtime_ns`` must be the stat taken *before* the file was read. Files modified
        less than :data:`RACY_NS` before ``read_started_ns`` (default: now) are not stored: they
        may still change without changing their stat. Unpicklable values are skipped.
        """
        limit = settled_limit(read_started_ns)
        now = time.time()
        rows = []
        items = list(items)
        for a, (p, size, mtime_ns, value) in zip(_absolute(i[0] for i in items), items):
            if int(mtime_ns) > limit:
                continue
            try:
                blob = pickle.dumps(value, protocol=PROTOCOL)
            except Exception as exc:
                log.debug("not caching %s: its summary does not pickle (%s)", p, exc)
                continue
            rows.append((a, self.version, int(size), int(mtime_ns), now, blob))
        if not rows:
            return 0
        with self._db("writing") as con:
            if con is None:
                self.skipped_writes += len(rows)
                return 0
            try:
                with _immediate(con):
                    _insert(con, "summaries", rows)
            except sqlite3.Error as exc:
                self._failed(exc, "writing")
                self.skipped_writes += len(rows)
                return 0
        self.stored += len(rows)
        return len(rows)

    def get_run(self, key: str) -> Any | None:
        """The value :meth:`put_run` stored under ``key``, or None (a miss, or it no longer loads)."""
        with self._db("reading a run") as con:
            if con is None:
                return None
            try:
                row = con.execute("SELECT value FROM runs WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                self._failed(exc, "reading a run")
                return None
        if row is None:
            return None
        try:
            return pickle.loads(row[0])
        except Exception as exc:  # a class that changed shape: recompute
            log.debug("cached run %s does not load (%s); a miss", key[:12], exc)
            return None

    def put_run(self, key: str, value: Any) -> bool:
        """Keep a whole run's result under ``key`` (:func:`run_key`); only the newest
        :data:`RUNS_KEPT` runs are kept. True if stored."""
        try:
            blob = pickle.dumps(value, protocol=PROTOCOL)
        except Exception as exc:
            log.debug("not caching the run's result: it does not pickle (%s)", exc)
            return False
        with self._db("writing a run") as con:
            if con is None:
                return False
            try:
                with _immediate(con):
                    con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", (key, time.time(), blob))
                    con.execute("DELETE FROM runs WHERE key NOT IN "
                                "(SELECT key FROM runs ORDER BY stored_at DESC LIMIT ?)", (RUNS_KEPT,))
            except sqlite3.Error as exc:
                self._failed(exc, "writing a run")
                return False
        return True

    def prune(self, existing_paths: Iterable[str] | None = None, *, older_than_days: float | None = None) -> int:
        """Drop entries of deleted files (every version); the number dropped.

        ``existing_paths``: files known to exist (not stat-ed again; e.g. the run's selection);
        every other entry is kept only if its file is still on disk. ``older_than_days``: also
        drop entries stored longer ago than that (old versions pile up otherwise).
        """
        known = {os.path.abspath(p) for p in existing_paths} if existing_paths is not None else set()
        dropped = 0
        with self._db("pruning") as con:
            if con is None:
                return 0
            try:
                paths = [r[0] for r in con.execute("SELECT DISTINCT path FROM summaries")]
                gone = [(p,) for p in paths if p not in known and not os.path.exists(p)]
                with _immediate(con):
                    if gone:
                        con.executemany("DELETE FROM summaries WHERE path = ?", gone)
                        dropped += len(gone)
                    if older_than_days is not None:
                        cur = con.execute("DELETE FROM summaries WHERE stored_at < ?",
                                          (time.time() - older_than_days * 86400.0,))
                        dropped += max(cur.rowcount, 0)
            except sqlite3.Error as exc:
                self._failed(exc, "pruning")
                return 0
        return dropped

    def clear(self) -> None:
        """Drop every entry (all versions) and give the space back."""
        with self._db("clearing") as con:
            if con is None:
                return
            try:
                con.execute("DELETE FROM summaries")
                con.execute("DELETE FROM runs")
                con.execute("VACUUM")
            except sqlite3.Error as exc:
                self._failed(exc, "clearing")

    def stats(self) -> dict[str, Any]:
        """Entries (all / this version), bytes on disk, and this instance's hits, misses and stores."""
        out: dict[str, Any] = {"path": str(self.path), "version": self.version, "enabled": self.enabled,
                               "entries": 0, "entries_this_version": 0, "versions": 0, "runs": 0,
                               "hits": self.hits, "misses": self.misses, "stored": self.stored,
                               "skipped_writes": self.skipped_writes}
        with self._db("counting") as con:
            if con is not None:
                try:
                    out["entries"], out["versions"] = con.execute(
                        "SELECT COUNT(*), COUNT(DISTINCT version) FROM summaries").fetchone()
                    out["entries_this_version"] = con.execute(
                        "SELECT COUNT(*) FROM summaries WHERE version = ?", (self.version,)).fetchone()[0]
                    out["runs"] = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.Error as exc:
                    self._failed(exc, "counting")
        out["bytes"] = sum(os.path.getsize(f) for f in (str(self.path), f"{self.path}-wal")
                           if os.path.exists(f))
        return out

    def __repr__(self) -> str:
        return f"SummaryCache({str(self.path)!r}, version={self.version!r})"


def clear_cache(path: str | os.PathLike | None = None) -> bool:
    """Delete the cache database (default :func:`default_path`) and its journal files; True if it existed."""
    db = Path(path).expanduser() if path is not None else default_path()
    existed = db.exists()
    for f in (str(db), f"{db}-wal", f"{db}-shm", f"{db}-journal"):
        try:
            os.remove(f)
        except FileNotFoundError:
            pass
    return existed
