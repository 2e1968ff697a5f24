"""The basic-auth users file: PBKDF2-HMAC-SHA256 hashes, checked per user, bad lines named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from egresswatch.passwords import UsersFileError, Verifier, hash_password, read_users


def test_hash_is_the_documented_pbkdf2_layout() -> None:
    salt = bytes(range(16))
    encoded = hash_password("secret", iterations=1000, salt=salt)
    key = hashlib.pbkdf2_hmac("sha256", b"secret", salt, 1000)
    assert encoded == f"pbkdf2_sha256$1000${salt.hex()}${key.hex()}"
    assert hash_password("secret", iterations=1000) != hash_password("secret", iterations=1000)  # fresh salts


def test_verifier_accepts_only_the_right_user_and_password(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"# comment\n\nalice:{hash_password('a1', iterations=1000)}\n"
                     f"bob:{hash_password('b2', iterations=1000)}\n", encoding="utf-8")
    verifier = Verifier(read_users(users))
    assert verifier.check("alice", "a1") and verifier.check("bob", "b2")
    assert verifier.check("alice", "a1")  # the remembered success
    assert not verifier.check("alice", "b2")
    assert not verifier.check("alice", "a1 ")
    assert not verifier.check("carol", "a1")
    assert not Verifier({})


@pytest.mark.parametrize("line", ["alice", "alice:0123abcd", ":pbkdf2_sha256$1000$00$00",
                                  "alice:pbkdf2_sha256$0$00$00", "alice:pbkdf2_sha256$1000$zz$00",
                                  "alice:bcrypt$2b$12$abc"])
def test_bad_lines_are_rejected_with_file_and_line(tmp_path: Path, line: str) -> None:
    users = tmp_path / "users"
    users.write_text(f"# ok\n{line}\n", encoding="utf-8")
    with pytest.raises(UsersFileError, match=rf"{users}:2: expected user:pbkdf2_sha256"):
        read_users(users)
