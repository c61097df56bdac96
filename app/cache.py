"""A result cache on disk (SQLite in the data directory), shared by every worker process.

Keys carry the dataset version, so a replaced dataset can never be served stale; storing a result
for a new version deletes the old version's entries. Bounded by entry count (oldest evicted).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class DiskCache:
    def __init__(self, path: Path, max_entries: int = 20_000):
        self.path, self.max_entries = Path(path), max_entries
        self._local = threading.local()
        self._db().executescript("""
            CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, dataset TEXT, version TEXT,
                                                used REAL, body BLOB);
            CREATE INDEX IF NOT EXISTS entries_dataset ON entries (dataset, version);""")

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache: WAL keeps it consistent; no fsync per entry
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> bytes | None:
        row = self._db().execute("SELECT body FROM entries WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: str, dataset: str, version: str, body: bytes) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM entries WHERE dataset = ? AND version != ?", (dataset, version))
            db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", (key, dataset, version, time.time(), body)
            )
            (count,) = db.execute("SELECT count(*) FROM entries").fetchone()
            if count > self.max_entries:
                db.execute(
                    "DELETE FROM entries WHERE key IN (SELECT key FROM entries ORDER BY used LIMIT ?)",
                    (count - self.max_entries,),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def drop(self, dataset: str) -> None:
        self._db().execute("DELETE FROM entries WHERE dataset = ?", (dataset,))
