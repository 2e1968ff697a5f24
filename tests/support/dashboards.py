"""Read the shipped Grafana dashboards and turn their queries into plain PromQL."""

from __future__ import annotations

import json
import re

from support.contract import REPO

GRAFANA = REPO / "config" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONED_DATASOURCE = GRAFANA / "provisioning" / "datasources" / "egresswatch.yml"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "egresswatch.yml"

# Values Grafana gives its built-in variables; any valid duration makes the query runnable.
GRAFANA_BUILTINS = {"__range": "1h", "__rate_interval": "1m", "__interval": "15s"}
# $name, ${name} and ${name:format}.
VARIABLE_REFERENCE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<bare>\w+))")


def load_dashboards() -> dict[str, dict]:
    """File name -> dashboard model, for every JSON file in config/grafana/dashboards."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panel_queries(board: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL expression) of every query of every panel, rows included."""
    queries = []
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                queries.append((inner["title"], target["refId"], target["expr"]))
    return queries


def variable_references(text: str) -> set[str]:
    """Names of the Grafana variables a string refers to."""
    return {match["braced"] or match["bare"] for match in VARIABLE_REFERENCE.finditer(text)}


def concrete(expr: str, values: dict[str, str]) -> str:
    """``expr`` with every variable replaced by ``values`` or Grafana's built-ins (KeyError if unknown)."""
    known = {**GRAFANA_BUILTINS, **values}
    return VARIABLE_REFERENCE.sub(lambda match: known[match["braced"] or match["bare"]], expr)
