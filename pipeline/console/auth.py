"""Console users, sessions and CSRF tokens (pure; issue 19, scope 4).

Users come from ``PIPELINE_CONSOLE_TOKEN`` (one user, ``operator``, role ``operator``, whose password
is the token) and/or ``PIPELINE_CONSOLE_USERS_FILE``, a YAML file::

    users:
      - {name: mina, role: operator, password_sha256: "<hex sha-256 of the password>"}
      - {name: auditor, role: viewer, password_sha256: "..."}

Roles: ``viewer`` reads every page; ``operator`` also acts on alerts.  Without any user the console
is open to everyone as ``operator``, and :func:`check_bind` refuses to listen beyond loopback then.

A signed session cookie (HMAC-SHA256 with ``PIPELINE_CONSOLE_SECRET``, or a random key per process)
holds the user name, role and expiry; HTTP Basic or ``Authorization: Bearer <token>`` work too, for
scripts.  Every state-changing request needs the CSRF token of its session (:func:`csrf_token`: an
HMAC of the session's nonce, embedded in each form) — except a bearer-token request, which a browser
never sends on its own.  Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..yamlfile import read_mapping

ROLES = ("viewer", "operator")
SESSION_SECONDS = 12 * 3600


class ConsoleConfigError(ValueError):
    """The console's settings are unsafe or invalid (the message says what to change)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


ANONYMOUS_OPERATOR = User("operator", "operator")  # no users configured (loopback only)


@dataclass(frozen=True)
class Account:
    user: User
    password_sha256: str


class Users:
    def __init__(self, accounts: list[Account]) -> None:
        self.accounts = {a.user.name: a for a in accounts}

    @property
    def open(self) -> bool:
        """No users configured: everyone is an operator (loopback only)."""
        return not self.accounts

    def check(self, name: str, password: str) -> User | None:
        account = self.accounts.get(name)
        digest = hashlib.sha256(password.encode()).hexdigest()
        if account is None:
            hmac.compare_digest(digest, digest)  # the same work for an unknown name
            return None
        return account.user if hmac.compare_digest(digest, account.password_sha256) else None

    def by_token(self, token: str) -> User | None:
        """A bearer token: any account whose password it is."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for account in self.accounts.values():
            if hmac.compare_digest(digest, account.password_sha256):
                found = account.user
        return found


def load_users(token: str | None, users_file: str | None) -> Users:
    accounts: list[Account] = []
    if token:
        accounts.append(Account(User("operator", "operator"), hashlib.sha256(token.encode()).hexdigest()))
    if users_file:
        doc = read_mapping(Path(users_file), "console users file", ConsoleConfigError)
        for i, u in enumerate(doc.get("users") or []):
            if not isinstance(u, Mapping) or not u.get("name") or u.get("role") not in ROLES \
                    or not isinstance(u.get("password_sha256"), str) or len(u["password_sha256"]) != 64:
                raise ConsoleConfigError(f"{users_file}: users[{i}] needs name, role (viewer|operator) and "
                                         "password_sha256 (64 hex characters)")
            accounts.append(Account(User(str(u["name"]), u["role"]), u["password_sha256"].lower()))
    return Users(accounts)


def check_bind(host: str, users: Users) -> None:
    """Refuse to listen beyond loopback without credentials."""
    if users.open and not is_loopback(host):
        raise ConsoleConfigError(f"refusing to listen on {host} without credentials: set PIPELINE_CONSOLE_TOKEN "
                                 "or PIPELINE_CONSOLE_USERS_FILE, or bind 127.0.0.1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- sessions ----------------------------------------------------------------------------------------
class Sessions:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    def _sign(self, payload: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()).decode()

    def issue(self, user: User, now: float) -> str:
        nonce = secrets.token_urlsafe(12)
        payload = f"{user.name}|{user.role}|{int(now + SESSION_SECONDS)}|{nonce}"
        return base64.urlsafe_b64encode(payload.encode()).decode() + "." + self._sign(payload)

    def read(self, cookie: str | None, now: float) -> tuple[User, str] | None:
        """(user, nonce) of a valid, unexpired session cookie."""
        if not cookie or "." not in cookie:
            return None
        body, sig = cookie.rsplit(".", 1)
        try:
            payload = base64.urlsafe_b64decode(body.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        parts = payload.split("|")
        if len(parts) != 4 or parts[1] not in ROLES or not parts[2].isdigit() or int(parts[2]) < now:
            return None
        return User(parts[0], parts[1]), parts[3]

    def csrf_token(self, nonce: str) -> str:
        return self._sign(f"csrf|{nonce}")

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(nonce), token or "")
