"""Issue 19, scope 4: console users, sessions, CSRF tokens and the loopback rule (pure, no server)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.console.auth import ConsoleConfigError, Sessions, User, check_bind, is_loopback, load_users
from pipeline.console.settings import ConsoleSettings


def sha(p: str) -> str:
    return hashlib.sha256(p.encode()).hexdigest()


def test_users_from_token_and_file_with_roles(tmp_path) -> None:
    f = tmp_path / "users.yaml"
    f.write_text(f"users:\n  - {{name: mina, role: operator, password_sha256: {sha('pw1')}}}\n"
                 f"  - {{name: audit, role: viewer, password_sha256: {sha('pw2').upper()}}}\n")
    users = load_users("tok", str(f))
    assert users.check("mina", "pw1") == User("mina", "operator") and users.check("mina", "pw2") is None
    assert users.check("audit", "pw2") == User("audit", "viewer") and not users.check("audit", "pw2").can_act
    assert users.check("nobody", "pw1") is None
    assert users.by_token("tok") == User("operator", "operator") and users.by_token("nope") is None
    assert not users.open and load_users(None, None).open
    bad = tmp_path / "bad.yaml"
    bad.write_text("users:\n  - {name: x, role: admin, password_sha256: abc}\n")
    with pytest.raises(ConsoleConfigError, match="users\\[0\\]"):
        load_users(None, str(bad))
    with pytest.raises(ConsoleConfigError, match="cannot read"):
        load_users(None, str(tmp_path / "missing.yaml"))


def test_sessions_are_signed_expire_and_carry_a_csrf_nonce() -> None:
    s = Sessions(b"k" * 32)
    cookie = s.issue(User("mina", "operator"), now=1000.0)
    user, nonce = s.read(cookie, now=1001.0)
    assert user == User("mina", "operator")
    assert s.csrf_ok(nonce, s.csrf_token(nonce)) and not s.csrf_ok(nonce, "x") and not s.csrf_ok(nonce, None)
    assert s.read(cookie, now=1000.0 + 13 * 3600) is None  # expired
    body, sig = cookie.rsplit(".", 1)
    assert s.read(body + "." + sig[:-2] + "AA", now=1001.0) is None  # tampered
    assert Sessions(b"j" * 32).read(cookie, now=1001.0) is None  # another key
    assert s.read("garbage", 1.0) is None and s.read(None, 1.0) is None


def test_no_open_console_beyond_loopback() -> None:
    open_users = load_users(None, None)
    check_bind("127.0.0.1", open_users)
    check_bind("::1", open_users)
    with pytest.raises(ConsoleConfigError, match="refusing to listen on 0.0.0.0"):
        check_bind("0.0.0.0", open_users)
    check_bind("0.0.0.0", load_users("tok", None))
    assert is_loopback("localhost") and is_loopback("[::1]") and not is_loopback("example.org")


def test_console_settings_from_env() -> None:
    cs = ConsoleSettings.from_env({"PIPELINE_CONSOLE_PORT": "7000", "PIPELINE_CONSOLE_RESOLUTION_CODES": "a_b, c",
                                   "PIPELINE_CONSOLE_WORKER_URL": "http://w:6066/"})
    assert cs.port == 7000 and cs.resolution_codes == ("a_b", "c") and cs.worker_url == "http://w:6066"
    assert ConsoleSettings.from_env({}).host == "127.0.0.1"
