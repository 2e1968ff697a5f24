"""Write small MaxMind DBs with mmdb-writer for tests (read back with the real maxminddb).

Databases are IPv6 trees with IPv4 compatibility, like GeoLite2, so one file answers both
families. Networks are CIDR strings; IPv4 networks land in the IPv4 subtree (::/96).
"""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet


def write_country_db(
    path: Path | str,
    mapping: dict[str, str],
    *,
    registered: dict[str, str] | None = None,
    database_type: str = "Fixture-Country",
) -> Path:
    """CIDR -> ISO code under `country.iso_code`; `registered` adds networks that only carry
    `registered_country.iso_code` (as GeoLite2 does for some anycast and satellite ranges)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, code in mapping.items():
        writer.insert_network(IPSet([cidr]), {"country": {"iso_code": code}})
    for cidr, code in (registered or {}).items():
        writer.insert_network(IPSet([cidr]), {"registered_country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return Path(path)


def write_asn_db(
    path: Path | str, mapping: dict[str, tuple[int, str]], *, database_type: str = "Fixture-ASN"
) -> Path:
    """CIDR -> (AS number, organisation) under the GeoLite2-ASN field names."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, (number, org) in mapping.items():
        content = {"autonomous_system_number": MmdbU32(number), "autonomous_system_organization": org}
        writer.insert_network(IPSet([cidr]), content)
    writer.to_db_file(str(path))
    return Path(path)
