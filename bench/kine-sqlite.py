#!/usr/bin/env python3
"""
bench/kine-sqlite.py — the SQLite half of bench/datastore-writes.mjs: SQLite (Python's sqlite3 over
the system libsqlite3) driven the way kine drives it in a single k3s server without cluster-init.
A stand-in for kine's SQL, not kine: it runs the real SQLite with kine's schema, pragmas and
statements, and the bench feeds it the modelled write stream, one JSON command per stdin line,
one JSON answer per stdout line.

From k3s-io/kine (tags v0.13.14 .. v0.14.x, the kine of the k3s v1.33 line; see
docs/reference/datastore-write-load.md):
- pkg/drivers/sqlite/sqlite.go: the `kine` table and its five indexes; the DSN k3s gets by default,
  `./db/state.db?_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate` (so WAL, and
  mattn/go-sqlite3's default `synchronous=NORMAL`); `PRAGMA wal_checkpoint(TRUNCATE)` at setup;
  CompactSQL (below) and PostCompactSQL `PRAGMA wal_checkpoint(FULL)`.
- pkg/drivers/generic/generic.go: InsertLastInsertIDSQL, one autocommit INSERT per write.
- pkg/logstructured/logstructured.go (Create/Update): every change is a NEW row whose
  prev_revision is the id of the row it replaces; the old value is stored again in old_value.
- pkg/logstructured/sqllog/sql.go (compactor, compact, safeCompactRev): every 5 min, in batches of
  1000 revisions, delete the rows superseded (or deleted) at or below current - 1000 revisions,
  record the compact revision on the `compact_rev_key` row, then run PostCompactSQL.

Commands: {"op":"put","key":K,"size":N} → {"rev":R}; {"op":"compact"} → {"deleted":D,"to":T};
{"op":"stats"} → {"rows":…,"pages":…}; {"op":"quit"}.
"""
import json
import os
import sqlite3
import sys

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS kine
        (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name INTEGER,
            created INTEGER,
            deleted INTEGER,
            create_revision INTEGER,
            prev_revision INTEGER,
            lease INTEGER,
            value BLOB,
            old_value BLOB
        )""",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
    "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
    "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)",
    "PRAGMA wal_checkpoint(TRUNCATE)",
]

INSERT = """INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
    values(?, ?, ?, ?, ?, ?, ?, ?)"""
# kine's GetCurrentSQL/ListRevisionStartSQL reduced to what Update needs: the newest row of a key.
LATEST = "SELECT id, create_revision, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1"
COMPACT = """DELETE FROM kine AS kv
    WHERE
        kv.id IN (
            SELECT kp.prev_revision AS id
            FROM kine AS kp
            WHERE
                kp.name != 'compact_rev_key' AND
                kp.prev_revision != 0 AND
                kp.id <= ?
            UNION
            SELECT kd.id AS id
            FROM kine AS kd
            WHERE
                kd.deleted != 0 AND
                kd.id <= ?
        )"""
COMPACT_MIN_RETAIN = 1000
COMPACT_BATCH_SIZE = 1000


def main():
    path = sys.argv[1]
    # isolation_level=None: autocommit, as database/sql runs kine's single INSERT (one WAL commit each)
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # mattn/go-sqlite3's default (sqlite3.go: synchronousMode := "NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    for stmt in SCHEMA:
        db.execute(stmt).fetchall()
    # kine's compactStart: the compact_rev_key row exists from the start
    if db.execute(LATEST, ("compact_rev_key",)).fetchone() is None:
        db.execute(INSERT, ("compact_rev_key", 1, 0, 0, 0, 0, b"", b""))

    def put(key, size):
        row = db.execute(LATEST, (key,)).fetchone()
        value = os.urandom(size)
        if row is None:
            cur = db.execute(INSERT, (key, 1, 0, 0, 0, 0, value, b""))
            rev = cur.lastrowid
            return rev
        prev_id, create_rev, prev_value = row
        cur = db.execute(INSERT, (key, 0, 0, create_rev or prev_id, prev_id, 0, value, prev_value))
        return cur.lastrowid

    def compact():
        current = db.execute("SELECT MAX(id) FROM kine").fetchone()[0] or 0
        compact_rev = db.execute(
            "SELECT prev_revision FROM kine WHERE name = 'compact_rev_key' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        target = current - COMPACT_MIN_RETAIN
        deleted = 0
        if target <= compact_rev:
            return {"deleted": 0, "to": compact_rev}
        it = compact_rev
        while it < target:
            it = min(it + COMPACT_BATCH_SIZE, target)
            db.execute("BEGIN IMMEDIATE")
            deleted += db.execute(COMPACT, (it, it)).rowcount
            db.execute("UPDATE kine SET prev_revision = ? WHERE name = 'compact_rev_key'", (it,))
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
        return {"deleted": deleted, "to": target}

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "put":
            out = {"rev": put(cmd["key"], int(cmd["size"]))}
        elif op == "compact":
            out = compact()
        elif op == "stats":
            rows = db.execute("SELECT COUNT(*) FROM kine").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            out = {"rows": rows, "pages": pages}
        elif op == "quit":
            break
        else:
            out = {"error": "unknown op " + op}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    db.close()


if __name__ == "__main__":
    main()
