"""An alert's case: what operators did about it, folded from their actions (issue 19, scope 2).

Every operator action is an event on the compacted topic ``alerts.actions`` (schema
``schemas/alert_action.schema.json``), keyed by ``alert_id``.  Each record carries the action and the
case *after* it (status, owner, snooze, resolution, and the action history), so compaction keeps,
per alert, one record with the whole story, and any reader (the console, the router, the worker)
gets an alert's case from its latest record alone.

Statuses and transitions (anything else is refused with :class:`ActionRefused`)::

    open ──acknowledge──▶ acknowledged ──resolve──▶ resolved ──reopen──▶ open
     │                        │  ▲                      ▲
     └──────snooze────────────┴──┘ snooze (until T)     │
     └──────────────────resolve─────────────────────────┘

* ``acknowledge``: someone has seen it (``open`` → ``acknowledged``; also ends a snooze);
* ``assign``: sets the owner (any status but ``resolved``); assigning acknowledges an open alert;
* ``snooze``: hides it from the inbox until ``until`` (must be later than the action): the status
  is ``snoozed``, and :func:`status_at` reads it as ``acknowledged`` once ``until`` has passed;
  snoozing acknowledges;
* ``resolve``: needs a ``resolution_code`` from :data:`RESOLUTION_CODES` (or the operator's list)
  and may carry a note; from any status but ``resolved``;
* ``reopen``: ``resolved`` → ``open``; owner kept, resolution cleared;
* ``comment``: a note in the history, any status.

Acknowledgement time (``acknowledged_at``) is the first acknowledgement, kept across a reopen: the
SLA is about the first human response.  The history keeps the latest :data:`HISTORY_LIMIT` actions.
Versions count actions: an action may name the version it was made against (``expected_version``),
and a stale one (someone else acted meanwhile) is refused, so two operators do not silently
overwrite each other.  Pure: no clock, no I/O (times are passed in as epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..core.timeparse import format_timestamp, parse_timestamp

ACTIONS = ("acknowledge", "assign", "snooze", "resolve", "reopen", "comment")
STATUSES = ("open", "acknowledged", "snoozed", "resolved")
RESOLUTION_CODES = ("contacted_customer", "compensated", "fixed_root_cause", "process_changed",
                    "false_positive", "duplicate", "no_action_needed")
HISTORY_LIMIT = 50
NOTE_MAX = 2000
NAME_MAX = 128


class ActionRefused(ValueError):
    """An action that does not apply to the case as it is (the message says why, for the operator)."""


@dataclass(frozen=True)
class Action:
    """One operator action on one alert."""

    action_id: str
    alert_id: str
    kind: str  # one of ACTIONS
    actor: str
    at: float  # epoch seconds
    owner: str | None = None  # assign
    until: float | None = None  # snooze
    resolution_code: str | None = None  # resolve
    note: str | None = None
    expected_version: int | None = None


@dataclass(frozen=True)
class Case:
    """An alert's case after the actions so far (a new alert: :func:`new_case`)."""

    alert_id: str
    status: str = "open"
    owner: str | None = None
    snoozed_until: float | None = None
    resolution_code: str | None = None
    note: str | None = None
    acknowledged_at: float | None = None
    responder: str | None = None
    resolved_at: float | None = None
    version: int = 0
    history: tuple[Action, ...] = field(default_factory=tuple)


def new_case(alert_id: str) -> Case:
    return Case(alert_id)


def status_at(case: Case, now: float) -> str:
    """The status as the inbox shows it at ``now``: a snooze that ran out reads ``acknowledged``."""
    if case.status == "snoozed" and case.snoozed_until is not None and now >= case.snoozed_until:
        return "acknowledged"
    return case.status


def apply(case: Case, action: Action, codes: tuple[str, ...] = RESOLUTION_CODES) -> Case:
    """The case after ``action``; :class:`ActionRefused` when it does not apply."""
    _check(case, action, codes)
    kind, status = action.kind, case.status
    if kind == "acknowledge":
        case = _acknowledged(replace(case, status="acknowledged", snoozed_until=None), action)
    elif kind == "assign":
        case = replace(case, owner=action.owner)
        if status == "open":
            case = _acknowledged(replace(case, status="acknowledged"), action)
    elif kind == "snooze":
        case = _acknowledged(replace(case, status="snoozed", snoozed_until=action.until), action)
    elif kind == "resolve":
        case = _acknowledged(replace(case, status="resolved", snoozed_until=None, resolution_code=action.resolution_code,
                                     note=action.note, resolved_at=action.at), action)
    elif kind == "reopen":
        case = replace(case, status="open", resolution_code=None, note=None, resolved_at=None)
    history = (*case.history, action)[-HISTORY_LIMIT:]
    return replace(case, version=case.version + 1, history=history)


def _acknowledged(case: Case, action: Action) -> Case:
    if case.acknowledged_at is not None:
        return case
    return replace(case, acknowledged_at=action.at, responder=action.actor)


def _check(case: Case, action: Action, codes: tuple[str, ...]) -> None:
    if action.alert_id != case.alert_id:
        raise ActionRefused("the action is for another alert")
    if action.kind not in ACTIONS:
        raise ActionRefused(f"unknown action {action.kind!r}; one of {', '.join(ACTIONS)}")
    if not action.actor or len(action.actor) > NAME_MAX:
        raise ActionRefused("an action needs an actor (at most 128 characters)")
    if action.note is not None and len(action.note) > NOTE_MAX:
        raise ActionRefused(f"the note is longer than {NOTE_MAX} characters")
    if action.expected_version is not None and action.expected_version != case.version:
        raise ActionRefused("someone else changed this alert meanwhile: reload it and try again")
    kind, status = action.kind, case.status
    if kind in ("acknowledge", "assign", "snooze", "resolve") and status == "resolved":
        raise ActionRefused(f"the alert is resolved: reopen it before you {kind} it")
    if kind == "acknowledge" and status == "acknowledged":
        raise ActionRefused("the alert is already acknowledged")
    if kind == "reopen" and status != "resolved":
        raise ActionRefused("only a resolved alert can be reopened")
    if kind == "assign" and (not action.owner or len(action.owner) > NAME_MAX):
        raise ActionRefused("assign needs an owner (at most 128 characters)")
    if kind == "snooze" and (action.until is None or action.until <= action.at):
        raise ActionRefused("snooze needs a time in the future")
    if kind == "resolve" and action.resolution_code not in codes:
        raise ActionRefused(f"resolve needs a resolution code: one of {', '.join(codes)}")
    if kind == "comment" and not action.note:
        raise ActionRefused("a comment needs a note")


# -- the record on alerts.actions ------------------------------------------------------------------
def _iso(t: float | None) -> str | None:
    return None if t is None else format_timestamp(t)


def _epoch(s: Any) -> float | None:
    return None if s is None else parse_timestamp(str(s))


def action_doc(a: Action) -> dict[str, Any]:
    doc: dict[str, Any] = {"action_id": a.action_id, "action": a.kind, "actor": a.actor, "at": _iso(a.at)}
    for name, value in (("owner", a.owner), ("until", _iso(a.until)), ("resolution_code", a.resolution_code),
                        ("note", a.note)):
        if value is not None:
            doc[name] = value
    return doc


def action_of(alert_id: str, doc: dict[str, Any]) -> Action:
    return Action(doc["action_id"], alert_id, doc["action"], doc["actor"], _epoch(doc["at"]) or 0.0,
                  owner=doc.get("owner"), until=_epoch(doc.get("until")),
                  resolution_code=doc.get("resolution_code"), note=doc.get("note"))


def record(case: Case, subject_key: str | None = None) -> dict[str, Any]:
    """The ``alerts.actions`` value for ``case`` after its latest action (schema version 1)."""
    last = case.history[-1]
    fields = {"status": case.status, "owner": case.owner, "snoozed_until": _iso(case.snoozed_until),
              "resolution_code": case.resolution_code, "note": case.note,
              "acknowledged_at": _iso(case.acknowledged_at), "responder": case.responder,
              "resolved_at": _iso(case.resolved_at), "version": case.version}
    doc: dict[str, Any] = {
        "schema_version": 1, "alert_id": case.alert_id, "action": action_doc(last),
        "case": {k: v for k, v in fields.items() if v is not None},  # absent = unset
        "history": [action_doc(a) for a in case.history],
    }
    if subject_key is not None:
        doc["subject_key"] = subject_key
    return doc


def case_of(doc: dict[str, Any]) -> Case:
    """The case an ``alerts.actions`` value carries (its latest state)."""
    c, alert_id = doc["case"], doc["alert_id"]
    return Case(alert_id, status=c["status"], owner=c.get("owner"), snoozed_until=_epoch(c.get("snoozed_until")),
                resolution_code=c.get("resolution_code"), note=c.get("note"),
                acknowledged_at=_epoch(c.get("acknowledged_at")), responder=c.get("responder"),
                resolved_at=_epoch(c.get("resolved_at")), version=int(c.get("version", 0)),
                history=tuple(action_of(alert_id, a) for a in doc.get("history") or ()))
