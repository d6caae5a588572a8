"""The trace store: SQLite (WAL mode), one row per deduplicated TraceRecord.

Several processes may write at once (a collection's workers, a script's child, a second
``dlfuzz collect``): every write is a short ``BEGIN IMMEDIATE`` transaction under a busy
timeout, and ``INSERT OR IGNORE`` on the UNIQUE fingerprint drops duplicates. A ``meta``
table names the application and the schema, so a file that is not a dlfuzz corpus is
refused with one :class:`CorpusStoreError` line. A ``progress`` table lets a source
remember what it has done, so a killed collection continues where it stopped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from corpus.trace import SCHEMA_VERSION as RECORD_SCHEMA, TraceFormatError, TraceRecord, call_signature

APP_ID = 0x646C667A  # "dlfz", also in PRAGMA application_id
APP_NAME = "dlfuzz-corpus"
STORE_SCHEMA = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    framework TEXT NOT NULL,
    api TEXT NOT NULL,
    signature TEXT NOT NULL,
    ok INTEGER NOT NULL,
    flagged INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_fw_api ON records (framework, api);
CREATE TABLE IF NOT EXISTS progress (
    framework TEXT NOT NULL,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (framework, source, key)
);
"""


class CorpusStoreError(Exception):
    """A corpus file that cannot be used; the message is one line, ready for a user."""


def _not_ours(path: Path, why: str) -> CorpusStoreError:
    return CorpusStoreError(f"{path} is not a dlfuzz corpus ({why}); pass a file created by dlfuzz collect, or a new path")


class CorpusStore:
    """A handle on one corpus file. ``create=False`` refuses a path that does not exist."""

    def __init__(self, path: str | os.PathLike, create: bool = True) -> None:
        self.path = Path(path)
        exists = self.path.exists()
        if exists and self.path.is_dir():
            raise CorpusStoreError(f"{self.path} is a folder; pass a corpus file path (e.g. {self.path}/corpus.db)")
        if not exists and not create:
            raise CorpusStoreError(f"{self.path} does not exist; create it with 'dlfuzz collect --db {self.path} ...'")
        if not exists and not self.path.parent.is_dir():
            raise CorpusStoreError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                        check_same_thread=False)
        except sqlite3.Error as e:
            raise CorpusStoreError(f"cannot open {self.path} ({e}); check the path and its permissions") from None
        try:
            self._setup()
        except sqlite3.DatabaseError as e:
            self.conn.close()
            msg = str(e)
            if "not a database" in msg or "malformed" in msg or "file is encrypted" in msg:
                raise _not_ours(self.path, "not an SQLite database, or a corrupt one") from None
            raise CorpusStoreError(f"cannot use {self.path} ({msg}); check the path and its permissions") from None
        except CorpusStoreError:
            self.conn.close()
            raise

    # -- set-up -----------------------------------------------------------------------

    def _setup(self) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables:
            self._check_meta(tables)
        else:
            self._with_retry(self._create)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")

    def _check_meta(self, tables: set[str]) -> None:
        if "meta" not in tables:
            raise _not_ours(self.path, f"an SQLite database with tables {', '.join(sorted(tables)[:4])} but no dlfuzz meta table")
        meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP_NAME:
            raise _not_ours(self.path, f"its meta table names app {meta.get('app')!r}")
        version = int(meta.get("schema", "0") or 0)
        if version > STORE_SCHEMA:
            raise CorpusStoreError(f"{self.path} has corpus schema {version}, newer than this dlfuzz understands "
                                   f"({STORE_SCHEMA}); upgrade dlfuzz to read it")
        missing = {"records", "progress"} - tables
        if missing:
            raise _not_ours(self.path, f"tables {', '.join(sorted(missing))} are missing")

    def _create(self) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables:  # another process created it meanwhile
                c.execute("COMMIT")
                self._check_meta(tables)
                return
            c.execute(f"PRAGMA application_id = {APP_ID}")
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    c.execute(stmt)
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          [("app", APP_NAME), ("schema", str(STORE_SCHEMA)), ("record_schema", str(RECORD_SCHEMA)),
                           ("created", time.strftime("%Y-%m-%dT%H:%M:%S"))])
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _with_retry(self, fn, *args):
        """Run a write; retry when another process holds the lock past the busy timeout."""
        for attempt in range(5):
            try:
                return fn(*args)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> "CorpusStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- records ----------------------------------------------------------------------

    @staticmethod
    def _row(record: TraceRecord) -> tuple:
        return (record.fingerprint, record.framework, record.api, call_signature(record.args, record.kwargs),
                int(record.ok), int(record.flagged), record.source, record.dumps())

    def add(self, records: Iterable[TraceRecord], progress: Iterable[tuple[str, str, str, str]] = ()) -> int:
        """Insert records (duplicates ignored) and progress rows in one transaction; returns how many were new."""
        rows = [self._row(r) for r in records]
        prog = list(progress)
        if not rows and not prog:
            return 0
        return self._with_retry(self._add, rows, prog)

    def _add(self, rows: list[tuple], prog: list[tuple]) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            before = c.total_changes
            c.executemany("INSERT OR IGNORE INTO records (fingerprint, framework, api, signature, ok, flagged, source, data) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = c.total_changes - before
            for framework, source, key, state in prog:
                self._set_progress(framework, source, key, state)
            c.execute("COMMIT")
            return added
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def records(self, framework: str | None = None, api: str | None = None, ok: bool | None = None,
                source: str | None = None, exclude_source: str | None = None) -> Iterator[TraceRecord]:
        where, params = [], []
        for col, val in (("framework", framework), ("api", api), ("source", source)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if ok is not None:
            where.append("ok = ?")
            params.append(int(ok))
        if exclude_source is not None:
            where.append("source != ?")
            params.append(exclude_source)
        sql = "SELECT data FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        for (data,) in self.conn.execute(sql, params).fetchall():
            yield TraceRecord.from_json(json.loads(data))

    def count(self, framework: str | None = None, **where: Any) -> int:
        conds, params = [], []
        if framework is not None:
            conds.append("framework = ?")
            params.append(framework)
        for col, val in where.items():
            conds.append(f"{col} = ?")
            params.append(int(val) if isinstance(val, bool) else val)
        sql = "SELECT COUNT(*) FROM records" + (" WHERE " + " AND ".join(conds) if conds else "")
        return int(self.conn.execute(sql, params).fetchone()[0])

    def stats(self) -> dict:
        """``{"frameworks": {fw: {"apis", "partial_ops", "records", "valid", "invalid", ...}}}``."""
        out: dict[str, dict] = {}
        rows = self.conn.execute(
            "SELECT framework, COUNT(DISTINCT api), COUNT(*), SUM(ok), SUM(flagged) FROM records GROUP BY framework").fetchall()
        for fw, apis, n, valid, flagged in rows:
            partial = self.conn.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT api, signature FROM records WHERE framework = ?)", (fw,)).fetchone()[0]
            by_source = {src: {"records": c, "valid": v} for src, c, v in self.conn.execute(
                "SELECT source, COUNT(*), SUM(ok) FROM records WHERE framework = ? GROUP BY source ORDER BY source", (fw,))}
            out[fw] = {"apis": apis, "partial_ops": partial, "records": n, "valid": int(valid or 0),
                       "invalid": n - int(valid or 0), "flagged": int(flagged or 0), "by_source": by_source}
        return {"frameworks": out}

    # -- progress ---------------------------------------------------------------------

    def _set_progress(self, framework: str, source: str, key: str, state: str) -> None:
        if state == "started":
            self.conn.execute(
                "INSERT INTO progress (framework, source, key, state, attempts) VALUES (?, ?, ?, 'started', 1) "
                "ON CONFLICT (framework, source, key) DO UPDATE SET attempts = attempts + 1, "
                "state = CASE WHEN state = 'done' THEN 'done' ELSE 'started' END", (framework, source, key))
        elif state == "paused":  # stopped by the time limit: the attempt does not count
            self.conn.execute(
                "UPDATE progress SET state = 'paused', attempts = MAX(attempts - 1, 0) "
                "WHERE framework = ? AND source = ? AND key = ? AND state != 'done'", (framework, source, key))
        else:
            self.conn.execute(
                "INSERT INTO progress (framework, source, key, state, attempts) VALUES (?, ?, ?, ?, 0) "
                "ON CONFLICT (framework, source, key) DO UPDATE SET state = excluded.state", (framework, source, key, state))

    def mark(self, framework: str, source: str, key: str, state: str) -> None:
        self.add((), [(framework, source, key, state)])

    def progress(self, framework: str, source: str) -> dict[str, tuple[str, int]]:
        """key -> (state, attempts) for one source."""
        return {k: (s, a) for k, s, a in self.conn.execute(
            "SELECT key, state, attempts FROM progress WHERE framework = ? AND source = ?", (framework, source))}

    # -- JSONL ------------------------------------------------------------------------

    def export_jsonl(self, out: str | os.PathLike, framework: str | None = None) -> int:
        n = 0
        tmp = Path(str(out) + ".tmp")
        with open(tmp, "w") as f:
            sql = "SELECT data FROM records" + (" WHERE framework = ?" if framework else "") + " ORDER BY id"
            for (data,) in self.conn.execute(sql, (framework,) if framework else ()):
                f.write(data + "\n")
                n += 1
        os.replace(tmp, out)
        return n

    def import_jsonl(self, src: str | os.PathLike, batch: int = 500) -> tuple[int, int]:
        """(records read, records new to this corpus)."""
        read = added = 0
        pending: list[TraceRecord] = []
        with open(src) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusStoreError(f"{src}:{lineno}: not valid JSON ({e.msg}); pass a file written by 'dlfuzz corpus export'") from None
                try:
                    pending.append(TraceRecord.from_json(data, where=f"{src}:{lineno}"))
                except TraceFormatError as e:
                    raise CorpusStoreError(str(e)) from None
                read += 1
                if len(pending) >= batch:
                    added += self.add(pending)
                    pending = []
        added += self.add(pending)
        return read, added


class RecordWriter:
    """Buffers records and writes them in small transactions (every ``batch`` records or ``interval`` s)."""

    def __init__(self, store: CorpusStore, batch: int = 200, interval: float = 1.0) -> None:
        self.store = store
        self.batch = batch
        self.interval = interval
        self.pending: list[TraceRecord] = []
        self.last = time.monotonic()
        self.seen = 0
        self.added = 0

    def __call__(self, record: TraceRecord) -> None:
        self.pending.append(record)
        self.seen += 1
        if len(self.pending) >= self.batch or time.monotonic() - self.last > self.interval:
            self.flush()

    def flush(self, progress: Iterable[tuple[str, str, str, str]] = ()) -> int:
        records, self.pending = self.pending, []
        self.last = time.monotonic()
        n = self.store.add(records, progress)
        self.added += n
        return n
