"""The pseudonym key is the one the warehouse was built with, or nothing is loaded.

Case ids are stored only as HMAC-SHA256 under ``SAFEGUARD_PSEUDONYM_KEY``. A different key (a
lost ``secrets.env`` regenerated, another machine's environment) makes different pseudonyms:
every re-delivered case would be counted as a new one and never merge with its history. So the
key's fingerprint is recorded in ``ops.pseudonym_keys`` at first use, and a load with any other
key is refused, saying how to restore it. The fingerprint is an HMAC of a fixed text under the
key: it identifies the key without revealing it.

A planned rotation (``safeguard rekey``) cannot undo the old hash (HMAC is one-way), so it
chains: every stored pseudonym p becomes HMAC(new key, p), in one transaction over every table
that holds one, and from then on a delivered id is hashed through the old key and then the new
one (``Settings.pseudonym_keys()``: the retired keys are kept in ``secrets.env`` as
``SAFEGUARD_PSEUDONYM_KEY_PREVIOUS``). Re-deliveries still merge with earlier cases, and what is
stored can no longer be linked to a case id by anyone holding only the old key. The old key
cannot be dropped while earlier cases may be delivered again.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from safeguard.config import (
    PREVIOUS_KEYS,
    Settings,
    _generated_secret,
    _read_env_file,
    env,
    write_secrets,
)
from safeguard.contracts import Contract
from safeguard.contracts.kinds import PSEUDONYM_COLUMNS
from safeguard.ingest.errors import IngestError

_FINGERPRINT_TEXT = b"safeguard pseudonym key fingerprint v1"


class KeyMismatch(IngestError):
    """The pseudonym key is not the one the warehouse's case keys were made with."""


def fingerprint(keys: str | Sequence[str]) -> str:
    """Of one key, or of a chain (oldest first) as it hashes: HMAC of the fixed text through
    each key in turn."""
    text = _FINGERPRINT_TEXT
    for key in [keys] if isinstance(keys, str) else keys:
        text = hmac.new(key.encode(), text, hashlib.sha256).hexdigest().encode()
    return text.decode()[:16]


def _key_in_use(conn: psycopg.Connection) -> str | None:
    """The fingerprint of the key in use (None: no case loaded yet); the caller holds a lock."""
    row = conn.execute("select fingerprint from ops.pseudonym_keys "
                       "where retired_at is null").fetchone()
    return row[0] if row else None


def _has_case_ids(contract: Contract) -> bool:
    return any(c.type == "pseudonym" for c in contract.columns)


def check_pseudonym_key(conn: psycopg.Connection, contract: Contract,
                        keys: str | Sequence[str]) -> None:
    """Record the key's fingerprint at first use; refuse any other key after that."""
    if not _has_case_ids(contract):
        return
    mine = fingerprint(keys)
    with conn.transaction():
        conn.execute("lock table ops.pseudonym_keys in share row exclusive mode")
        theirs = _key_in_use(conn)
        if theirs is None:
            conn.execute("insert into ops.pseudonym_keys (fingerprint) values (%s)", [mine])
            return
    if theirs != mine:
        raise _mismatch(contract, mine, theirs)


def hold_pseudonym_key(conn: psycopg.Connection, contract: Contract,
                       keys: str | Sequence[str]) -> None:
    """In the transaction that lands a batch: the key checked is still the one in use, and
    stays so until the batch's rows are in landing (a rotation waits for the lock)."""
    if not _has_case_ids(contract):
        return
    conn.execute("lock table ops.pseudonym_keys in share mode")
    mine, theirs = fingerprint(keys), _key_in_use(conn)
    if theirs is not None and theirs != mine:
        raise _mismatch(contract, mine, theirs)


def _mismatch(contract: Contract | str, mine: str, theirs: str) -> KeyMismatch:
    name = contract if isinstance(contract, str) else contract.name
    return KeyMismatch(
            f"{name}: the pseudonym key in use (fingerprint {mine}) is not the one "
            f"this warehouse's case keys were made with (fingerprint {theirs}): using "
            f"it would split every case already loaded from its later deliveries. Nothing "
            f"was loaded. Restore SAFEGUARD_PSEUDONYM_KEY (and SAFEGUARD_PSEUDONYM_KEY_PREVIOUS, "
            f"after a rotation) from your backup of secrets.env, or the environment variables "
            f"that set them, and run again; a secrets.env.rekey beside secrets.env is a "
            f"rotation cut off after the warehouse was re-keyed: put it in secrets.env's place "
            f"(rule: pseudonym_key_matches)")


# --- a planned rotation -----------------------------------------------------------------------

class RekeyRefused(IngestError):
    """The rotation cannot be made here (see its message); nothing was changed."""


@dataclass(frozen=True)
class Rekeyed:
    old_fingerprint: str | None
    new_fingerprint: str
    pseudonyms: int  # distinct pseudonyms re-keyed
    rows: dict[str, int]  # table (or table.column) -> rows changed


#: a stored pseudonym: the hex of an HMAC-SHA256 (a masked or marked id, never a hash, stays)
_HASHED = "^[0-9a-f]{64}$"


def _tables_holding(conn: psycopg.Connection, columns: list[str]) -> list[tuple[str, str, str]]:
    """Every base table of the warehouse with a pseudonym column, whoever made it (landing,
    raw, dbt's marts and snapshots): found in the catalog, not listed. A partitioned table is
    one table: its partitions are re-keyed through it, not once more each (a detached one is
    a table again, and is re-keyed)."""
    return conn.execute(
        """
        select c.table_schema, c.table_name, c.column_name
        from information_schema.columns c
        join information_schema.tables t using (table_schema, table_name)
        join pg_namespace n on n.nspname = c.table_schema
        join pg_class k on k.relnamespace = n.oid and k.relname = c.table_name
        where t.table_type = 'BASE TABLE' and c.column_name = any(%s)
          and not k.relispartition
          and c.table_schema not in ('pg_catalog', 'information_schema')
          and c.table_schema not like 'pg\\_%%'
        order by 1, 2, 3
        """, [columns]).fetchall()


def rekey(settings: Settings) -> Rekeyed:
    """Rotate the pseudonym key: a new key at the end of the chain, every stored pseudonym
    re-keyed under it in one transaction, the new secrets in ``secrets.env``. The models built
    on the old pseudonyms (dbt) are rebuilt by the caller."""
    for name in ("SAFEGUARD_PSEUDONYM_KEY", PREVIOUS_KEYS):
        if env(name):
            raise RekeyRefused(
                f"{name} is set in the environment: a rotation writes the new key into "
                f"{settings.secrets_file}, which the environment would override. Unset it (and "
                f"keep its value in secrets.env), or rotate where it is set. Nothing was changed")
    old = settings.pseudonym_keys()
    new_key = _generated_secret(32)
    chain = [*old, new_key]
    stored = _read_env_file(settings.secrets_file)
    stored["SAFEGUARD_PSEUDONYM_KEY"], stored[PREVIOUS_KEYS] = new_key, ",".join(old)
    pending = settings.secrets_file.with_name(settings.secrets_file.name + ".rekey")
    # the new secrets exist before the warehouse changes: a cut-off run leaves them beside it
    write_secrets(pending, stored, "Written by safeguard rekey. Keep out of git; back it up: "
                                   "every key here is needed to match later deliveries.")
    try:
        result = _rekey_warehouse(settings, old, chain)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    pending.replace(settings.secrets_file)
    return result


def _rekey_warehouse(settings: Settings, old: list[str], chain: list[str]) -> Rekeyed:
    from safeguard.ingest.admit import chained_hmac

    columns = list(PSEUDONYM_COLUMNS)
    step = chained_hmac([chain[-1].encode()])  # the new key, over each stored pseudonym
    rows: dict[str, int] = {}
    with psycopg.connect(settings.admin_url(settings.warehouse_db)) as conn:
        # loads check the key under this lock and hold it while they land: none lands now
        conn.execute("lock table ops.pseudonym_keys in exclusive mode")
        in_use = _key_in_use(conn)
        if in_use is not None and in_use != fingerprint(old):
            raise _mismatch("rekey", fingerprint(old), in_use)
        tables = _tables_holding(conn, columns)
        for schema, table in dict.fromkeys((s, t) for s, t, _ in tables):
            conn.execute(sql.SQL("lock table {} in exclusive mode").format(
                sql.Identifier(schema, table)))
        conn.execute("lock table quarantine.rows in exclusive mode")
        conn.execute("create temp table rekey_map (old text primary key, new text not null) "
                     "on commit drop")
        sources = [sql.SQL("select {c} as p from {t}").format(
            c=sql.Identifier(c), t=sql.Identifier(s, t)) for s, t, c in tables]
        sources += [sql.SQL("select record->>{} from quarantine.rows").format(sql.Literal(c))
                    for c in columns]
        distinct = sql.SQL("select distinct p from ({}) as stored (p) where p ~ {}").format(
            sql.SQL(" union all ").join(sources), sql.Literal(_HASHED))
        pseudonyms = 0
        # read on a second connection (a connection cannot fetch while it copies): the tables
        # cannot change meanwhile, this transaction holds them
        with psycopg.connect(settings.admin_url(settings.warehouse_db)) as reader, \
                reader.cursor(name="rekey_stored") as read, conn.cursor() as write:
            read.execute(distinct)
            with write.copy("copy rekey_map (old, new) from stdin") as copy:
                while batch := read.fetchmany(50_000):
                    buf = io.StringIO()
                    for (p,) in batch:
                        buf.write(f"{p}\t{step(p.encode())}\n")
                    copy.write(buf.getvalue())
                    pseudonyms += len(batch)
        conn.execute("analyze rekey_map")
        for schema, table, column in tables:
            cur = conn.execute(sql.SQL(
                "update {t} set {c} = m.new from rekey_map m where {t}.{c} = m.old").format(
                t=sql.Identifier(schema, table), c=sql.Identifier(column)))
            rows[f"{schema}.{table}"] = rows.get(f"{schema}.{table}", 0) + cur.rowcount
        for column in columns:
            cur = conn.execute(
                "update quarantine.rows q set record = jsonb_set(record, %s, to_jsonb(m.new)) "
                "from rekey_map m where q.record->>%s = m.old", [[column], column])
            rows["quarantine.rows"] = rows.get("quarantine.rows", 0) + cur.rowcount
        conn.execute("update ops.pseudonym_keys set retired_at = now() where retired_at is null")
        new = fingerprint(chain)
        conn.execute("insert into ops.pseudonym_keys (fingerprint) values (%s)", [new])
        conn.commit()
    return Rekeyed(in_use, new, pseudonyms, rows)
