"""Generated secrets: kept in ``secrets.env`` with mode 600, never one that starts with '-'.

A password beginning with '-' reads as an option wherever it is passed on a command line (a
clean-clone CI run failed when ``git grep`` took a generated password for a flag); the
generator draws again instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safeguard import config
from safeguard.config import SECRET_NAMES, Settings


def test_secrets_are_generated_once_into_a_private_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(root=tmp_path, home=tmp_path / "home")
    first = dict(settings.secrets)
    assert set(first) == set(SECRET_NAMES)
    assert oct(settings.secrets_file.stat().st_mode)[-3:] == "600"
    # a second Settings reads the same file rather than generating anew
    assert Settings(root=tmp_path, home=tmp_path / "home").secrets == first
    assert not any(v.startswith("-") for v in first.values())


def test_a_secret_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["-looks-like-an-option", "--also", "fine-value"])
    monkeypatch.setattr(config.secrets, "token_urlsafe", lambda n: next(draws))
    assert config._generated_secret(18) == "fine-value"
    # and the real generator, many times over
    monkeypatch.undo()
    assert not any(config._generated_secret(18).startswith("-") for _ in range(2000))


def test_private_files_are_never_readable_by_others_even_briefly(tmp_path):
    """Written with mode 600 from creation: a umask of 022 would otherwise leave a window."""
    path = tmp_path / "secrets.env"
    old = os.umask(0o022)
    try:
        config.write_private(path, "A=1\n")
        config.write_private(path, "A=2\n")  # replaced atomically, still private
    finally:
        os.umask(old)
    assert path.read_text() == "A=2\n"
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert not list(tmp_path.glob("*.tmp"))
