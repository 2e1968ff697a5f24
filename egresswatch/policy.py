"""Group allow rules -> verdict for one egress flow.

A group's rules are tried in order; a rule allows the flow when every matcher it has matches
(absent matchers do not constrain). A matcher about something unknown never matches: a rule
with `domains` does not allow a flow whose destination name is unknown, one with `asns` not an
address no ASN database answered for, one with `operator_jurisdictions` not a flow whose
operator is unknown. Nothing allowed -> violation, critical for footage, warning otherwise.
Whether the other end is local is the pipeline's call, before it asks here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from egresswatch.config import AllowRule, GroupSpec
from egresswatch.model import Place, Verdict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CRITICAL = Verdict("violation", "critical")
_WARNING = Verdict("violation", "warning")


class Policy:
    """The site's groups; a group that is not configured has no rules, so everything violates."""

    def __init__(self, groups: Mapping[str, GroupSpec]) -> None:
        self._rules = {name: group.allow for name, group in groups.items()}

    def judge(
        self,
        group: str,
        category: str,
        place: Place,
        ip: IPAddress,
        domain: str | None,
        operator_jurisdiction: str | None = None,
    ) -> Verdict:
        """The verdict on egress of `category` to `ip` (at `place`, named `domain`) by a device of `group`."""
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if domain is not None:
            domain = domain.lower().rstrip(".")
        for index, rule in enumerate(self._rules.get(group, ())):
            if _allows(rule, category, place, ip, domain, operator_jurisdiction):
                return Verdict("allowed", None, index)
        return _CRITICAL if category == "footage" else _WARNING


def _allows(
    rule: AllowRule,
    category: str,
    place: Place,
    ip: IPAddress,
    domain: str | None,
    operator_jurisdiction: str | None,
) -> bool:
    return (
        (rule.categories is None or category in rule.categories)
        and (rule.countries is None or place.country in rule.countries)
        and (rule.asns is None or place.asn in rule.asns)
        and (rule.networks is None or any(ip in net for net in rule.networks))
        and (rule.domains is None or (domain is not None and any(_under(domain, s) for s in rule.domains)))
        and (
            rule.operator_jurisdictions is None
            or (operator_jurisdiction is not None and operator_jurisdiction in rule.operator_jurisdictions)
        )
    )


def _under(domain: str, suffix: str) -> bool:
    """Suffix match at a label boundary: "a.example.org" is under "example.org", "badexample.org" is not."""
    return domain == suffix or domain.endswith("." + suffix)
