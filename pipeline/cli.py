"""Command line: ``python -m pipeline <command>`` (``--help`` lists them all)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .config import PROJECT_ROOT, load_settings


def cmd_worker(args: argparse.Namespace) -> int:
    from .runtime import resolve_settings, run_worker

    run_worker(resolve_settings())
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from .kafka_local import LocalKafka, fetch_kafka
    from .runtime import RUN_DIR, local_bootstrap

    s = load_settings()
    if args.action == "fetch":
        print(fetch_kafka(s.kafka_version, s.cache_dir))
        return 0
    if args.action == "status":
        b = local_bootstrap()
        print(f"running at {b}" if b else "not running")
        return 0 if b else 1
    if args.action == "stop":
        try:
            pid = int((RUN_DIR / "broker.pid").read_text())
        except (OSError, ValueError):
            print("not running")
            return 0
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        (RUN_DIR / "broker.pid").unlink(missing_ok=True)
        print("stopped")
        return 0
    if local_bootstrap():
        print(f"already running at {local_bootstrap()}")
        return 0
    k = LocalKafka(s.kafka_version, s.cache_dir, workdir=RUN_DIR, die_with_parent=False, port=args.port)
    k.start()
    print(f"Kafka {s.kafka_version} running at {k.bootstrap} (started in {k.start_seconds:.1f}s)")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={k.bootstrap}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from .runtime import resolve_settings
    from .topics import ensure_topics

    created = ensure_topics(resolve_settings())
    print("created: " + (", ".join(created) or "none (all exist)"))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .producers.publish import publish
    from .producers.simulator import iter_simulated_events
    from .runtime import resolve_settings
    from .topics import ensure_topics

    s = resolve_settings()
    ensure_topics(s)
    n = args.count if args.count else (int(args.rate * args.duration) if args.duration else None)
    counts = publish(
        iter_simulated_events(n, seed=args.seed, data_dir=s.data_dir, customers=args.customers),
        s, rate=args.rate, total=n, progress=not args.quiet, desc="simulate",
    )
    print(counts)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .producers.olist import iter_olist_events
    from .producers.publish import publish
    from .runtime import resolve_settings
    from .topics import ensure_topics

    s = resolve_settings()
    ensure_topics(s)
    counts = publish(iter_olist_events(s.data_dir / "olist_subset_5k"), s, progress=not args.quiet, desc="olist")
    print(counts)
    if not args.no_advance:
        from .control import advance_clock
        from .producers.olist import last_due

        advance_clock(s, last_due(s.data_dir / "olist_subset_5k") + 7 * 86400)
        print("event-time clock advanced past the last promised delivery date (+7 days)")
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    from .control import advance_clock
    from .core.timeparse import parse_timestamp
    from .runtime import resolve_settings

    s = resolve_settings()
    to = parse_timestamp(args.to) if args.to else time.time()
    n = advance_clock(s, to)
    print(f"clock advanced to {args.to or 'now'} on {n} partitions")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .commitments.model import CommitmentConfig
    from .runtime import resolve_settings, wait_for_group
    from .verify_olist import verify

    s = resolve_settings()
    t = s.topics
    wait_for_group(s, s.app_id, [*t.inputs, t.rekeyed, t.ticks, s.partials_topic], timeout=args.timeout)
    ok, report = verify(s, CommitmentConfig.from_env(os.environ).warn_delivery_seconds)
    print(report)
    print("OK: alert sets equal the CSV truth" if ok else "MISMATCH")
    from .verify_olist import churn_table

    print("\nchurn_risk alerts vs everyone else (late deliveries and review scores from the CSV):")
    print(churn_table(s)[0])
    return 0 if ok else 1


class QueryError(Exception):
    """A worker query that did not give an answer: one line for the operator."""


def query_worker(base: str, path: str, token: str | None) -> dict:
    """GET ``path`` from a worker's web server as JSON; :class:`QueryError` with one line otherwise."""
    import urllib.error
    import urllib.request

    import orjson

    url = f"{base.rstrip('/')}{path}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise QueryError(f"{base} refused the request (401): set PIPELINE_WEB_TOKEN or --token") from None
        try:
            detail = orjson.loads(exc.read()).get("error")
        except Exception:  # not our JSON
            detail = None
        raise QueryError(f"{base} answered {exc.code}{': ' + detail if detail else ''}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryError(f"no worker answered at {base} ({reason}); is a worker running "
                         f"(python -m pipeline worker) and is --url / PIPELINE_WEB_PORT right?") from None


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render_top(doc: dict, dimension: str, value: str, window: str) -> str:
    out = []
    for label in ("current", "last_closed"):
        rows = doc.get(label) or []
        w = doc.get(f"{label}_window") or {}
        span = f"{w.get('window_start', '?')} .. {w.get('window_end', '?')}" if w else "(none)"
        out.append(f"{dimension}={value}  {label.replace('_', ' ')} {window} window: {span}")
        if w:
            out.append(f"events {w.get('events', 0)}, orders {w.get('orders', 0)}, feedback {w.get('feedback', 0)}, "
                       f"complaints {w.get('complaints', 0)}")
        table = [[str(r.get("pain_point")), str(r.get("count", 0)),
                  "-" if r.get("rate_per_100_orders") is None else f"{r['rate_per_100_orders']:.1f}",
                  "-" if r.get("share_of_feedback") is None else f"{r['share_of_feedback']:.1%}"] for r in rows]
        out.append(_table(["pain point", "count", "per 100 orders", "share of feedback"], table) if table
                   else "(no pain points)")
        out.append("")
    return "\n".join(out).rstrip()


def render_customer(doc: dict) -> str:
    seg, churn = doc.get("segment") or {}, doc.get("churn") or {}
    out = [f"customer {doc.get('customer_id')}  (as of {doc.get('clock')})",
           f"segment: tier {seg.get('value_tier')} ({seg.get('tier_source')}), lifecycle {seg.get('lifecycle')}, "
           f"region {seg.get('region')}, channel {seg.get('channel')}, orders {seg.get('orders_count')}, "
           f"spend {seg.get('spend')}",
           f"churn risk: {churn.get('score')}", ""]
    factors = [[f["name"], f"{f['contribution']:.1f}", f"{f['value']:g}", ", ".join(f.get("evidence") or [])[:60]]
               for f in churn.get("factors") or []]
    out += [_table(["factor", "points", "value", "evidence"], factors) if factors else "(no risk factors)", ""]
    cms = [[c["commitment_id"], str(c.get("kind")), str(c.get("status")), str(c.get("due_at"))]
           for c in doc.get("commitments") or []]
    out += [_table(["open commitment", "kind", "status", "due"], cms) if cms else "(no open commitments)", ""]
    alerts = [[a["alert_id"], a["type"], a["severity"], str(a.get("event_time"))] for a in doc.get("alerts") or []]
    out += [_table(["alert", "type", "severity", "event time"], alerts) if alerts else "(no alerts)"]
    return "\n".join(out)


def render_root_causes(doc: dict) -> str:
    out = [f"root causes of {doc.get('pain_point')} by {doc.get('dimension')} ({doc.get('window')} windows, "
           f"{doc.get('workers')} worker(s))"]
    for label in ("current", "last_closed"):
        rows = [[str(r["value"]), str(r.get("count", 0)),
                 "-" if r.get("rate_per_100_orders") is None else f"{r['rate_per_100_orders']:.1f}",
                 "-" if r.get("share_of_feedback") is None else f"{r['share_of_feedback']:.1%}",
                 str(r.get("window_start"))] for r in doc.get(label) or []]
        out += ["", f"{label.replace('_', ' ')} window",
                _table([str(doc.get("dimension")), "count", "per 100 orders", "share of feedback", "window start"],
                       rows) if rows else "(none)"]
    return "\n".join(out)


def _emit(doc: dict, as_json: bool, render: Callable[[dict], str]) -> None:
    import orjson

    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if as_json else render(doc))


def cmd_top(args: argparse.Namespace) -> int:
    import urllib.parse

    key = urllib.parse.quote(f"{args.dimension}={args.value}", safe="=")
    try:
        doc = query_worker(args.url, f"/segments/{key}/top?window={urllib.parse.quote(args.window)}", args.token)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _emit(doc, args.json, lambda d: render_top(d, args.dimension, args.value, args.window))
    return 0


def cmd_root_causes(args: argparse.Namespace) -> int:
    import urllib.parse

    query = urllib.parse.urlencode({"dimension": args.dimension, "window": args.window, "limit": args.limit})
    try:
        doc = query_worker(args.url, f"/root-causes/{urllib.parse.quote(args.pain_point, safe='')}?{query}",
                           args.token)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _emit(doc, args.json, render_root_causes)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from .console.auth import ConsoleConfigError
    from .console.server import run
    from .console.settings import ConsoleSettings
    from .logs import setup
    from .runtime import resolve_settings
    from .topics import ensure_topics

    s = resolve_settings()
    setup(s.log_level, s.log_format)
    cs = ConsoleSettings.from_env()
    if args.port:
        cs = dataclasses.replace(cs, port=args.port)
    if args.host:
        cs = dataclasses.replace(cs, host=args.host)
    ensure_topics(s)  # alerts.actions is new: an existing deployment gets it here
    try:
        run(s, cs)
    except ConsoleConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_self_train(args: argparse.Namespace) -> int:
    import asyncio

    from .logs import setup
    from .runtime import resolve_settings
    from .selftrain.settings import self_train_settings
    from .selftrain.trainer import Trainer

    s = resolve_settings()
    if args.status:
        from .selftrain.status import render, status_rows
        from .summary import read_topic

        print(render(status_rows(read_topic(s, s.sentiment_models_topic, timeout=30))))
        return 0
    setup(s.log_level, s.log_format)
    try:
        trainer = Trainer(s, self_train_settings())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(trainer.run())
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    import asyncio

    from .cases.routes import RoutesError, parse_routes
    from .console.router import Router
    from .logs import setup
    from .runtime import resolve_settings
    from .topics import ensure_topics
    from .yamlfile import read_mapping

    s = resolve_settings()
    setup(s.log_level, s.log_format)
    path = args.rules or os.environ.get("PIPELINE_ROUTES_FILE")
    if not path:
        print("error: give the routes file: --rules FILE or PIPELINE_ROUTES_FILE", file=sys.stderr)
        return 2
    try:
        routes = parse_routes(read_mapping(path, "routes file", RoutesError), path)
    except RoutesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ensure_topics(s)
    asyncio.run(Router(s, routes).run())
    return 0


def cmd_deadletters(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from . import deadletters as dl
    from .runtime import resolve_settings

    s = resolve_settings()
    letters = dl.read_dead_letters(s)
    resent, sending = dl.read_resent(s)
    if sending:  # a run killed between its markers: which of its re-sends landed
        found = dl.landed(s, sending)
        dl.mark_done(s, {k: sending[k] for k in found})
        resent |= found
    chosen = dl.select(letters, ids=args.id or (), reason=args.reason, source=args.source,
                       everything=args.all or args.action == "list")
    if args.action == "list":
        if args.json:
            for d in chosen:
                print(orjson_line({"dead_letter_id": d.dead_letter_id, "source_topic": d.source_topic,
                                   "reasons": list(d.reasons), "received_at": d.received_at,
                                   "resent": d.dead_letter_id in resent}))
            return 0
        print(dl.reasons_table(chosen, resent))
        print()
        print(dl.rows_table(chosen, resent, args.show_original))
        return 0
    if not (args.id or args.reason or args.source or args.all):
        print("error: choose what to re-send: --id ID (repeatable), --reason CODE, --source TOPIC or --all",
              file=sys.stderr)
        return 2
    try:
        edits = dl.load_edits(Path(args.edit)) if args.edit else {}
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    todo = [d for d in chosen if d.dead_letter_id not in resent]
    skipped = len(chosen) - len(todo)
    if args.dry_run:
        print(f"would re-send {len(todo)} dead letter(s) ({sum(d.dead_letter_id in edits for d in todo)} edited); "
              f"{skipped} already re-sent")
        return 0
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    sent = dl.resend(s, todo, edits, now) if todo else 0
    print(f"re-sent {sent} dead letter(s) ({sum(d.dead_letter_id in edits for d in todo)} edited); "
          f"{skipped} already re-sent, skipped")
    return 0


def orjson_line(doc: dict) -> str:
    import orjson

    return orjson.dumps(doc).decode()


def cmd_import(args: argparse.Namespace) -> int:
    import csv as csv_module
    import time as time_module

    import orjson

    from .outputs.deadletter import dead_letter
    from .producers.importer import MappingError, import_rows, load_mapping
    from .producers.publish import publish, publish_raw, topic_for
    from .runtime import resolve_settings
    from .topics import ensure_topics

    s = resolve_settings(required=not args.dry_run)
    try:
        mapping = load_mapping(Path(args.mapping), Path(args.base) if args.base else None)
        got = import_rows(mapping, s.time_limits, time_module.time())
    except (MappingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    by_reason: dict[str, int] = {}
    for r in got.rejects:
        by_reason[r.problems[0].code] = by_reason.get(r.problems[0].code, 0) + 1
    print(f"{got.rows} rows: {len(got.events)} events, {len(got.rejects)} rejected {by_reason or ''}".rstrip())
    for r in got.rejects[:5]:
        print(f"  {r.file}:{r.line} ({r.kind}): " + "; ".join(f"{p.code} {p.path} {p.message}"[:160]
                                                         for p in r.problems), file=sys.stderr)
    if args.errors:
        with open(args.errors, "w", newline="", encoding="utf-8") as f:
            w = csv_module.writer(f)
            w.writerow(["file", "line", "kind", "codes", "messages"])
            for r in got.rejects:
                w.writerow([r.file, r.line, r.kind, " ".join(p.code for p in r.problems),
                            " | ".join(f"{p.path} {p.message}" for p in r.problems)])
        print(f"rejected rows: {args.errors}")
    if args.dry_run:
        return 0 if not got.rejects else 1
    ensure_topics(s)
    counts = publish(iter(got.events), s, total=len(got.events), progress=not args.quiet, desc="import")
    letters = [dead_letter(topic=topic_for(r.kind, s), partition=-1, offset=r.line, key=None, timestamp_ms=None,
                           raw=orjson.dumps(r.row), problems=r.problems, expected_kind=r.kind,
                           now=time_module.time()) for r in got.rejects]
    publish_raw(s.topics.deadletter, ((d["dead_letter_id"].encode(), orjson.dumps(d)) for d in letters), s)
    print(f"published {counts}; {len(letters)} dead letter(s) on {s.topics.deadletter}")
    return 0


def cmd_customer(args: argparse.Namespace) -> int:
    import urllib.parse

    try:
        path = f"/customers/{urllib.parse.quote(args.customer_id, safe='')}"
        if args.commitment:
            path += f"/commitments/{urllib.parse.quote(args.commitment, safe='')}"
        doc = query_worker(args.url, path, args.token)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _emit(doc, args.json or bool(args.commitment), render_customer)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .runtime import resolve_settings
    from .summary import summarise

    print(summarise(resolve_settings()).render())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(simulated=args.simulated, quiet=args.quiet)


def cmd_classify(args: argparse.Namespace) -> int:
    from .classify_cli import run_classify

    return run_classify(sys.stdin, sys.stdout, args.taxonomy, model_path=args.sentiment_model)


def cmd_train_sentiment(args: argparse.Namespace) -> int:
    from .sentiment_training import run

    return run(args)


def cmd_classify_bench(args: argparse.Namespace) -> int:
    from .classify_cli import run_classify_bench

    return run_classify_bench(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .classify_cli import run_eval

    return run_eval(args)


def _query_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PIPELINE_WEB_PORT', '6066')}",
                   help="any worker's web server (the query is routed to the owner)")
    p.add_argument("--token", default=os.environ.get("PIPELINE_WEB_TOKEN"),
                   help="bearer token (default: $PIPELINE_WEB_TOKEN)")
    p.add_argument("--json", action="store_true", help="the JSON answer instead of tables")


def _query_parsers(sub: Any) -> None:
    """The commands that ask a worker's web server: top, root-causes, customer."""
    top = sub.add_parser("top", help="top pain points of a segment (asks a worker's web server)")
    top.add_argument("--dimension", required=True, help="tier, lifecycle, region, channel, relationship, "
                     "category, seller, carrier, all")
    top.add_argument("--value", required=True)
    top.add_argument("--window", default="1h")
    _query_options(top)
    top.set_defaults(func=cmd_top)
    rc = sub.add_parser("root-causes", help="which sellers / categories / carriers / regions count a pain point "
                        "most in a window (asks every worker)")
    rc.add_argument("pain_point")
    rc.add_argument("--dimension", default="seller", help="seller, category, carrier, region, channel, tier, "
                    "lifecycle, relationship")
    rc.add_argument("--window", default="1d")
    rc.add_argument("--limit", type=int, default=10)
    _query_options(rc)
    rc.set_defaults(func=cmd_root_causes)
    cust = sub.add_parser("customer", help="one customer: segment, churn risk and its factors, open commitments, "
                          "last alerts (asks a worker's web server)")
    cust.add_argument("customer_id")
    cust.add_argument("--commitment", metavar="ID", help="one commitment of the customer, every field (JSON)")
    _query_options(cust)
    cust.set_defaults(func=cmd_customer)



def _history_parsers(sub: Any) -> None:
    """Loading your own history and fixing what was rejected: import, deadletters."""
    imp = sub.add_parser("import", help="load your own history (CSV / JSON Lines) through a mapping file, in "
                         "event-time order; rejected rows become dead letters")
    imp.add_argument("mapping", help="mapping YAML (pipeline/producers/importer.py; docs/operations.md)")
    imp.add_argument("--base", metavar="DIR", help="read the mapping's files from here (default: its folder)")
    imp.add_argument("--errors", metavar="FILE", help="write every rejected row (file, line, reasons) as CSV")
    imp.add_argument("--dry-run", action="store_true", help="check and count, publish nothing (exit 1 on rejects)")
    imp.add_argument("--quiet", action="store_true")
    imp.set_defaults(func=cmd_import)
    dlp = sub.add_parser("deadletters", help="list dead letters by reason; re-send selected ones (as they were, "
                         "or edited) to their source topic, each once")
    dlp.add_argument("action", choices=["list", "resend"])
    dlp.add_argument("--id", action="append", help="a dead_letter_id (repeatable)")
    dlp.add_argument("--reason", help="an error code, e.g. missing_field")
    dlp.add_argument("--source", help="the source topic")
    dlp.add_argument("--all", action="store_true", help="resend: every dead letter not re-sent yet")
    dlp.add_argument("--edit", metavar="FILE", help="JSON Lines {dead_letter_id, value}: re-send these fixed values")
    dlp.add_argument("--dry-run", action="store_true")
    dlp.add_argument("--show-original", action="store_true", help="list: print the original bytes (may hold "
                     "personal data)")
    dlp.add_argument("--json", action="store_true", help="list: one JSON line per dead letter")
    dlp.set_defaults(func=cmd_deadletters)
    con = sub.add_parser("console", help="the operations console: alert inbox, alert / customer / segment pages, "
                         "acknowledge / assign / snooze / resolve (env PIPELINE_CONSOLE_*)")
    con.add_argument("--host", default="", help="bind address (default PIPELINE_CONSOLE_HOST, 127.0.0.1)")
    con.add_argument("--port", type=int, default=0, help="port (default PIPELINE_CONSOLE_PORT, 6070)")
    con.set_defaults(func=cmd_console)
    rte = sub.add_parser("route", help="send alerts matching rules to webhooks (Slack-compatible) and e-mail, each "
                         "notification once; undeliverable ones to alerts.notifications-deadletter")
    rte.add_argument("--rules", metavar="FILE", help="routes YAML (default PIPELINE_ROUTES_FILE; docs/operations.md)")
    rte.set_defaults(func=cmd_route)
    slf = sub.add_parser("self-train", help="learn sentiment from scored feedback on events.enriched and publish "
                         "per-language models that every worker applies (env PIPELINE_SELF_TRAIN_*; "
                         "docs/classification.md)")
    slf.add_argument("--status", action="store_true", help="print the models published now (version, samples, "
                     "the gate's figures) and exit")
    slf.set_defaults(func=cmd_self_train)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Customer-feedback pipeline on Kafka + Faust. Configuration: environment variables (docs/configuration.md).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    sub.add_parser("worker", help="run a Faust worker (env: KAFKA_BOOTSTRAP_SERVERS, PIPELINE_*)").set_defaults(
        func=cmd_worker
    )
    k = sub.add_parser("kafka", help="fetch / start / stop / status of the project's local Apache Kafka")
    k.add_argument("action", choices=["fetch", "start", "stop", "status"])
    k.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
    k.set_defaults(func=cmd_kafka)
    sub.add_parser("topics", help="create the pipeline's topics (idempotent)").set_defaults(func=cmd_topics)

    sim = sub.add_parser("simulate", help="produce realistic simulated events (texts from ../shared/data)")
    sim.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    sim.add_argument("--duration", type=float, default=None, help="seconds (with --rate)")
    sim.add_argument("--count", type=int, default=None, help="number of events")
    sim.add_argument("--customers", type=int, default=500)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--quiet", action="store_true")
    sim.set_defaults(func=cmd_simulate)

    rep = sub.add_parser("replay", help="replay a real dataset through Kafka in event-time order")
    rep.add_argument("dataset", choices=["olist"])
    rep.add_argument("--quiet", action="store_true")
    rep.add_argument("--no-advance", action="store_true", help="don't advance the clock past the last due date")
    rep.set_defaults(func=cmd_replay)

    sub.add_parser("summary", help="summarise the output topics").set_defaults(func=cmd_summary)

    clk = sub.add_parser("clock", help="advance the event-time clock (end of a replay)")
    clk.add_argument("action", choices=["advance"])
    clk.add_argument("--to", default=None, help="RFC 3339 time (default: now)")
    clk.set_defaults(func=cmd_clock)

    ver = sub.add_parser("verify", help="compare an Olist replay's commitment alerts with the CSV truth")
    ver.add_argument("dataset", choices=["olist"])
    ver.add_argument("--timeout", type=float, default=600.0)
    ver.set_defaults(func=cmd_verify)

    _query_parsers(sub)
    _history_parsers(sub)
    c = sub.add_parser("classify", help="classify JSON Lines {id, text, language?} from stdin, one JSON line out per line in")
    c.add_argument("--taxonomy", metavar="FILE", default=None, help="taxonomy YAML (default: $PIPELINE_TAXONOMY_FILE, else bundled)")
    c.add_argument("--sentiment-model", metavar="FILE", default=None,
                   help="sentiment model from train-sentiment (default: $PIPELINE_SENTIMENT_MODEL, else none)")
    c.set_defaults(func=cmd_classify)
    ts = sub.add_parser("train-sentiment", help="fit a sentiment model to your own labelled / star-rated texts "
                        "(JSON Lines {text, label|stars}); prints its cross-validated balanced accuracy")
    from .sentiment_training import add_arguments as add_training_arguments
    add_training_arguments(ts)
    ts.set_defaults(func=cmd_train_sentiment)
    cb = sub.add_parser("classify-bench", help="classifier texts/s per language on real texts (../shared/data)")
    from .classify_cli import add_classify_bench_arguments, add_eval_arguments
    add_classify_bench_arguments(cb)
    cb.set_defaults(func=cmd_classify_bench)
    ev = sub.add_parser("evaluate", help="classifier P/R/F1 and sentiment accuracy on ../shared/data, Markdown summary")
    add_eval_arguments(ev)
    ev.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("demo", help="local Kafka + worker + Olist replay + simulated events, then a summary")
    d.add_argument("--simulated", type=int, default=2000, help="simulated events after the Olist replay")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def unreachable_errors(kafka_errors) -> tuple[type[BaseException], ...]:  # noqa: ANN001
    """kafka-python's "no broker answered" errors (names differ between its 2.x and 3.x)."""
    names = ("KafkaTimeoutError", "NoBrokersAvailable", "KafkaConnectionError")
    return tuple(getattr(kafka_errors, n) for n in names if hasattr(kafka_errors, n))


def main(argv: list[str] | None = None) -> int:
    from kafka import errors as kafka_errors

    from .classify.learned import SentimentModelError
    from .classify.taxonomy import TaxonomyError
    from .config import ConfigError
    from .kafka_security import KafkaAuthError, KafkaSecurityError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, KafkaAuthError, KafkaSecurityError, SentimentModelError, TaxonomyError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # credentials or a configuration file: one clear line, no secrets
        return 2
    except unreachable_errors(kafka_errors) as exc:  # no broker answered: one line, not a traceback
        print(f"error: cannot reach Kafka ({exc}); check KAFKA_BOOTSTRAP_SERVERS, or start the local broker "
              "with `python -m pipeline kafka start`", file=sys.stderr)
        return 2
