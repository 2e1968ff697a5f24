"""The egresswatch config that matches the synthetic site: inventory, groups, policy, GeoIP DBs.

The policy is written so the benchmark exercises every verdict: the Hikvision (US) and Axis (DE)
clouds are in allowed countries, the Dahua cloud and the clip store (CN) are not (telemetry and
footage violations, so alerts are raised and de-duplicated), camera -> NVR video is local.

GeoIP comes from the project's fixture databases (``pcaps/geoip/``) when they exist; otherwise
this module writes its own small ones next to the config with mmdb-writer from `OWN_GEOGRAPHY`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sitemix import SiteSpec, site_devices

REPO = Path(__file__).resolve().parent.parent
FIXTURE_GEOIP = REPO / "pcaps" / "geoip"
OWN_GEOGRAPHY = (
    ("198.51.100.0/25", "CN", 64501, "Example CN Cloud"),
    ("198.51.100.128/25", "DE", 64502, "Example EU Hosting"),
    ("203.0.113.0/25", "US", 64503, "Example US Cloud"),
    ("203.0.113.128/25", "GB", 64504, "Example UK Backup"),
    ("192.0.2.0/24", "IE", 64505, "Example IE Services"),
    ("2001:db8:1::/48", "CN", 64501, "Example CN Cloud"),
    ("2001:db8:2::/48", "DE", 64502, "Example EU Hosting"),
    ("2001:db8:3::/48", "US", 64503, "Example US Cloud"),
)
"""(network, country, ASN, organisation): the same geography as the fixtures, so verdicts agree."""
CAMERA_POLICY: list[dict[str, Any]] = [
    {"categories": ["infrastructure"]},
    {"categories": ["telemetry", "firmware"], "countries": ["US", "DE", "GB", "IE"]},
    {"categories": ["footage"], "networks": ["203.0.113.128/25"]},
]
NVR_POLICY: list[dict[str, Any]] = [{"categories": ["infrastructure", "telemetry", "firmware"]}]


def geoip_databases(directory: Path) -> tuple[Path, Path]:
    """(country DB, ASN DB): the fixtures if present, else our own written into ``directory``."""
    country, asn = FIXTURE_GEOIP / "country.mmdb", FIXTURE_GEOIP / "asn.mmdb"
    if country.is_file() and asn.is_file():
        return country, asn
    country, asn = directory / "bench-country.mmdb", directory / "bench-asn.mmdb"
    if not (country.is_file() and asn.is_file()):
        _write_databases(country, asn)
    return country, asn


def _write_databases(country: Path, asn: Path) -> None:
    from mmdb_writer import MmdbU32, MMDBWriter
    from netaddr import IPSet

    countries = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Bench-Country")
    asns = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Bench-ASN")
    for cidr, code, number, org in OWN_GEOGRAPHY:
        countries.insert_network(IPSet([cidr]), {"country": {"iso_code": code}})
        content = {"autonomous_system_number": MmdbU32(number), "autonomous_system_organization": org}
        asns.insert_network(IPSet([cidr]), content)
    countries.to_db_file(str(country))
    asns.to_db_file(str(asn))


def site_config(spec: SiteSpec, country_db: Path, asn_db: Path, flows: dict[str, Any] | None = None) -> dict:
    """The config document for ``spec`` (``flows`` becomes the flows section when given)."""
    cameras, nvrs = site_devices(spec)
    devices: list[dict[str, Any]] = [
        {
            "name": nvr.name,
            "mac": nvr.mac,
            "ip": nvr.ip,
            "group": "nvrs",
            "vendor": "hikvision",
            "role": "nvr",
        }
        for nvr in nvrs
    ]
    devices += [
        {"name": cam.name, "mac": cam.mac, "ip": cam.ip, "group": "cameras", "vendor": cam.vendor}
        for cam in cameras
    ]
    document: dict[str, Any] = {
        "devices": devices,
        "groups": {"cameras": {"allow": CAMERA_POLICY}, "nvrs": {"allow": NVR_POLICY}},
        "geoip": {"country_db": str(country_db), "asn_db": str(asn_db)},
    }
    if flows:
        document["flows"] = flows
    return document


def write_config(
    spec: SiteSpec, directory: Path, name: str | None = None, flows: dict[str, Any] | None = None
) -> Path:
    """Write the config for ``spec`` into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    country, asn = geoip_databases(directory)
    path = directory / (name or f"{spec.stem}.yaml")
    document = site_config(spec, country, asn, flows)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path
