"""Issue 19, scope 3: routing rules and notification messages (pure, no broker)."""

from __future__ import annotations

import pytest

from pipeline.cases.routes import (RoutesError, backoff, email_message, notification_id, parse_routes,
                                   slack_message)

ALERT = {"alert_id": "churn_risk:c1:2027-01-15", "type": "churn_risk", "severity": "high",
         "subject": {"kind": "customer", "customer_id": "c1",
                     "segment": {"value_tier": "key", "lifecycle": "active", "region": "unknown"}},
         "reason": "Churn risk 71 (threshold 60)", "suggested_actions": ["Call within 24 h"]}


def test_rules_match_by_severity_type_and_segment() -> None:
    routes = parse_routes({"routes": [
        {"name": "all-high", "match": {"severity": "high"}, "webhook": {"url": "https://h/1"}},
        {"name": "key-churn", "match": {"type": ["churn_risk"], "segment": "value_tier=key"},
         "webhook": {"url": "https://h/2"}},
        {"name": "critical", "match": {"severity": "critical"}, "webhook": {"url": "https://h/3"}},
        {"name": "surges", "match": {"type": "pain_point_surge"}, "webhook": {"url": "https://h/4"}},
        {"name": "regular", "match": {"segment": "value_tier=regular"}, "webhook": {"url": "https://h/5"}},
    ]})
    assert [r.name for r in routes.matching(ALERT)] == ["all-high", "key-churn"]
    assert [r.name for r in routes.matching({**ALERT, "severity": "critical"})] == ["all-high", "key-churn", "critical"]
    assert routes.matching({**ALERT, "severity": "bogus"}) == []
    assert notification_id(routes.routes[0], ALERT) == "all-high:churn_risk:c1:2027-01-15"
    assert routes.retries == 5 and routes.backoff_seconds == 2.0


@pytest.mark.parametrize("doc,why", [
    ({"routes": [{"match": {}}]}, "needs a name"),
    ({"routes": [{"name": "a", "match": {"severity": "urgent"}, "webhook": {"url": "https://h"}}]}, "severity"),
    ({"routes": [{"name": "a"}]}, "webhook url and/or email"),
    ({"routes": [{"name": "a", "webhook": {"url": "ftp://h"}}]}, "http"),
    ({"routes": [{"name": "a", "webhook": {"url": "https://h"}}, {"name": "a", "webhook": {"url": "https://h"}}]},
     "unique"),
    ({"routes": [{"name": "a", "email": {"to": "x@y"}}]}, "smtp"),
    ({"retries": 0, "routes": []}, "retries"),
])
def test_invalid_rules_say_what_is_wrong(doc: dict, why: str) -> None:
    with pytest.raises(RoutesError, match=why):
        parse_routes(doc)


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff(20, 2.0) == 300.0


def test_slack_and_email_messages_carry_the_alert_and_the_console_link() -> None:
    msg = slack_message(ALERT, "https://console.example/")
    assert msg["text"].splitlines()[0] == "[HIGH] churn_risk — c1"
    assert "https://console.example/alerts/churn_risk%3Ac1%3A2027-01-15" in msg["text"]
    assert msg["alert"] == ALERT and [b["type"] for b in msg["blocks"]] == ["header", "section", "section", "context"]
    subject, body = email_message(ALERT)
    assert subject == "[HIGH] churn_risk — c1" and "Call within 24 h" in body and "Alert id: churn_risk:c1" in body
    seg = slack_message({**ALERT, "subject": {"kind": "segment", "dimension": "region", "value": "SP"}})
    assert seg["text"].startswith("[HIGH] churn_risk — region=SP") and len(seg["blocks"]) == 3


def test_send_mail_uses_starttls_login_and_reports_smtp_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import smtplib

    from pipeline.console.router import send_mail

    sent: list = []

    class FakeSMTP:
        def __init__(self, host: str, port: int, timeout: float) -> None:
            sent.append(("connect", host, port))

        def __enter__(self) -> "FakeSMTP":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def starttls(self) -> None:
            sent.append(("starttls",))

        def login(self, user: str, password: str) -> None:
            sent.append(("login", user, password))

        def send_message(self, msg) -> None:
            if "down" in msg["To"]:
                raise smtplib.SMTPResponseException(451, b"try later")
            if "nobody" in msg["To"]:
                raise smtplib.SMTPResponseException(550, b"no such user")
            sent.append(("send", msg["To"], msg["Subject"]))

    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    monkeypatch.setenv("PIPELINE_SMTP_PASSWORD", "pw")
    routes = parse_routes({"smtp": {"host": "mail", "port": 2525, "from": "a@b", "user": "u",
                                    "password_env": "PIPELINE_SMTP_PASSWORD"},
                           "routes": [{"name": "m", "email": {"to": ["oncall@x"]}}]})
    assert send_mail(routes, ("oncall@x",), ALERT) == (True, False, "ok")
    assert sent == [("connect", "mail", 2525), ("starttls",), ("login", "u", "pw"),
                    ("send", "oncall@x", "[HIGH] churn_risk — c1")]
    assert send_mail(routes, ("down@x",), ALERT) == (False, True, "smtp_451")  # temporary: retried
    assert send_mail(routes, ("nobody@x",), ALERT) == (False, False, "smtp_550")  # permanent: dead-lettered


def test_a_notification_is_delivered_once_when_its_alert_comes_twice_in_one_poll() -> None:
    import asyncio

    from pipeline.config import load_settings
    from pipeline.console.router import Router

    router = Router(load_settings({}), parse_routes({"routes": [{"name": "a", "webhook": {"url": "http://x"}}]}))
    calls: list[str] = []

    async def deliver(route, alert) -> None:
        calls.append(alert["alert_id"])
        await asyncio.sleep(0.01)
        router.done.add(notification_id(route, alert))

    router.deliver = deliver  # type: ignore[method-assign]

    async def main() -> None:
        await asyncio.gather(router.notify(ALERT), router.notify(dict(ALERT)))  # a re-emitted copy
        await router.notify(ALERT)  # after the marker: skipped

    asyncio.run(main())
    assert calls == [ALERT["alert_id"]]
