"""A planned rotation of the pseudonym key (`safeguard rekey`): every stored pseudonym re-keyed,
re-deliveries of earlier cases still merging with them, the old key alone refused.

The rotation is one-way, so it runs on a warehouse of its own (its own home, embedded server
and secrets), through the CLI as an operator would, with real dbt builds.
"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import TEST_HOME, safeguard_cli
from safeguard.config import PREVIOUS_KEYS, Settings
from safeguard.ports import free_port

pytestmark = pytest.mark.service
SOURCE = "sample_hotline_cases"
REBUILD = "+fct_hotline_cases"  # the case facts and what they stand on: enough to see merges
CLOSED = "2021-12-31T23:00:00Z"


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """A home of its own (beside the test home: the embedded server's user must reach it)."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("needs a server of its own: a rotation cannot be undone")
    home = TEST_HOME.parent / (TEST_HOME.name + "-rekey")
    subprocess.run(["rm", "-rf", str(home)], check=True)
    out = {**os.environ, "SAFEGUARD_HOME": str(home), "SAFEGUARD_PG_PORT": str(free_port())}
    for name in ("SAFEGUARD_PSEUDONYM_KEY", PREVIOUS_KEYS):
        out.pop(name, None)
    yield out
    safeguard_cli("db", "stop", check=False, env=out)


def _settings(env: dict[str, str]) -> Settings:
    return Settings(root=Path(__file__).resolve().parents[1], home=Path(env["SAFEGUARD_HOME"]))


def _files(folder: Path) -> tuple[Path, Path]:
    """A 300-case extract, then a re-delivery: its first 50 cases now closed, 20 new ones."""
    from safeguard.generate import generate_files

    generate_files(folder, 300, seed=31, years=(2021, 2021))
    (first,) = sorted((folder / SOURCE).glob("*.csv"))
    with first.open(newline="") as f:
        rows = list(csv.DictReader(f))
    again = [{**r, "Closed": CLOSED} for r in rows[:50]]
    new = [{**r, "Case ID": f"HL-2021-NEW{i:04d}"} for i, r in enumerate(rows[100:120])]
    second = folder / "redelivery" / "hotline_cases_2021_redelivery.csv"
    second.parent.mkdir()
    with second.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(again + new)
    return first, second


def _keys(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("select case_key from raw.hotline_cases")}


def test_rekey_keeps_redeliveries_merging_and_refuses_the_old_key(env, tmp_path):
    first, second = _files(tmp_path)
    safeguard_cli("db", "up", env=env)
    s = _settings(env)
    admin = s.admin_url(s.warehouse_db)
    loaded = safeguard_cli("ingest", "--source", SOURCE, str(first), env=env).stdout
    assert loaded.startswith("loaded:")
    safeguard_cli("transform", "--select", REBUILD, env=env)
    with psycopg.connect(admin) as conn:
        before = _keys(conn)
        cases_before = conn.execute("select count(*) from cases.fct_hotline_cases").fetchone()[0]
    assert len(before) == 300 and cases_before == 300
    old_secrets = s.secrets_file.read_text()
    old_key = s.secret("SAFEGUARD_PSEUDONYM_KEY")

    # refused while the key comes from the environment: nothing changes
    refused = safeguard_cli("rekey", "--yes", check=False,
                            env={**env, "SAFEGUARD_PSEUDONYM_KEY": old_key})
    assert refused.returncode == 2, refused.stderr
    assert "set in the environment" in refused.stderr and old_key not in refused.stderr
    assert s.secrets_file.read_text() == old_secrets

    done = safeguard_cli("rekey", "--yes", "--select", REBUILD, env=env)
    assert "300 pseudonyms re-keyed" in done.stdout, done.stdout
    assert "models rebuilt" in done.stdout
    assert old_key not in done.stdout + done.stderr
    rotated = _settings(env)
    assert rotated.pseudonym_keys()[0] == old_key and len(rotated.pseudonym_keys()) == 2
    assert stat.S_IMODE(s.secrets_file.stat().st_mode) == 0o600
    assert not s.secrets_file.with_name("secrets.env.rekey").exists()
    from safeguard.ingest.keys import fingerprint

    with psycopg.connect(admin) as conn:
        after = _keys(conn)
        assert len(after) == 300 and not after & before  # every pseudonym changed
        assert conn.execute("select fingerprint, retired_at is null from ops.pseudonym_keys "
                            "order by first_used_at").fetchall() == [
            (fingerprint(old_key), False), (fingerprint(rotated.pseudonym_keys()), True)]
        assert conn.execute("select count(*) from cases.fct_hotline_cases where case_key = any(%s)",
                            [list(before)]).fetchone()[0] == 0

    # the re-delivery merges with the re-keyed cases: 20 new, 50 updated, none doubled
    loaded = safeguard_cli("ingest", "--source", SOURCE, str(second), env=env).stdout
    assert loaded.startswith("loaded:")
    safeguard_cli("transform", "--select", REBUILD, env=env)
    with psycopg.connect(admin) as conn:
        assert len(_keys(conn)) == 320
        assert conn.execute("select count(*) from cases.fct_hotline_cases").fetchone()[0] == 320
        closed = conn.execute("select count(*) from cases.fct_hotline_cases "
                              "where closed_at = %s", [CLOSED]).fetchone()[0]
        assert closed == 50

    # the old secrets (a stale backup, another machine) are refused, with how to restore
    s.secrets_file.write_text(old_secrets)
    stale = safeguard_cli("ingest", "--source", SOURCE, str(first), check=False, env=env)
    assert stale.returncode == 4, stale.stdout + stale.stderr
    assert "(rule: pseudonym_key_matches)" in stale.stderr
    assert "SAFEGUARD_PSEUDONYM_KEY_PREVIOUS" in stale.stderr
