"""docs/metrics.md, the METRICS table in the code and the contract in docs/architecture.md agree."""

from __future__ import annotations

import re

from support.contract import METRICS_DOC, contract_section, metric_table, metrics_contract

from egresswatch.sinks.metrics import METRICS

_ROW = re.compile(r"^\| `(?P<name>egresswatch_[a-z0-9_]+)` \|(?P<rest>.*)\|$")


def _doc_reference_rows() -> dict[str, tuple[str, tuple[str, ...], str, str]]:
    """name -> (type, labels in order, set by, meaning) from the reference table of docs/metrics.md."""
    rows = {}
    for line in METRICS_DOC.read_text().splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        kind, labels, source, meaning = (cell.strip() for cell in match["rest"].split(" | "))
        assert match["name"] not in rows, f"{match['name']} documented twice"
        rows[match["name"]] = (
            kind,
            tuple(label.strip("` ") for label in labels.split(",") if label),
            source,
            meaning,
        )
    return rows


def test_doc_reference_table_is_the_code_table() -> None:
    documented = _doc_reference_rows()
    in_code = {m.name: (m.type, m.labels, m.source, m.help) for m in METRICS}
    assert documented.keys() == in_code.keys()
    for name, row in in_code.items():
        assert documented[name] == row, f"docs/metrics.md disagrees with METRICS about {name}"


def test_code_table_is_the_architecture_contract() -> None:
    contract = metrics_contract()
    assert len(contract) >= 19, "the contract table in docs/architecture.md was not parsed"
    assert {m.name: (m.type, frozenset(m.labels)) for m in METRICS} == contract


def test_contract_parser_reads_label_lists_with_prose() -> None:
    # The contract's violation row carries "(one per alert)" after its labels.
    section = contract_section("## Metrics contract\n| `a_total` | counter | `x, y` (one per alert) |\n")
    assert metric_table(section) == {"a_total": ("counter", frozenset({"x", "y"}))}


def test_every_label_has_its_values_documented() -> None:
    text = METRICS_DOC.read_text()
    documented = set()
    for line in text.splitlines():
        if line.startswith("| `") and not line.startswith("| `egresswatch_"):
            documented.update(re.findall(r"`([a-z]+)`", line.split(" | ")[0]))
    assert {label for m in METRICS for label in m.labels} <= documented
