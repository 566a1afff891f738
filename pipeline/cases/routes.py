"""Alert routing rules and notification messages (pure; issue 19, scope 3).

A routes file (YAML, ``PIPELINE_ROUTES_FILE`` or ``python -m pipeline route --rules FILE``)::

    console_url: https://console.example.com      # links in the messages (optional)
    retries: 5                                    # attempts per notification (default 5)
    backoff_seconds: 2                            # first retry delay, doubled each time (default 2)
    routes:
      - name: key-customers-on-call               # unique; part of the notification id
        match:
          severity: high                          # at least this severity
          type: [churn_risk, unmet_commitment]    # any of these types (default: any)
          segment: value_tier=key                 # the alert's segment has this value (default: any)
        webhook: {url: https://hooks.slack.com/services/T000/B000/XXX}   # Slack-compatible JSON
        email: {to: [oncall@example.com]}         # needs the smtp block
    smtp: {host: smtp.example.com, port: 587, from: alerts@example.com, starttls: true,
           user: alerts, password_env: PIPELINE_SMTP_PASSWORD}

Every route an alert matches gets one notification, identified by ``<route>:<alert_id>`` (the
alert ids are deterministic, so a re-emitted alert is the same notification).  The webhook body
is Slack's incoming-webhook format (``text`` plus ``blocks``) with the alert under ``alert``, so a
generic receiver gets the data too; the ``Idempotency-Key`` header carries the notification id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from .inbox import SEVERITIES, alert_segments

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF_SECONDS = 2.0


class RoutesError(ValueError):
    """The routes file is invalid (the message names the route and the field)."""


@dataclass(frozen=True)
class Match:
    severity: str = "info"
    types: tuple[str, ...] = ()
    segment: str | None = None

    def matches(self, alert: Mapping[str, Any]) -> bool:
        sev = alert.get("severity")
        if sev not in SEVERITIES or SEVERITIES.index(sev) < SEVERITIES.index(self.severity):
            return False
        if self.types and alert.get("type") not in self.types:
            return False
        if self.segment and self.segment not in alert_segments(dict(alert)):
            return False
        return True


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    webhook_url: str | None = None
    email_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int = 587
    sender: str = "pipeline@localhost"
    starttls: bool = True
    user: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class Routes:
    routes: tuple[Route, ...] = ()
    retries: int = DEFAULT_RETRIES
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    console_url: str | None = None
    smtp: Smtp | None = None
    names: frozenset[str] = field(default_factory=frozenset)

    def matching(self, alert: Mapping[str, Any]) -> list[Route]:
        return [r for r in self.routes if r.match.matches(alert)]


def parse_routes(doc: Mapping[str, Any], where: str = "routes file") -> Routes:
    routes: list[Route] = []
    for i, r in enumerate(doc.get("routes") or []):
        label = f"{where}: routes[{i}]"
        if not isinstance(r, Mapping) or not isinstance(r.get("name"), str) or not r["name"]:
            raise RoutesError(f"{label} needs a name")
        m = r.get("match") or {}
        sev = m.get("severity", "info")
        if sev not in SEVERITIES:
            raise RoutesError(f"{label} ({r['name']}): match.severity must be one of {', '.join(SEVERITIES)}")
        types = m.get("type") or ()
        types = (types,) if isinstance(types, str) else tuple(str(t) for t in types)
        hook = (r.get("webhook") or {}).get("url")
        to = (r.get("email") or {}).get("to") or ()
        to = (to,) if isinstance(to, str) else tuple(str(t) for t in to)
        if not hook and not to:
            raise RoutesError(f"{label} ({r['name']}): give a webhook url and/or email to")
        if hook and not str(hook).startswith(("http://", "https://")):
            raise RoutesError(f"{label} ({r['name']}): webhook url must be http(s)")
        routes.append(Route(r["name"], Match(sev, types, m.get("segment")), hook, to))
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise RoutesError(f"{where}: route names must be unique")
    smtp = None
    if doc.get("smtp"):
        s = doc["smtp"]
        smtp = Smtp(str(s["host"]), int(s.get("port", 587)), str(s.get("from", "pipeline@localhost")),
                    bool(s.get("starttls", True)), s.get("user"), s.get("password_env"))
    if any(r.email_to for r in routes) and smtp is None:
        raise RoutesError(f"{where}: a route sends e-mail, but there is no smtp block")
    retries = int(doc.get("retries", DEFAULT_RETRIES))
    if retries < 1:
        raise RoutesError(f"{where}: retries must be at least 1")
    return Routes(tuple(routes), retries, float(doc.get("backoff_seconds", DEFAULT_BACKOFF_SECONDS)),
                  doc.get("console_url"), smtp, frozenset(names))


def notification_id(route: Route, alert: Mapping[str, Any]) -> str:
    return f"{route.name}:{alert['alert_id']}"


def backoff(attempt: int, base: float, cap: float = 300.0) -> float:
    """Seconds before retry ``attempt`` (1-based): ``base``, 2 × ``base``, 4 × ``base`` … at most ``cap``."""
    return min(cap, base * 2 ** max(0, attempt - 1))


def alert_link(alert: Mapping[str, Any], console_url: str | None) -> str | None:
    return f"{console_url.rstrip('/')}/alerts/{quote(str(alert['alert_id']), safe='')}" if console_url else None


def slack_message(alert: Mapping[str, Any], console_url: str | None = None) -> dict[str, Any]:
    """Slack incoming-webhook JSON (``text`` + ``blocks``), with the alert itself under ``alert``."""
    subject = alert.get("subject") or {}
    who = subject.get("customer_id") or f"{subject.get('dimension')}={subject.get('value')}"
    head = f"[{str(alert.get('severity', '')).upper()}] {alert.get('type')} — {who}"
    link = alert_link(alert, console_url)
    text = f"{head}\n{alert.get('reason', '')}" + (f"\n{link}" if link else "")
    actions = alert.get("suggested_actions") or []
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": str(alert.get("reason", ""))[:3000]}},
    ]
    if actions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": "\n".join(f"• {a}" for a in actions)[:3000]}})
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in the console>"}]})
    return {"text": text, "blocks": blocks, "alert": dict(alert)}


def email_message(alert: Mapping[str, Any], console_url: str | None = None) -> tuple[str, str]:
    """(subject, plain-text body)."""
    msg = slack_message(alert, console_url)
    subject = msg["blocks"][0]["text"]["text"]
    actions = "\n".join(f"- {a}" for a in alert.get("suggested_actions") or [])
    body = msg["text"] + (f"\n\nSuggested actions:\n{actions}" if actions else "") + \
        f"\n\nAlert id: {alert.get('alert_id')}\n"
    return subject, body
