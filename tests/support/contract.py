"""Read the documents the operator-facing files must agree with: the metrics contract and the runbook."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "architecture.md"
METRICS_DOC = REPO / "docs" / "metrics.md"
RUNBOOK = REPO / "docs" / "runbook.md"

# Metric names as they appear in PromQL: our prefix, then name characters.
_METRIC_NAME = re.compile(r"\begresswatch_[a-z0-9_]+\b")
_TABLE_ROW = re.compile(r"^\|\s*`(?P<name>[a-z0-9_]+)`\s*\|\s*(?P<type>\w+)\s*\|(?P<labels>[^|]*)\|")


def metric_table(markdown: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Every `| \\`name\\` | type | labels |` row of a markdown text: name -> (type, label names).

    The labels cell may hold prose after the label list (e.g. "(one per alert)"): only the
    comma-separated identifiers in backticks, or the bare identifiers before any parenthesis, count.
    """
    table: dict[str, tuple[str, frozenset[str]]] = {}
    for line in markdown.splitlines():
        row = _TABLE_ROW.match(line.strip())
        if not row:
            continue
        cell = row["labels"].split("(")[0].replace("`", "")
        labels = frozenset(part.strip() for part in cell.split(",") if part.strip())
        table[row["name"]] = (row["type"], labels)
    return table


def contract_section(markdown: str) -> str:
    """The "Metrics contract" section of docs/architecture.md (up to the next heading)."""
    match = re.search(r"^## Metrics contract.*?$(?P<body>.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, "docs/architecture.md has no '## Metrics contract' section"
    return match["body"]


def metrics_contract() -> dict[str, tuple[str, frozenset[str]]]:
    """The metric names, types and labels fixed by docs/architecture.md."""
    return metric_table(contract_section(ARCHITECTURE.read_text()))


def metric_names(promql: str) -> set[str]:
    """egresswatch metric names referenced by a PromQL expression (recording-rule names excluded)."""
    return set(_METRIC_NAME.findall(promql))


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style anchors of every heading in a markdown file."""
    anchors = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors
