"""The documentation matches the code: configuration variables, defaults, links, README size.

Which environment variables "the code reads" (no broker, no import side effects beyond the
package itself):

* every string constant in ``pipeline/**/*.py`` that is exactly an environment-variable name,
  ``PIPELINE_…`` or ``KAFKA_…`` (found with :mod:`ast`, so docstrings and comments do not count:
  only names the code can pass to ``os.environ`` / ``env.get``).  In this package such constants
  are only ever environment names;
* names built at run time from a prefix (``f"PIPELINE_SURGE_{name.upper()}"``): the test calls
  the function that builds them with an environment that records every name it is asked for
  (``DYNAMIC`` below; a new prefix fails the test until it is added there);
* for the "no stale rows" direction, also the ``${PIPELINE_…}`` names ``docker-compose.yml`` reads.

``docs/configuration.md`` must list every one of them in the first column of a table row, and
every ``PIPELINE_*`` name it mentions must be one of them.  The defaults of the variables read in
``pipeline/config.py`` through ``_get(env, "NAME", <default expression>)`` must equal the
documented default (the first code span of the row's second column; a default in italics, such as
*(none)* or *(inferred)*, documents the empty string).  Path defaults depend on the machine and are skipped.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"

ENV_NAME = re.compile(r"(?:PIPELINE|KAFKA)_[A-Z0-9_]*[A-Z0-9]")
ENV_PREFIX = re.compile(r"(?:PIPELINE|KAFKA)_[A-Z0-9_]*_")

# prefix of a name built at run time -> "module:callable" that builds the names from an env mapping
DYNAMIC = {
    "PIPELINE_SURGE_": "pipeline.aggregate.surge:SurgeConfig.from_env",
    "PIPELINE_CHURN_": "pipeline.churn.alerts:ChurnPolicy.from_env",
    "PIPELINE_WARN_": "pipeline.commitments.model:CommitmentConfig.from_env",
}


class RecordingEnv(dict):
    """An empty environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __getitem__(self, key: Any) -> Any:
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False


def _sources() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def _literal_names_and_prefixes() -> tuple[set[str], dict[str, set[str]]]:
    names: set[str] = set()
    prefixes: dict[str, set[str]] = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                first = node.values[0] if node.values else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str) \
                        and ENV_PREFIX.fullmatch(first.value):
                    prefixes.setdefault(first.value, set()).add(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                names.add(node.value)
    return names, prefixes


def _resolve(spec: str) -> Any:
    module, _, qualname = spec.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def code_env_names() -> set[str]:
    """Every environment variable name the package reads (see the module docstring)."""
    names, prefixes = _literal_names_and_prefixes()
    unknown = {p: files for p, files in prefixes.items() if p not in DYNAMIC}
    assert not unknown, f"names built at run time from a new prefix: {unknown}; add it to DYNAMIC in {__file__}"
    for prefix, spec in DYNAMIC.items():
        env = RecordingEnv()
        _resolve(spec)(env)
        built = {n for n in env.asked if n.startswith(prefix)}
        assert built, f"{spec} read no {prefix}* variable: update DYNAMIC"
        names |= built
    return names


def compose_env_names() -> set[str]:
    compose = ROOT / "docker-compose.yml"
    text = compose.read_text(encoding="utf-8") if compose.exists() else ""
    return set(re.findall(r"\$\{(PIPELINE_[A-Z0-9_]+)", text))


def _cells(line: str) -> list[str]:
    # split a Markdown table row on unescaped pipes
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def documented_rows() -> dict[str, str]:
    """``{variable: default cell}`` for every table row of docs/configuration.md naming variables."""
    rows: dict[str, str] = {}
    for line in CONFIG_DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        if len(cells) < 3:
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def test_every_variable_the_code_reads_is_documented() -> None:
    missing = sorted(code_env_names() - set(documented_rows()))
    assert not missing, f"read by pipeline/ but without a row in docs/configuration.md: {missing}"


def test_no_stale_pipeline_variables_in_configuration_doc() -> None:
    mentioned = set(re.findall(r"\bPIPELINE_[A-Z0-9_]*[A-Z0-9]\b", CONFIG_DOC.read_text(encoding="utf-8")))
    stale = sorted(mentioned - code_env_names() - compose_env_names())
    assert not stale, f"docs/configuration.md names variables nothing reads: {stale}"


def _config_defaults() -> dict[str, Any]:
    """``{NAME: default}`` for every ``_get(env, "NAME", expr)`` in pipeline/config.py.

    The default expression is evaluated in the module's namespace plus the local dataclass
    instances of ``load_settings`` (``d = Settings()``, ``t = Topics()``, …); a ``str(x)`` around
    it is unwrapped so numbers stay numbers and paths stay paths.
    """
    config = importlib.import_module("pipeline.config")
    tree = ast.parse(Path(config.__file__).read_text(encoding="utf-8"))
    load = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "load_settings")
    namespace = dict(vars(config))
    for stmt in load.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) \
                and isinstance(stmt.value.func, ast.Name) and not stmt.value.args and not stmt.value.keywords:
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    namespace[target.id] = eval(compile(ast.Expression(stmt.value), "config", "eval"), namespace)
    out: dict[str, Any] = {}
    for node in ast.walk(load):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_get" \
                and len(node.args) == 3 and isinstance(node.args[1], ast.Constant):
            expr = node.args[2]
            if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "str" \
                    and len(expr.args) == 1:
                expr = expr.args[0]
            out[node.args[1].value] = eval(compile(ast.Expression(expr), "config", "eval"), namespace)
    return out


def _normalise(value: str) -> Any:
    text = value.strip().replace("_", "") if re.fullmatch(r"[0-9_.eE+-]+", value.strip()) else value.strip()
    try:
        return float(text)
    except ValueError:
        return text


def test_config_defaults_match_the_settings_dataclasses() -> None:
    defaults = _config_defaults()
    assert len(defaults) > 30, f"found only {len(defaults)} _get(...) calls in pipeline/config.py"
    rows = documented_rows()
    wrong = []
    for name, default in sorted(defaults.items()):
        if isinstance(default, Path):
            continue  # machine-dependent (data and cache folders)
        cell = rows[name]
        spans = re.findall(r"`([^`]*)`", cell)
        documented = "" if cell.startswith("*") or not spans else spans[0]
        if _normalise(documented) != _normalise(str(default)):
            wrong.append(f"{name}: documented {documented!r}, code {default!r}")
    assert not wrong, "docs/configuration.md defaults differ from pipeline/config.py:\n" + "\n".join(wrong)


def test_readme_is_an_entry_point() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move details to docs/"


def _markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / unquote(path_part)).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_in_docs_exist(doc: Path) -> None:
    """Every repository path written as code (`pipeline/agents/ingest.py`) exists."""
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in re.findall(r"`((?:pipeline|tests|bench|deploy|schemas|docs)/[\w./-]*)`", text)
                      if not (ROOT / p).exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_readme_layout_table_matches_the_tree() -> None:
    """Each row of the README's layout table: its paths exist, and so do the files it names in them."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| path | does |"):].split("\n\n", 1)[0].splitlines()[2:]
    assert table, "README.md: no layout table"
    missing = []
    for line in table:
        first, rest = _cells(line)[0], " ".join(_cells(line)[1:])
        paths = re.findall(r"`([^`]+)`", first)
        for p in paths:
            if not (ROOT / p).exists():
                missing.append(p)
        folders = [p for p in paths if p.endswith("/")]
        if len(folders) == 1:
            for name in re.findall(r"`([\w-]+\.(?:py|yaml))`", rest):
                if not (ROOT / folders[0] / name).exists():
                    missing.append(folders[0] + name)
    assert not missing, f"README.md layout table names what does not exist: {missing}"
