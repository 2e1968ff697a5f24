"""The shipped Prometheus rules and Alertmanager config: valid, unit-tested, and consistent with the docs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.contract import REPO, RUNBOOK, markdown_anchors, metric_names, metrics_contract

RULES = REPO / "config" / "prometheus" / "egresswatch-rules.yml"
RULE_TESTS = REPO / "config" / "prometheus" / "egresswatch-rules.test.yml"
PROMETHEUS_CONFIG = REPO / "config" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "config" / "alertmanager" / "alertmanager.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (Debian package prometheus / prometheus-alertmanager)"
    return path


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=120)


def _alerting_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _rule_test_cases() -> list[dict]:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


def test_promtool_check_rules() -> None:
    result = _run(_tool("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerting_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = _run(_tool("promtool"), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("rule", _alerting_rules(), ids=lambda rule: rule["alert"])
def test_every_rule_is_tested_firing_and_silent(rule: dict) -> None:
    cases = [case for case in _rule_test_cases() if case["alertname"] == rule["alert"]]
    name = rule["alert"]
    assert any(case["exp_alerts"] for case in cases), f"no promtool case where {name} fires"
    assert any(not case["exp_alerts"] for case in cases), f"no promtool case where {name} stays quiet"


@pytest.mark.parametrize("rule", _alerting_rules(), ids=lambda rule: rule["alert"])
def test_rule_labels_annotations_and_runbook(rule: dict) -> None:
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert {"summary", "description", "runbook"} <= rule["annotations"].keys()
    page, _, anchor = rule["annotations"]["runbook"].partition("#")
    assert page == "docs/runbook.md"
    assert anchor == rule["alert"].lower()
    assert anchor in markdown_anchors(RUNBOOK), f"docs/runbook.md has no section for {rule['alert']}"


def test_per_device_alerts_carry_device_group_and_country() -> None:
    # The violation and new-country alerts are what an operator acts on per camera: their summary
    # must name the device, its group and the country.
    for rule in _alerting_rules():
        if "violations_total" in rule["expr"] or "egress_bytes_total" in rule["expr"]:
            summary = rule["annotations"]["summary"]
            for label in ("device", "group", "country"):
                assert f"$labels.{label}" in summary, (rule["alert"], label)


def test_rules_use_only_contract_metrics() -> None:
    contract = metrics_contract()
    for rule in _alerting_rules():
        unknown = metric_names(rule["expr"]) - contract.keys()
        assert not unknown, f"{rule['alert']} uses metrics outside the contract: {sorted(unknown)}"


def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert "egresswatch-rules.yml" in config["rule_files"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "egresswatch" in jobs, 'the down/absent rules expect job="egresswatch"'
    result = _run(_tool("promtool"), "check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS_CONFIG.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_is_valid() -> None:
    result = _run(_tool("amtool"), "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_critical_and_warning_to_different_receivers() -> None:
    def receiver(labels: dict[str, str]) -> str:
        result = _run(
            _tool("amtool"),
            "config",
            "routes",
            "test",
            "--config.file",
            ALERTMANAGER_CONFIG,
            *(f"{key}={value}" for key, value in labels.items()),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    critical = receiver({"alertname": "EgresswatchFootageToDisallowedCountry", "severity": "critical"})
    warning = receiver({"alertname": "EgresswatchTelemetryToDisallowedCountry", "severity": "warning"})
    assert critical and warning and critical != warning
