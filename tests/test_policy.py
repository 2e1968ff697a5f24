"""Policy.judge: ordered rules, AND of matchers, domain suffixes, severities, unknown groups."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from egresswatch.config import parse_config
from egresswatch.model import Place, Verdict
from egresswatch.policy import Policy

GROUPS = parse_config(
    {
        "groups": {
            "cameras": {
                "allow": [
                    {"categories": ["infrastructure"]},
                    {"categories": ["telemetry"], "countries": ["GB", "IE"]},
                    {
                        "categories": ["footage"],
                        "networks": ["198.51.100.0/24", "2001:db8:1::/48"],
                        "asns": [64500],
                    },
                    {"domains": ["backup.example.org"]},
                    {"categories": ["telemetry"], "operator_jurisdictions": ["GB"]},
                ]
            },
            "pcs": {"allow": [{"countries": ["GB"]}]},
        }
    },
    Path("/nonexistent"),
).groups
POLICY = Policy(GROUPS)

GB = Place("GB", 64500, "Example Transit", "Fixture-Country")
CN = Place("CN", 64500, "Example Transit", "Fixture-Country")
CN_OTHER_AS = Place("CN", 64999, "Elsewhere", "Fixture-Country")
US_NO_AS = Place("US", None, None, "Fixture-Country")
ALLOWED_NET = ipaddress.ip_address("198.51.100.7")
OTHER_NET = ipaddress.ip_address("203.0.113.7")


def judge(
    category: str,
    place: Place,
    ip: ipaddress._BaseAddress = OTHER_NET,
    domain: str | None = None,
    group: str = "cameras",
    operator: str | None = None,
) -> Verdict:
    return POLICY.judge(group, category, place, ip, domain, operator)


def test_first_matching_rule_wins() -> None:
    assert judge("infrastructure", CN) == Verdict("allowed", None, 0)
    assert judge("telemetry", GB) == Verdict("allowed", None, 1)


def test_matchers_are_anded() -> None:
    assert judge("footage", CN, ALLOWED_NET) == Verdict("allowed", None, 2)
    assert judge("footage", CN_OTHER_AS, ALLOWED_NET) == Verdict("violation", "critical")  # wrong AS
    assert judge("footage", CN, OTHER_NET) == Verdict("violation", "critical")  # wrong network
    assert judge("footage", US_NO_AS, ALLOWED_NET).verdict == "violation"  # ASN unknown never matches
    assert judge("telemetry", CN, ALLOWED_NET) == Verdict("violation", "warning")  # wrong category


def test_ipv6_and_ipv4_mapped_networks() -> None:
    assert judge("footage", CN, ipaddress.ip_address("2001:db8:1::9")).rule == 2
    assert judge("footage", CN, ipaddress.ip_address("::ffff:198.51.100.7")).rule == 2
    assert judge("footage", CN, ipaddress.ip_address("2001:db8:2::9")).verdict == "violation"


@pytest.mark.parametrize(
    ("domain", "allowed"),
    [
        ("backup.example.org", True),
        ("eu.backup.example.org", True),
        ("EU.Backup.Example.ORG.", True),
        ("evilbackup.example.org", False),
        ("backup.example.org.evil.net", False),
        ("example.org", False),
        (None, False),
    ],
)
def test_domain_suffix_at_label_boundary(domain: str | None, allowed: bool) -> None:
    verdict = judge("footage", CN_OTHER_AS, OTHER_NET, domain)
    assert verdict == (Verdict("allowed", None, 3) if allowed else Verdict("violation", "critical"))


def test_operator_jurisdiction_matcher() -> None:
    assert judge("telemetry", CN, operator="GB") == Verdict("allowed", None, 4)
    assert judge("telemetry", CN, operator="CN") == Verdict("violation", "warning")
    assert judge("telemetry", CN, operator=None) == Verdict("violation", "warning")


def test_severity_by_category() -> None:
    assert judge("footage", US_NO_AS, group="pcs") == Verdict("violation", "critical")
    for category in ("telemetry", "firmware", "infrastructure"):
        assert judge(category, US_NO_AS, group="pcs") == Verdict("violation", "warning")
    assert judge("footage", GB, group="pcs") == Verdict("allowed", None, 0)


@pytest.mark.parametrize("group", ["unassigned", "default", "no-such-group"])
def test_groups_without_rules_allow_nothing(group: str) -> None:
    assert judge("infrastructure", GB, group=group) == Verdict("violation", "warning")
    assert judge("footage", GB, group=group) == Verdict("violation", "critical")
