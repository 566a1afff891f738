"""``python -m pipeline route``: alert notifications by rules, to webhooks and e-mail (issue 19, scope 3).

Reads the alert topics in the consumer group ``<app_id>-router``.  For every alert and every route
it matches (:mod:`pipeline.cases.routes`), one notification ``<route>:<alert_id>``:

* **delivered** — a webhook POST answered 2xx, or the SMTP server accepted the mail;
* **retried** — timeouts, connection errors, 408, 429 and 5xx: up to ``retries`` attempts, waiting
  ``backoff_seconds`` × 2ⁿ in between; the notifications of one poll are delivered concurrently;
* **dead-lettered** — other 4xx answers, or every attempt failed: a record on
  ``alerts.notifications-deadletter`` with the reason, the attempts and the alert.

Each settled notification (delivered or dead-lettered) gets a marker on the compacted topic
``<app_id>-notifications`` (key: the notification id), acknowledged by the broker *before* the
alert's offset is committed.  At start the router reads every marker, so after a crash or a
kill -9 it re-reads the alerts since the last commit and sends only the notifications without a
marker: a notification is sent again only if the router died between the receiver's answer and
its marker's acknowledgement (milliseconds), and then it carries the same ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from email.message import EmailMessage
from typing import Any, Awaitable, Callable

import orjson

from ..core.records import json_object
from ..cases.routes import Route, Routes, backoff, email_message, notification_id, slack_message
from ..config import Settings
from ..core.timeparse import format_timestamp
from ..kafka_security import aiokafka_kwargs

log = logging.getLogger("pipeline.router")
RETRY_STATUSES = {408, 429}
Outcome = tuple[bool, bool, str]  # (delivered, retry, reason)


def markers_topic(settings: Settings) -> str:
    return f"{settings.app_id}-notifications"


async def post_webhook(http: Any, url: str, body: dict[str, Any], key: str) -> Outcome:
    import aiohttp

    try:
        async with http.post(url, data=orjson.dumps(body), headers={
                "Content-Type": "application/json", "Idempotency-Key": key}) as resp:
            if 200 <= resp.status < 300:
                return True, False, "ok"
            retry = resp.status >= 500 or resp.status in RETRY_STATUSES
            return False, retry, f"http_{resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return False, True, type(exc).__name__


def send_mail(routes: Routes, to: tuple[str, ...], alert: dict[str, Any]) -> Outcome:
    """Blocking (run in a thread): one message to ``to``."""
    import smtplib

    smtp = routes.smtp
    assert smtp is not None
    subject, body = email_message(alert, routes.console_url)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, smtp.sender, ", ".join(to)
    msg.set_content(body)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=15) as server:
            if smtp.starttls:
                server.starttls()
            if smtp.user:
                server.login(smtp.user, os.environ.get(smtp.password_env or "", ""))
            server.send_message(msg)
        return True, False, "ok"
    except smtplib.SMTPResponseException as exc:
        return False, exc.smtp_code >= 400 and exc.smtp_code < 500, f"smtp_{exc.smtp_code}"
    except (OSError, smtplib.SMTPException) as exc:
        return False, True, type(exc).__name__


class Router:
    def __init__(self, settings: Settings, routes: Routes) -> None:
        t = settings.topics
        self.settings, self.routes = settings, routes
        self.topics = (t.alerts_churn, t.alerts_commitments, t.alerts_pain_points)
        self.done: set[str] = set()
        self._in_flight: set[str] = set()  # a re-emitted alert in the same poll is not sent twice
        self.delivered = self.dead_lettered = 0
        self._producer: Any = None
        self._http: Any = None

    def load_markers(self) -> None:
        """Every settled notification (blocking: before the loop starts)."""
        from ..summary import read_topic
        from ..topics import TopicSpec, ensure_topics

        ensure_topics(self.settings, [TopicSpec(markers_topic(self.settings), 1, {"cleanup.policy": "compact"})])
        self.done = {key.decode() for key, _ in read_topic(self.settings, markers_topic(self.settings)) if key}
        log.info("router markers read", extra={"count": len(self.done)})

    async def run(self, stop: asyncio.Event | None = None) -> None:
        import aiohttp
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        await asyncio.to_thread(self.load_markers)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._producer = AIOKafkaProducer(**aiokafka_kwargs(self.settings), acks="all", enable_idempotence=True)
        consumer = AIOKafkaConsumer(*self.topics, **aiokafka_kwargs(self.settings), enable_auto_commit=False,
                                    group_id=f"{self.settings.app_id}-router", auto_offset_reset="earliest")
        await self._producer.start()
        await consumer.start()
        try:
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                jobs = [self.notify(alert) for records in batches.values() for rec in records
                        if (alert := _alert(rec.value)) is not None]
                if jobs:
                    await asyncio.gather(*jobs)
                if batches:
                    await consumer.commit()  # every notification of these alerts is settled and marked
        finally:
            await consumer.stop()
            await self._producer.stop()
            await self._http.close()

    async def notify(self, alert: dict[str, Any]) -> None:
        todo = []
        for route in self.routes.matching(alert):
            nid = notification_id(route, alert)
            if nid not in self.done and nid not in self._in_flight:
                self._in_flight.add(nid)
                todo.append(route)
        try:
            await asyncio.gather(*(self.deliver(route, alert) for route in todo))
        finally:
            self._in_flight.difference_update(notification_id(route, alert) for route in todo)

    async def deliver(self, route: Route, alert: dict[str, Any]) -> None:
        nid = notification_id(route, alert)
        channels: list[tuple[str, Callable[[], Awaitable[Outcome]]]] = []
        if route.webhook_url:
            url = route.webhook_url
            body = slack_message(alert, self.routes.console_url)
            channels.append(("webhook", lambda: post_webhook(self._http, url, body, nid)))
        if route.email_to:
            channels.append(("email", lambda: asyncio.to_thread(send_mail, self.routes, route.email_to, alert)))
        results = await asyncio.gather(*(self._attempts(fn) for _, fn in channels))
        for (channel, _), (ok, attempts, reason) in zip(channels, results):
            if ok:
                self.delivered += 1
            else:
                self.dead_lettered += 1
                await self._send(self.settings.topics.notifications_deadletter, nid, {
                    "schema_version": 1, "notification_id": nid, "route": route.name, "channel": channel,
                    "alert_id": alert["alert_id"], "reason": reason, "attempts": attempts,
                    "failed_at": format_timestamp(time.time()), "alert": alert})
                log.warning("notification dead-lettered", extra={"reason": reason, "count": attempts})
        status = "delivered" if all(ok for ok, _, _ in results) else "dead_lettered"
        await self._send(markers_topic(self.settings), nid, {"notification_id": nid, "status": status,
                                                             "at": format_timestamp(time.time())})
        self.done.add(nid)

    async def _attempts(self, attempt: Callable[[], Awaitable[Outcome]]) -> tuple[bool, int, str]:
        reason = "no_attempt"
        for n in range(1, self.routes.retries + 1):
            ok, retry, reason = await attempt()
            if ok:
                return True, n, reason
            if not retry or n == self.routes.retries:
                return False, n, reason
            await asyncio.sleep(backoff(n, self.routes.backoff_seconds))
        return False, self.routes.retries, reason

    async def _send(self, topic: str, key: str, doc: dict[str, Any]) -> None:
        fut = await self._producer.send(topic, orjson.dumps(doc), key=key.encode())
        await fut



def _alert(value: bytes | None) -> dict[str, Any] | None:
    doc = json_object(value)
    return doc if doc is not None and isinstance(doc.get("alert_id"), str) else None
