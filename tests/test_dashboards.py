"""The shipped Grafana dashboards: generated, resolvable, and every query valid PromQL on the contract."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.contract import metric_names, metrics_contract
from support.dashboards import (
    DASHBOARD_PROVIDER,
    GRAFANA,
    GRAFANA_BUILTINS,
    PROVISIONED_DATASOURCE,
    concrete,
    load_dashboards,
    panel_queries,
    variable_references,
)

BOARDS = load_dashboards()
DATASOURCE_REFERENCE = {"type": "prometheus", "uid": "${datasource}"}


def _variables(board: dict) -> list[dict]:
    return board["templating"]["list"]


def _provisioned_uid() -> str:
    (datasource,) = yaml.safe_load(PROVISIONED_DATASOURCE.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    return datasource["uid"]


def test_the_three_boards_exist_with_unique_uids() -> None:
    uids = {board["uid"] for board in BOARDS.values()}
    assert uids == {"egresswatch-overview", "egresswatch-device", "egresswatch-health"}


def test_dashboards_are_what_the_generator_produces() -> None:
    pytest.importorskip("grafana_foundation_sdk", reason="generator needs grafana-foundation-sdk")
    spec = importlib.util.spec_from_file_location("generate_dashboards", GRAFANA / "generate.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rendered = generator.render()
    assert sorted(rendered) == sorted(BOARDS)
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, f"{name} is stale: run generate.py"


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_uses_the_datasource_variable(name: str) -> None:
    board = BOARDS[name]
    (variable,) = [v for v in _variables(board) if v["type"] == "datasource"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    assert variable["current"]["value"] == _provisioned_uid()
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE_REFERENCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REFERENCE, (panel["title"], target["refId"])
    for query_variable in (v for v in _variables(board) if v["type"] == "query"):
        assert query_variable["datasource"] == DATASOURCE_REFERENCE, query_variable["name"]


@pytest.mark.parametrize("name", BOARDS)
def test_every_variable_reference_resolves(name: str) -> None:
    board = BOARDS[name]
    defined: set[str] = set()
    # A variable's query may use only the variables defined before it (Grafana resolves in order).
    for variable in _variables(board):
        if variable["type"] == "query":
            assert variable_references(variable["query"]) <= defined, variable["name"]
        defined.add(variable["name"])
    for title, ref, expr in panel_queries(board):
        unknown = variable_references(expr) - defined - GRAFANA_BUILTINS.keys()
        assert not unknown, f"{title}/{ref} uses undefined variables {unknown}"
    for panel in board["panels"]:
        assert variable_references(panel["title"]) <= defined


@pytest.mark.parametrize("name", BOARDS)
def test_queries_use_only_contract_metrics(name: str) -> None:
    contract = metrics_contract()
    for title, ref, expr in panel_queries(BOARDS[name]):
        names = metric_names(expr)
        # Prometheus' own `up` for the egresswatch job is the only other series a board may use.
        assert names or expr.startswith('up{job="egresswatch"'), f"{title}/{ref}: no egresswatch metric"
        assert names <= contract.keys(), f"{title}/{ref}: {names - contract.keys()}"


def test_overview_has_a_country_geomap() -> None:
    overview = BOARDS["egresswatch-overview.json"]
    (world,) = [panel for panel in overview["panels"] if panel["type"] == "geomap"]
    (layer,) = world["options"]["layers"]
    assert layer["location"] == {
        "mode": "lookup",
        "lookup": "country",
        "gazetteer": "public/gazetteer/countries.json",
    }
    ((_, _, expr),) = panel_queries({"panels": [world]})
    assert expr.startswith("sum by (country) ")
    assert {target["format"] for target in world["targets"]} == {"table"}


def test_device_board_filters_every_query_by_the_device_variable() -> None:
    board = BOARDS["egresswatch-device.json"]
    assert "device" in {variable["name"] for variable in _variables(board)}
    for title, ref, expr in panel_queries(board):
        assert 'device="$device"' in expr, f"{title}/{ref}"


def test_dashboard_provider_is_a_file_provider() -> None:
    (provider,) = yaml.safe_load(DASHBOARD_PROVIDER.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_query_parses_in_promtool(tmp_path: Path) -> None:
    # promtool has no parse-only command; a rules file with one recording rule per query makes
    # `promtool check rules` parse every expression.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus)"
    values = {"datasource": "egresswatch-prometheus", "instance": ".*", "device": "cam-entrance"}
    rules = [
        {"record": f"dashboard:query_{index}", "expr": concrete(expr, values)}
        for index, (_, _, expr) in enumerate(q for board in BOARDS.values() for q in panel_queries(board))
    ]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
