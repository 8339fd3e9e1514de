"""Citus readiness (SPEC §13): read from the migrated schema's catalog, every table that holds
an account's rows could be distributed by `account_id` as it is.

Citus enforces a primary key or unique index on a distributed table only when it contains the
distribution column, and an ON CONFLICT target is always one of those (Postgres infers the
arbiter index from it, and a bare ON CONFLICT DO NOTHING uses them all): so checking every
unique index checks every ON CONFLICT target too. A foreign key between two distributed
tables must join them on the distribution column, which keeps the two rows on one shard.
The exceptions are named, each with the reason, and docs/scaling.md says what each table
becomes.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Tables of accounts' rows that would be Citus reference tables (small, copied to every node),
# with why. Every other table with an account_id would be distributed by it.
REFERENCE = {
    "api_keys",  # a request's key is looked up by its hash, before its account is known
    "accounts",  # every node reads an account's zone, tier and keys; api_keys refers to it
}

TABLES = text("""
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
               AND a.attname = 'account_id' AND NOT a.attisdropped) AS has_account,
       (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = c.oid
               AND a.attname = 'account_id' AND NOT a.attisdropped) AS account_not_null
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY 1""")
# Every unique index (primary keys and unique constraints have one), its columns in order.
UNIQUE = text("""
SELECT t.relname AS table, i.relname AS index,
       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
             ORDER BY k.n) AS columns,
       x.indnkeyatts AS key_columns
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace
ORDER BY 1, 2""")
# Every foreign key: its table's columns and the referenced table's, pairwise.
FOREIGN = text("""
SELECT c.conname, t.relname AS table, r.relname AS referenced,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS columns,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS referenced_columns
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
WHERE c.contype = 'f' AND t.relnamespace = current_schema()::regnamespace
ORDER BY 1""")


async def problems(conn: AsyncConnection) -> list[str]:
    """What would keep the schema from being distributed by account_id, one line each."""
    tables = (await conn.execute(TABLES)).all()
    names = {t.relname for t in tables}
    found = [f"{t}: named a reference table, not in the schema" for t in REFERENCE - names]
    distributed = {t.relname: t for t in tables if t.has_account and t.relname not in REFERENCE}
    found += [
        f"{t}: account_id may be null" for t, r in distributed.items() if not r.account_not_null
    ]
    for i in (await conn.execute(UNIQUE)).all():
        if i.table in distributed and i.columns[0] != "account_id":
            found.append(f"{i.table}.{i.index}: unique key {i.columns[: i.key_columns]}")
    for k in (await conn.execute(FOREIGN)).all():
        if k.table in REFERENCE and k.referenced in distributed:
            found.append(f"{k.conname}: a reference table refers to a distributed one")
        both = k.table in distributed and k.referenced in distributed
        if both and ("account_id", "account_id") not in set(
            zip(k.columns, k.referenced_columns, strict=True)
        ):
            found.append(f"{k.conname}: {k.table}{k.columns} -> {k.referenced}, not by account")
    return found


async def test_the_schema_can_be_distributed_by_account(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await problems(conn) == []
        tables = {t.relname for t in (await conn.execute(TABLES)).all()}
    assert {"calls", "calls_pending", "rollup_group_daily", "webhook_attempts"} <= tables


async def test_each_kind_of_problem_is_found(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        for ddl in (
            "CREATE TABLE citus_probe (account_id text, id text PRIMARY KEY,"
            " UNIQUE (account_id, id))",
            "CREATE UNIQUE INDEX citus_probe_by_id ON citus_probe (id, account_id)",
            "CREATE TABLE citus_probe_child (account_id text NOT NULL, probe text NOT NULL,"
            " PRIMARY KEY (account_id, probe), FOREIGN KEY (probe) REFERENCES citus_probe (id))",
            "ALTER TABLE api_keys ADD COLUMN probe text REFERENCES citus_probe (id)",
        ):
            await conn.execute(text(ddl))
        found = await problems(conn)
        await conn.rollback()  # none of it stays
    assert found == [
        "citus_probe: account_id may be null",
        "citus_probe.citus_probe_by_id: unique key ['id', 'account_id']",
        "citus_probe.citus_probe_pkey: unique key ['id']",
        "api_keys_probe_fkey: a reference table refers to a distributed one",
        "citus_probe_child_probe_fkey: citus_probe_child['probe'] -> citus_probe, not by account",
    ]
