"""One settings tree, built once at the edge (issue 16, scope 3): the stages read no environment
themselves; :func:`pipeline.stage_settings.load_stage_settings` reads it and the app hands each
stage its part (broker-free)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.app import build
from pipeline.config import load_settings
from pipeline.stage_settings import load_stage_settings

ROOT = Path(__file__).resolve().parents[2] / "pipeline"

# Modules that may read the process environment, and why: the settings loaders and the edge that
# builds the tree, worker-process plumbing and the command line.
READS_ENVIRONMENT = {
    "config.py": "the Kafka-side settings (load_settings)",
    "app.py": "builds the stage settings once (build)",
    "web.py": "HTTP options of the edge",
    "agents/failstop.py": "the restart budget carried across worker restarts",
    "runtime.py": "environment of worker processes it starts",
    "cli.py": "command line",
    "demo.py": "command line",
    "console/settings.py": "the console's settings (ConsoleSettings.from_env, read once by the command)",
    "console/router.py": "the SMTP password, from the variable the routes file names (never in the file)",
    "classify_cli.py": "command line",
    "selftrain/settings.py": "the trainer's settings (self_train_settings, read once by the command)",
    "ingest/schemas.py": "PIPELINE_SCHEMA_DIR: where the bundled contract lives",
}


def test_only_the_edge_reads_the_environment():
    readers = set()
    for path in ROOT.rglob("*.py"):
        code = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                         if not line.lstrip().startswith("#"))
        code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings may name the variables
        if re.search(r"\bos\.environ\b|\bgetenv\(|\benviron\.get\(", code):
            readers.add(path.relative_to(ROOT).as_posix())
    assert readers <= set(READS_ENVIRONMENT), sorted(readers - set(READS_ENVIRONMENT))


def test_the_tree_reads_every_stage_setting_from_the_environment_given():
    env = {"PIPELINE_WINDOWS": "5m=300", "PIPELINE_REDACT": "0", "PIPELINE_WATERMARK_GRACE_SECONDS": "42",
           "PIPELINE_WINDOW_RETENTION": "3"}
    tree = load_stage_settings(env)
    assert [w.name for w in tree.aggregate.windows] == ["5m"]
    assert tree.aggregate.grace_seconds == 42.0 and tree.aggregate.retention_windows == 3
    assert not tree.redactor.enabled
    default = load_stage_settings({})
    assert default.redactor.enabled and [w.name for w in default.aggregate.windows] == ["1h", "1d"]


def test_the_app_hands_one_tree_to_every_stage():
    tree = load_stage_settings({"PIPELINE_REDACT": "0"})
    pipe = build(load_settings({}), tree)
    assert pipe.processor.stages is tree
    assert pipe.processor.redactor is tree.redactor
    assert pipe.aggregate.cfg.redactor is tree.redactor
    assert pipe.aggregate.cfg.playbook is tree.aggregate.playbook
