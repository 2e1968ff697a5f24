"""The fixture geography, written as MaxMind DBs and used directly by the ground truth.

Other engineers' tests rely on exactly these ranges; docs in pcaps/README.md.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# network, country, ASN, AS organisation
GEOGRAPHY: tuple[tuple[str, str, int, str], ...] = (
    ("198.51.100.0/25", "CN", 64501, "Example CN Cloud"),
    ("198.51.100.128/25", "DE", 64502, "Example EU Hosting"),
    ("203.0.113.0/25", "US", 64503, "Example US Cloud"),
    ("203.0.113.128/25", "GB", 64504, "Example UK Backup"),
    ("192.0.2.0/24", "IE", 64505, "Example IE Services"),
    ("2001:db8:1::/48", "CN", 64501, "Example CN Cloud"),
    ("2001:db8:2::/48", "DE", 64502, "Example EU Hosting"),
    ("2001:db8:3::/48", "US", 64503, "Example US Cloud"),
)
COUNTRY_NAMES = {
    "CN": "China",
    "DE": "Germany",
    "US": "United States",
    "GB": "United Kingdom",
    "IE": "Ireland",
}
BUILD_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed so the files are byte-identical on every run
UNKNOWN = "ZZ"


class _FixedEpochWriter(MMDBWriter):
    """mmdb-writer stamps ``build_epoch`` with the current time; the fixtures need a fixed one."""

    def _build_meta(self) -> dict[str, Any]:
        return {**super()._build_meta(), "build_epoch": BUILD_EPOCH}


def _write(path: Path, database_type: str, record: Any) -> None:
    writer = _FixedEpochWriter(
        ip_version=6,
        database_type=database_type,
        languages=["en"],
        description=f"egresswatch test fixture ({database_type} shaped)",
        ipv4_compatible=True,
    )
    for network, country, asn, org in GEOGRAPHY:
        writer.insert_network(IPSet([network]), record(country, asn, org))
    writer.to_db_file(str(path))


def write_databases(directory: Path) -> None:
    """country.mmdb (GeoIP2-Country shaped) and asn.mmdb (GeoLite2-ASN shaped)."""
    _write(
        directory / "country.mmdb",
        "GeoIP2-Country",
        lambda country, _asn, _org: {
            "country": {"iso_code": country, "names": {"en": COUNTRY_NAMES[country]}}
        },
    )
    _write(
        directory / "asn.mmdb",
        "GeoLite2-ASN",
        lambda _country, asn, org: {"autonomous_system_number": asn, "autonomous_system_organization": org},
    )


def locate(address: str) -> tuple[str, int | None]:
    """(country, asn) as egresswatch must report them for ``address``."""
    ip = ipaddress.ip_address(address)
    for network, country, asn, _org in GEOGRAPHY:
        if ip in ipaddress.ip_network(network):
            return country, asn
    return UNKNOWN, None
