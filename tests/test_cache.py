"""The per-file summary cache: hits only for unchanged files of the same version, survives
corruption and concurrent writers."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest

from oppnda_nb import cache as cache_mod
from oppnda_nb.averaging.summarize import FileSummary, SummarizeSettings
from oppnda_nb.cache import SummaryCache, clear_cache, stat_keys, version_key
from oppnda_nb.naming import NamePattern

OLD_NS = 1_600_000_000 * 10**9  # a modification time well in the past (not "racy")


def _files(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"TEST_EpidemicRouter_{i}_60_2M_MessageStatsReport.txt"
        p.write_text(f"delivery_prob: 0.{i}\n")
        os.utime(p, ns=(OLD_NS + i, OLD_NS + i))
        out.append(str(p))
    return out


def _summary(path: str, value: float = 1.0) -> FileSummary:
    return FileSummary(path=path, params={"seed": "1"}, report_type="MessageStatsReport",
                       scalars={"delivery_prob": value})


def _fill(cache: SummaryCache, files: list[str]) -> None:
    stored = cache.put_many([(p, s, m, _summary(p, float(i))) for i, (p, s, m) in enumerate(stat_keys(files))])
    assert stored == len(files)


def test_hit_for_unchanged_files_with_the_stored_value(tmp_path):
    files = _files(tmp_path / "r", 5)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    assert c.get_many(stat_keys(files)) == {}
    _fill(c, files)
    got = SummaryCache(tmp_path / "c.sqlite", version="v1").get_many(stat_keys(files))
    assert set(got) == set(files)
    assert got[files[3]].scalars == {"delivery_prob": 3.0} and got[files[3]].path == files[3]
    assert c.stats()["entries"] == 5


def test_many_entries_are_stored_in_several_statements_and_replace_older_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "MAX_VARIABLES", 13)  # two rows of six values per statement
    files = _files(tmp_path / "r", 5)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    _fill(c, files)
    got = c.get_many(stat_keys(files))
    assert {p: s.scalars["delivery_prob"] for p, s in got.items()} == {p: float(i) for i, p in enumerate(files)}
    assert c.put_many([(p, s, m, _summary(p, 7.0)) for p, s, m in stat_keys(files)]) == 5
    assert {s.scalars["delivery_prob"] for s in c.get_many(stat_keys(files)).values()} == {7.0}
    assert c.stats()["entries"] == 5


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="Connection.setlimit: Python 3.11+")
def test_a_build_with_a_lower_variable_limit_still_stores_everything(tmp_path, monkeypatch):
    real = SummaryCache._connect

    def low_limit(self):
        con = real(self)
        con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 13)  # a build that allows two rows per statement
        return con

    monkeypatch.setattr(SummaryCache, "_connect", low_limit)
    files = _files(tmp_path / "r", 5)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    _fill(c, files)
    assert set(c.get_many(stat_keys(files))) == set(files)


def test_changed_size_or_mtime_new_and_deleted_files_miss(tmp_path):
    files = _files(tmp_path / "r", 4)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    _fill(c, files)
    Path(files[0]).write_text("delivery_prob: 0.99999\n")             # size changes
    os.utime(files[0], ns=(OLD_NS, OLD_NS))
    os.utime(files[1], ns=(OLD_NS + 10**9, OLD_NS + 10**9))           # same size, other mtime
    os.remove(files[2])                                               # deleted
    new = _files(tmp_path / "new", 1)                                 # never seen
    got = c.get_many(stat_keys(files + new))
    assert set(got) == {files[3]}
    assert c.stats()["misses"] == 3  # the deleted file is not even asked for (stat_keys drops it)
    # a deleted file's entry is not returned even when asked with its old stat
    assert c.get_many([(files[2], 20, OLD_NS)]) == {}


def test_other_version_never_reuses_entries(tmp_path):
    files = _files(tmp_path / "r", 3)
    s1 = SummarizeSettings(pattern=NamePattern(fields=["a", "b"], kind="oppnda", delimiter="_"))
    s2 = SummarizeSettings(pattern=NamePattern(fields=["a", "b"], kind="oppnda", delimiter="-"))
    s3 = SummarizeSettings(pattern=s1.pattern, separator="=")
    keys = {version_key(s1), version_key(s2), version_key(s3)}
    assert len(keys) == 3 and version_key(s1) == version_key(SummarizeSettings(pattern=s1.pattern))
    c1 = SummaryCache(tmp_path / "c.sqlite", version=version_key(s1))
    _fill(c1, files)
    assert SummaryCache(tmp_path / "c.sqlite", version=version_key(s2)).get_many(stat_keys(files)) == {}
    assert SummaryCache(tmp_path / "c.sqlite", version=version_key(s3)).get_many(stat_keys(files)) == {}
    assert len(c1.get_many(stat_keys(files))) == 3


def test_a_new_readers_version_parses_again(tmp_path, monkeypatch):
    files = _files(tmp_path / "r", 2)
    old = version_key("settings")
    c = SummaryCache(tmp_path / "c.sqlite", version=old)
    _fill(c, files)
    monkeypatch.setattr(cache_mod, "SUMMARY_VERSION", cache_mod.SUMMARY_VERSION + 1)
    assert version_key("settings") != old
    assert SummaryCache(tmp_path / "c.sqlite", version=version_key("settings")).get_many(stat_keys(files)) == {}


def test_relative_and_absolute_paths_share_entries(tmp_path, monkeypatch):
    files = _files(tmp_path / "r", 2)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    _fill(c, files)
    monkeypatch.chdir(tmp_path)
    rel = [os.path.relpath(p) for p in files]
    assert set(c.get_many(stat_keys(rel))) == set(rel)


def test_absolute_paths_are_those_of_abspath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = ["a.txt", "./a.txt", "r/a.txt", "r/./b.txt", "r/../c.txt", "r/..", "r/.", "r/", "/x/y/../z.txt",
             "//srv/a.txt", "/a.txt", str(tmp_path / "r" / "d.txt"), "r//e.txt", "../up.txt", "r/s/../../f.txt"]
    assert cache_mod._absolute(paths) == [os.path.abspath(p) for p in paths]


def test_racy_files_are_not_stored(tmp_path):
    p = tmp_path / "fresh.txt"
    p.write_text("x: 1\n")  # modified just now: could change again within the mtime resolution
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    (key,) = stat_keys([str(p)])
    assert c.put_many([(*key, "value")]) == 0
    assert c.put_many([(*key, "value")], read_started_ns=key[2] + cache_mod.RACY_NS + 1) == 1
    assert c.get_many([key]) == {str(p): "value"}


def test_prune_drops_deleted_files_and_keeps_others(tmp_path):
    files = _files(tmp_path / "r", 4)
    other = _files(tmp_path / "other", 2)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    _fill(c, files + other)
    SummaryCache(tmp_path / "c.sqlite", version="v2").put_many([(*stat_keys([files[0]])[0], "v2 value")])
    os.remove(files[0])
    os.remove(files[1])
    assert c.prune(files[2:]) == 2                     # both versions of files[0] go (one path)
    st = c.stats()
    assert st["entries"] == 4 and st["versions"] == 1
    assert set(c.get_many(stat_keys(files + other))) == set(files[2:] + other)
    assert c.prune(older_than_days=0) == 4 and c.stats()["entries"] == 0


def test_clear_and_clear_cache(tmp_path):
    files = _files(tmp_path / "r", 3)
    db = tmp_path / "sub" / "c.sqlite"
    c = SummaryCache(db, version="v1")
    _fill(c, files)
    c.clear()
    assert c.stats()["entries"] == 0 and c.get_many(stat_keys(files)) == {}
    _fill(c, files)
    assert clear_cache(db) is True and not db.exists()
    assert clear_cache(db) is False
    assert SummaryCache(db, version="v1").get_many(stat_keys(files)) == {}


def test_default_location_is_the_users_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OPPNDA_CACHE_DIR", str(tmp_path / "cachedir"))
    c = SummaryCache(version="v1")
    assert c.path == tmp_path / "cachedir" / "summaries.sqlite"
    _fill(c, _files(tmp_path / "r", 1))
    assert c.path.exists()
    assert clear_cache() is True


def test_corrupt_file_is_moved_aside_and_rebuilt_with_a_warning(tmp_path, caplog):
    files = _files(tmp_path / "r", 3)
    db = tmp_path / "c.sqlite"
    db.write_bytes(os.urandom(8192))
    c = SummaryCache(db, version="v1")
    with caplog.at_level(logging.WARNING, logger="oppnda_nb.cache"):
        assert c.get_many(stat_keys(files)) == {}
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert list(tmp_path.glob("c.sqlite.corrupt-*"))
    _fill(c, files)
    assert set(SummaryCache(db, version="v1").get_many(stat_keys(files))) == set(files)


def test_database_damaged_after_use_is_rebuilt(tmp_path, caplog):
    files = _files(tmp_path / "r", 3)
    db = tmp_path / "c.sqlite"
    c = SummaryCache(db, version="v1")
    _fill(c, files)
    data = bytearray(db.read_bytes())
    data[:100] = os.urandom(100)  # the header: no longer a database
    for f in (f"{db}-wal", f"{db}-shm"):
        if os.path.exists(f):
            os.remove(f)
    db.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="oppnda_nb.cache"):
        assert c.get_many(stat_keys(files)) == {}            # the run just misses
        _fill(c, files)                                       # and the next store rebuilds
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert len(SummaryCache(db, version="v1").get_many(stat_keys(files))) == 3


def test_unusable_location_turns_the_cache_off_without_failing(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    c = SummaryCache(blocker / "c.sqlite", version="v1")
    files = _files(tmp_path / "r", 2)
    with caplog.at_level(logging.WARNING, logger="oppnda_nb.cache"):
        assert c.get_many(stat_keys(files)) == {}
        assert c.put_many([(p, s, m, "x") for p, s, m in stat_keys(files)]) == 0
    assert c.enabled is False and any("not usable" in r.getMessage() for r in caplog.records)


def test_locked_database_skips_writing(tmp_path, monkeypatch):
    files = _files(tmp_path / "r", 2)
    db = tmp_path / "c.sqlite"
    c = SummaryCache(db, version="v1")
    _fill(c, files[:1])
    monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(str(db), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another run holds the write lock
    try:
        assert c.put_many([(*stat_keys(files[1:])[0], "x")]) == 0
        assert c.stats()["skipped_writes"] == 1
        assert set(c.get_many(stat_keys(files))) == {files[0]}  # readers are not blocked (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert c.enabled is True and c.put_many([(*stat_keys(files[1:])[0], "x")]) == 1


def _writer(db: str, tag: str, n: int, start: "multiprocessing.synchronize.Event") -> int:
    """A concurrent run: stores n entries in batches of 100 (TOP-LEVEL, spawn imports it)."""
    c = SummaryCache(db, version="v1")
    start.wait(30)
    stored = 0
    for i in range(0, n, 100):
        items = [(f"/data/{tag}/f{j}.txt", j, OLD_NS + j, {"tag": tag, "j": j}) for j in range(i, i + 100)]
        for _ in range(50):  # a run would skip; here retry so the test can check every entry
            got = c.put_many(items)
            if got:
                break
            time.sleep(0.01)
        stored += got
    return stored


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    db = str(tmp_path / "c.sqlite")
    SummaryCache(db, version="v1").stats()  # create it (a run would too)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Event()
    with ctx.Pool(2) as workers:
        pending = [workers.apply_async(_writer, (db, tag, 2000, start)) for tag in ("a", "b")]
        time.sleep(0.5)
        start.set()
        assert [p.get(120) for p in pending] == [2000, 2000]
    c = SummaryCache(db, version="v1")
    for tag in ("a", "b"):
        keys = [(f"/data/{tag}/f{j}.txt", j, OLD_NS + j) for j in range(2000)]
        got = c.get_many(keys)
        assert len(got) == 2000 and got[f"/data/{tag}/f1999.txt"] == {"tag": tag, "j": 1999}
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


def test_whole_runs_are_kept_by_key_newest_first(tmp_path, monkeypatch):
    files = _files(tmp_path / "r", 3)
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    key = cache_mod.run_key("v1", stat_keys(files), ("config", []))
    assert c.get_run(key) is None
    assert c.put_run(key, {"groups": [1, 2]}) and c.get_run(key) == {"groups": [1, 2]}
    # any change of version, a file's stat, or the extra part gives another key
    assert cache_mod.run_key("v2", stat_keys(files), ("config", [])) != key
    assert cache_mod.run_key("v1", stat_keys(files), ("other config", [])) != key
    os.utime(files[0], ns=(OLD_NS + 99, OLD_NS + 99))
    assert cache_mod.run_key("v1", stat_keys(files), ("config", [])) != key
    monkeypatch.setattr(cache_mod, "RUNS_KEPT", 2)
    for i in range(3):
        time.sleep(0.01)
        assert c.put_run(f"k{i}", i)
    assert c.get_run(key) is None and c.get_run("k0") is None and c.get_run("k2") == 2
    assert c.stats()["runs"] == 2
    c.clear()
    assert c.get_run("k2") is None


def test_a_run_entry_that_no_longer_loads_is_a_miss(tmp_path):
    c = SummaryCache(tmp_path / "c.sqlite", version="v1")
    assert c.put_run("k", 1)
    with sqlite3.connect(str(c.path)) as con:
        con.execute("UPDATE runs SET value = ? WHERE key = 'k'", (b"not a pickle",))
    assert c.get_run("k") is None
