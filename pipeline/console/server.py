"""``python -m pipeline console``: the operations console (issue 19).

Server-rendered pages (Jinja2, autoescaped) with a few lines of JavaScript for the inbox's live
update; no front-end build.  Pages:

* ``/`` — the inbox: filters (type, severity, segment, owner, status, text), counts per status,
  the newest alerts first; the rows refresh every ``PIPELINE_CONSOLE_REFRESH_SECONDS``;
* ``/alerts/{alert_id}`` — the explanation (reason, factors, evidence, details), the customer's
  open commitments (from the worker), the suggested actions, the case and its history, and the
  action forms (operators only);
* ``/customers/{customer_id}`` — the worker's customer view (segment, churn factors, commitments);
* ``/segments`` and ``/segments/{dimension}={value}`` — pain-point trends over closed windows as
  SVG charts, from ``aggregates.pain-points``.

Actions: ``POST /alerts/{alert_id}/actions`` (form, with the session's CSRF token) or
``POST /api/alerts/{alert_id}/actions`` (JSON, ``Authorization: Bearer``); both write the action to
``alerts.actions`` and answer once the broker acknowledged it.  ``GET /api/alerts`` lists the inbox
as JSON (same filters).  ``GET /healthz`` answers 200 once the topics were read up to their ends
at start.  Auth, roles and CSRF: :mod:`pipeline.console.auth`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
from aiohttp import web

from ..cases.inbox import Filters, Inbox, subject_key
from ..cases.lifecycle import Action, ActionRefused, apply, record, status_at
from ..cases.trends import Trends, svg_chart
from ..config import Settings
from ..core.timeparse import format_timestamp
from .auth import ANONYMOUS_OPERATOR, Sessions, User, Users, check_bind, load_users
from .feed import ActionWriter, Feed
from .settings import ConsoleSettings

log = logging.getLogger("pipeline.console")
HERE = Path(__file__).parent
COOKIE = "pipeline_console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTES = (  # method, path, Console method
    ("GET", "/", "inbox_page"), ("GET", "/inbox/rows", "inbox_rows"),
    ("GET", "/alerts/{alert_id}", "alert_page"), ("POST", "/alerts/{alert_id}/actions", "form_action"),
    ("GET", "/customers/{customer_id}", "customer_page"),
    ("GET", "/segments", "segments_page"), ("GET", "/segments/{segment}", "segment_page"),
    ("GET", "/api/alerts", "api_alerts"), ("POST", "/api/alerts/{alert_id}/actions", "api_action"),
    ("GET", "/login", "login_page"), ("POST", "/login", "login"), ("POST", "/logout", "logout"),
    ("GET", "/healthz", "healthz"),
)


class Console:
    def __init__(self, settings: Settings, cs: ConsoleSettings) -> None:
        import jinja2

        self.settings, self.cs = settings, cs
        self.users: Users = load_users(cs.token, cs.users_file)
        check_bind(cs.host, self.users)
        self.sessions = Sessions(cs.secret.encode() if cs.secret else None)
        self.inbox, self.trends = Inbox(cs.max_alerts), Trends()
        self.feed = Feed(settings, self.inbox, self.trends)
        self.writer = ActionWriter(settings)
        self.locks: dict[str, asyncio.Lock] = {}
        self.http: aiohttp.ClientSession | None = None
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                            autoescape=jinja2.select_autoescape(["html"]))
        self.templates.filters["q"] = lambda s: quote(str(s), safe="")
        self.templates.filters["ts"] = lambda t: format_timestamp(float(t))[:16].replace("T", " ")
        self.templates.globals["status_at"] = status_at

    # -- lifecycle -----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth_middleware])
        for method, path, handler in ROUTES:
            app.router.add_route(method, path, getattr(self, handler))
        app.router.add_static("/static", HERE / "static")
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        await self.writer.start()
        await self.feed.start()

    async def _stop(self, app: web.Application) -> None:
        await self.feed.stop()
        await self.writer.stop()
        if self.http is not None:
            await self.http.close()

    # -- auth ----------------------------------------------------------------------------------------
    @web.middleware
    async def auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = time.time()
        session = self.sessions.read(request.cookies.get(COOKIE), now)
        user, nonce, bearer, issue = None, None, False, None
        auth = request.headers.get("Authorization", "")
        if session is not None:
            user, nonce = session
        elif auth.startswith("Bearer "):
            bearer = True
            user = ANONYMOUS_OPERATOR if self.users.open else self.users.by_token(auth[7:].strip())
        elif auth.startswith("Basic ") and request.method == "GET":
            user = _basic(self.users, auth)
        elif self.users.open:
            user = ANONYMOUS_OPERATOR
            issue = self.sessions.issue(user, now)
            _, nonce = self.sessions.read(issue, now) or (user, None)
        public = request.path == "/login" or request.path.startswith(("/healthz", "/static/"))
        if user is None and not public:
            if request.method == "GET" and not request.path.startswith("/api/"):
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            raise web.HTTPUnauthorized(text="log in, or send Authorization: Bearer <token>")
        if request.method == "POST" and request.path not in ("/login",):
            await self._check_post(request, user, nonce, bearer)
        request["user"], request["csrf"] = user, self.sessions.csrf_token(nonce) if nonce else ""
        response = await handler(request)
        if issue is not None:
            _set_cookie(response, issue)
        return response

    async def _check_post(self, request: web.Request, user: User | None, nonce: str | None, bearer: bool) -> None:
        origin = request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="cross-origin request refused")
        if request.path == "/logout":
            return
        if user is None or not user.can_act:
            raise web.HTTPForbidden(text="your role may read, not act")
        if bearer:
            return  # a browser never sends a bearer token by itself: no CSRF risk
        form = await request.post()
        if nonce is None or not self.sessions.csrf_ok(nonce, str(form.get("csrf") or "")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page and try again")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "login.html", next=request.query.get("next", "/"), error=None)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user = self.users.check(str(form.get("name") or ""), str(form.get("password") or ""))
        nxt = str(form.get("next") or "/")
        if user is None:
            log.info("console login refused")
            return self.render(request, "login.html", status=401, next=nxt, error="Wrong name or password.")
        local = nxt.startswith("/") and not nxt.startswith(("//", "/\\")) and "\\" not in nxt
        response = web.HTTPSeeOther(nxt if local else "/")  # never an open redirect
        _set_cookie(response, self.sessions.issue(user, time.time()))
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        ready = self.feed.ready.is_set()
        return web.json_response({"ready": ready, "alerts": len(self.inbox), "records": self.feed.records,
                                  "skipped": self.feed.skipped}, status=200 if ready else 503)

    # -- pages ---------------------------------------------------------------------------------------
    def render(self, request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
        html = self.templates.get_template(name).render(user=request.get("user"), csrf=request.get("csrf", ""),
                                                        refresh=self.cs.refresh_seconds, now=time.time(), **ctx)
        return web.Response(text=html, content_type="text/html", status=status,
                            headers={"Content-Security-Policy": "default-src 'self'; style-src 'self'",
                                     "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"})

    async def inbox_page(self, request: web.Request) -> web.StreamResponse:
        f = Filters.of(dict(request.query))
        return self.render(request, "inbox.html", f=f, rows=self.inbox.query(f, time.time()),
                           facets=self.inbox.facets(), counts=self.inbox.counts(time.time()),
                           query=request.query_string)

    async def inbox_rows(self, request: web.Request) -> web.StreamResponse:
        f = Filters.of(dict(request.query))
        return self.render(request, "_rows.html", rows=self.inbox.query(f, time.time()),
                           counts=self.inbox.counts(time.time()))

    async def alert_page(self, request: web.Request) -> web.StreamResponse:
        entry = self.inbox.get(request.match_info["alert_id"])
        if entry is None:
            return self.render(request, "error.html", status=404, message="No such alert (yet).")
        customer = await self.worker_json(f"/customers/{quote(entry.customer_id, safe='')}") \
            if entry.customer_id else None
        return self.render(request, "alert.html", e=entry, customer=customer, codes=self.cs.resolution_codes,
                           error=request.query.get("error"))

    async def customer_page(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["customer_id"]
        view = await self.worker_json(f"/customers/{quote(cid, safe='')}")
        alerts = [e for e in self.inbox.entries() if e.customer_id == cid]
        alerts.sort(key=lambda e: e.emitted, reverse=True)
        return self.render(request, "customer.html", cid=cid, view=view, alerts=alerts[:50])

    async def segments_page(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "segments.html", segments=self.trends.segments())

    async def segment_page(self, request: web.Request) -> web.StreamResponse:
        segment = request.match_info["segment"]
        windows = self.trends.windows_of(segment)
        window = request.query.get("window") or (windows[0] if windows else "1h")
        series = self.trends.series(segment, window)
        alerts = [e for e in self.inbox.entries() if segment in e.segments()][-20:][::-1]
        return self.render(request, "segment.html", segment=segment, windows=windows, window=window,
                           chart=svg_chart(series), series=series[-12:][::-1], alerts=alerts)

    async def worker_json(self, path: str) -> dict[str, Any] | None:
        """The worker's answer (routed to the owner by the worker), or ``None`` when it has none."""
        headers = {"Authorization": f"Bearer {self.cs.worker_token}"} if self.cs.worker_token else {}
        try:
            assert self.http is not None
            async with self.http.get(self.cs.worker_url + path, headers=headers) as resp:
                return await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    # -- actions -------------------------------------------------------------------------------------
    async def act(self, user: User, alert_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Apply and write one action; :class:`ActionRefused` or ``KeyError`` (no such alert)."""
        entry = self.inbox.get(alert_id)
        if entry is None:
            raise KeyError(alert_id)
        now = time.time()
        until = None
        if fields.get("snooze_minutes"):
            until = now + 60 * float(fields["snooze_minutes"])
        version = fields.get("version")
        action = Action(str(uuid.uuid4()), alert_id, str(fields.get("action") or ""), user.name, now,
                        owner=(fields.get("owner") or None), until=until,
                        resolution_code=(fields.get("resolution_code") or None), note=(fields.get("note") or None),
                        expected_version=int(version) if str(version or "").isdigit() else None)
        async with self.locks.setdefault(alert_id, asyncio.Lock()):
            case = apply(self.inbox.case(alert_id), action, self.cs.resolution_codes)
            key = subject_key(entry.alert)
            doc = record(case, key)
            await self.writer.write(alert_id, key, doc)
            self.inbox.add_case(case)
        log.info("alert action", extra={"code": action.kind, "version": case.version})
        return doc

    async def form_action(self, request: web.Request) -> web.StreamResponse:
        alert_id = request.match_info["alert_id"]
        fields = dict(await request.post())
        target = f"/alerts/{quote(alert_id, safe='')}"
        try:
            await self.act(request["user"], alert_id, fields)
        except KeyError:
            raise web.HTTPNotFound(text="no such alert")
        except (ActionRefused, ValueError) as exc:
            raise web.HTTPSeeOther(f"{target}?error={quote(str(exc), safe='')}")
        raise web.HTTPSeeOther(target)

    async def api_action(self, request: web.Request) -> web.StreamResponse:
        try:
            fields = await request.json()
            if not isinstance(fields, dict):
                raise ValueError("a JSON object")
            doc = await self.act(request["user"], request.match_info["alert_id"], fields)
        except KeyError:
            return web.json_response({"error": "no such alert"}, status=404)
        except ActionRefused as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except ValueError as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        return web.json_response(doc)

    async def api_alerts(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        rows = self.inbox.query(Filters.of(dict(request.query)), now)
        return web.json_response([{"alert": e.alert, "status": status_at(e.case, now), "owner": e.case.owner,
                                   "version": e.case.version} for e in rows])


def _set_cookie(response: web.StreamResponse, value: str) -> None:
    response.set_cookie(COOKIE, value, httponly=True, samesite="Strict", path="/")


def _basic(users: Users, header: str) -> User | None:
    import base64
    import binascii

    try:
        name, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return users.check(name, password)


def run(settings: Settings, cs: ConsoleSettings) -> None:
    """Serve until interrupted."""
    console = Console(settings, cs)
    log.info("console listening", extra={"configured": f"{cs.host}:{cs.port}"})
    web.run_app(console.app(), host=cs.host, port=cs.port, print=None, access_log=None)
