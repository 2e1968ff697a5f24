"""Basic-auth users for ``/metrics``: PBKDF2-HMAC-SHA256 hashes, standard library only.

The users file (``metrics.basic_auth_users``) has one ``user:hash`` line per user; blank lines and
``#`` comments are skipped. A hash is ``pbkdf2_sha256$<iterations>$<salt hex>$<derived key hex>``
(the layout Django and passlib use, in hex). bcrypt would need a package; PBKDF2 with a per-user
salt and a high iteration count is what the stdlib offers that resists offline guessing. Make a line
with::

    python -m egresswatch.passwords prometheus      # asks for the password twice

Checking a password costs the iterations (~0.3 s at the default); the server remembers the last
password that passed per user (as a salted SHA-256, in memory only) so a scrape every few seconds
does not pay that each time.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import sys
from pathlib import Path

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000
"""OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256."""


class UsersFileError(ValueError):
    """A users file line that is not ``user:pbkdf2_sha256$...``; the message names file and line."""


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The ``pbkdf2_sha256$...`` string for ``password`` (a fresh random salt unless one is given)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${key.hex()}"


def read_users(path: str | Path) -> dict[str, str]:
    """user -> hash string, every hash checked for shape so a bad file fails at start, not at scrape."""
    users = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user or _parse(encoded) is None:
            raise UsersFileError(f"{path}:{number}: expected user:{SCHEME}$iterations$salt-hex$key-hex")
        users[user] = encoded
    return users


class Verifier:
    """Checks basic-auth credentials against ``users``; remembers the last success per user."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users
        self._pepper = secrets.token_bytes(16)
        self._passed: dict[str, bytes] = {}

    def __bool__(self) -> bool:
        return bool(self._users)

    def check(self, user: str, password: str) -> bool:
        parsed = _parse(self._users.get(user, ""))
        if parsed is None:
            return False
        quick = hashlib.sha256(self._pepper + password.encode()).digest()
        remembered = self._passed.get(user)
        if remembered is not None and hmac.compare_digest(remembered, quick):
            return True
        iterations, salt, expected = parsed
        key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        if not hmac.compare_digest(key, expected):
            return False
        self._passed[user] = quick
        return True


def _parse(encoded: str) -> tuple[int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit() or int(parts[1]) < 1:
        return None
    try:
        return int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m egresswatch.passwords USER``: print a users-file line for USER."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or ":" in args[0]:
        print("usage: python -m egresswatch.passwords USER   (USER without ':')", file=sys.stderr)
        return 2
    password = getpass.getpass(f"password for {args[0]}: ")
    if password != getpass.getpass("again: "):
        print("the two passwords differ", file=sys.stderr)
        return 1
    print(f"{args[0]}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
