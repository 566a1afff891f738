"""Static checks on the package source: no unsafe deserialisation or code execution, no personal data in logs.

* no ``pickle`` / ``marshal`` / ``shelve`` / ``dill``, no ``eval`` / ``exec`` / ``compile``,
  no ``yaml.load`` / ``yaml.full_load`` / ``yaml.unsafe_load`` (only ``yaml.safe_load``),
  no ``shell=True``;
* log calls (``log.*`` / ``logger.*``) never pass texts, keys, values or ids: their
  ``extra`` keys and format arguments come from an allow-list of coordinates and counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
SOURCES = sorted(PACKAGE.rglob("*.py"))

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_YAML = {"load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all"}
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
LOGGER_NAMES = {"log", "logger", "_log", "LOG"}
# What a log record may carry: coordinates, counts, codes, configuration — never content.
ALLOWED_EXTRA = {"topic", "partition", "offset", "error", "windows", "actual", "configured", "code", "codes",
                 "count", "stage", "reason", "seconds", "version",
                 "trace",  # code locations an exception passed (file.py:line), never values
                 # self-trained sentiment (issue 20): a language code and the quality gate's figures
                 "language", "samples", "accepted", "model_balanced_accuracy", "lexicon_balanced_accuracy",
                 "category", "model_f1", "rules_f1"}
PERSONAL = ("text", "customer", "email", "phone", "password", "secret", "value", "payload", "raw", "event", "key")


def _trees():
    for path in SOURCES:
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_sources_found():
    assert len(SOURCES) > 30


def _unsafe(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        return f"import {bad[0]}" if bad else None
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
        return f"from {node.module} import ..."
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name) and f.id in FORBIDDEN_BUILTINS:
            return f"{f.id}(...)"
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "yaml" \
                and f.attr in FORBIDDEN_YAML:
            return f"yaml.{f.attr}(...) (use yaml.safe_load)"
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                return "subprocess with shell=..."
    return None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_unsafe_deserialisation_or_code_execution(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = [f"{path.name}:{n.lineno}: {_unsafe(n)}" for n in ast.walk(tree) if _unsafe(n)]
    assert not problems, problems


def test_the_checker_catches_what_it_forbids():
    for code in ("import pickle", "from pickle import loads", "eval(x)", "exec(x)", "yaml.load(fh)",
                 "yaml.unsafe_load(fh)", "subprocess.run(cmd, shell=True)"):
        assert any(_unsafe(n) for n in ast.walk(ast.parse(code))), code
    for code in ("yaml.safe_load(fh)", "orjson.loads(raw)", "subprocess.run(cmd)", "model.eval()"):
        assert not any(_unsafe(n) for n in ast.walk(ast.parse(code))), code


def test_yaml_is_only_read_with_safe_load():
    uses = [(p.name, n.func.attr) for p, tree in _trees() for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "yaml" and "load" in n.func.attr]
    assert uses and {attr for _, attr in uses} == {"safe_load"}, uses


def _names(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def test_log_calls_carry_no_personal_data():
    calls = 0
    problems = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOG_METHODS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in LOGGER_NAMES):
                continue
            calls += 1
            where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
            if node.args and not isinstance(node.args[0], ast.Constant):
                problems.append(f"{where}: the message must be a constant (no f-strings with data)")
            for arg in node.args[1:]:
                bad = [n for n in _names(arg) if any(w in n.lower() for w in PERSONAL)]
                if bad:
                    problems.append(f"{where}: format argument {bad}")
            for kw in node.keywords:
                if kw.arg != "extra":
                    continue
                if not isinstance(kw.value, ast.Dict):
                    problems.append(f"{where}: extra must be a dict literal")
                    continue
                keys = {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
                if keys - ALLOWED_EXTRA:
                    problems.append(f"{where}: extra keys {sorted(keys - ALLOWED_EXTRA)}")
                for v in kw.value.values:
                    bad = [n for n in _names(v) if any(w in n.lower() for w in PERSONAL)]
                    if bad:
                        problems.append(f"{where}: extra value uses {bad}")
    assert calls >= 4
    assert not problems, problems


def test_json_log_formatter_writes_only_what_it_is_given():
    import logging

    import orjson

    from pipeline.logs import JsonFormatter

    rec = logging.LogRecord("pipeline.agent", logging.ERROR, __file__, 1, "processing failed", (), None)
    rec.topic, rec.partition, rec.offset = "events.feedback", 3, 42
    doc = orjson.loads(JsonFormatter().format(rec))
    assert set(doc) == {"ts", "level", "logger", "msg", "topic", "partition", "offset"}
