"""The pseudonym key is the one the warehouse was built with, or nothing is loaded.

Case ids are stored only as HMAC-SHA256 under ``SAFEGUARD_PSEUDONYM_KEY``. A different key (a
lost ``secrets.env`` regenerated, another machine's environment) makes different pseudonyms:
every re-delivered case would be counted as a new one and never merge with its history. So the
key's fingerprint is recorded in ``ops.pseudonym_keys`` at first use, and a load with any other
key is refused, saying how to restore it. The fingerprint is an HMAC of a fixed text under the
key: it identifies the key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac

import psycopg

from safeguard.contracts import Contract
from safeguard.ingest.errors import IngestError

_FINGERPRINT_TEXT = b"safeguard pseudonym key fingerprint v1"


class KeyMismatch(IngestError):
    """The pseudonym key is not the one the warehouse's case keys were made with."""


def fingerprint(key: str) -> str:
    return hmac.new(key.encode(), _FINGERPRINT_TEXT, hashlib.sha256).hexdigest()[:16]


def check_pseudonym_key(conn: psycopg.Connection, contract: Contract, key: str) -> None:
    """Record the key's fingerprint at first use; refuse any other key after that."""
    if not any(c.type == "pseudonym" for c in contract.columns):
        return
    mine = fingerprint(key)
    with conn.transaction():
        conn.execute("lock table ops.pseudonym_keys in share row exclusive mode")
        row = conn.execute("select fingerprint from ops.pseudonym_keys "
                           "where retired_at is null").fetchone()
        if row is None:
            conn.execute("insert into ops.pseudonym_keys (fingerprint) values (%s)", [mine])
            return
    if row[0] != mine:
        raise KeyMismatch(
            f"{contract.name}: the pseudonym key in use (fingerprint {mine}) is not the one "
            f"this warehouse's case keys were made with (fingerprint {row[0]}): loading with "
            f"it would split every case already loaded from its later deliveries. Nothing "
            f"was loaded. Restore SAFEGUARD_PSEUDONYM_KEY from your backup of secrets.env (or "
            f"the environment variable that set it) and run again (rule: pseudonym_key_matches)")
