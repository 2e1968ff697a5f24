"""The egresswatch config that matches the synthetic site: inventory, groups, policy, GeoIP DBs.

The policy is written so the benchmark exercises every verdict: the Hikvision (US) and Axis (DE)
clouds are in allowed countries, the Dahua cloud and the clip store (CN) are not (telemetry and
footage violations, so alerts are raised and de-duplicated), camera -> NVR video is local.

GeoIP comes from the project's fixture databases (``pcaps/geoip/``, written by pcaps/generate.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sitemix import SiteSpec, site_devices

REPO = Path(__file__).resolve().parent.parent
FIXTURE_GEOIP = REPO / "pcaps" / "geoip"
"""(network, country, ASN, organisation): the same geography as the fixtures, so verdicts agree."""
CAMERA_POLICY: list[dict[str, Any]] = [
    {"categories": ["infrastructure"]},
    {"categories": ["telemetry", "firmware"], "countries": ["US", "DE", "GB", "IE"]},
    {"categories": ["footage"], "networks": ["203.0.113.128/25"]},
]
NVR_POLICY: list[dict[str, Any]] = [{"categories": ["infrastructure", "telemetry", "firmware"]}]


def geoip_databases(directory: Path) -> tuple[Path, Path]:
    """(country DB, ASN DB): the fixture databases committed in pcaps/geoip (pcaps/generate.py)."""
    country, asn = FIXTURE_GEOIP / "country.mmdb", FIXTURE_GEOIP / "asn.mmdb"
    if not (country.is_file() and asn.is_file()):
        raise FileNotFoundError(f"{FIXTURE_GEOIP}: no fixture GeoIP databases; run python pcaps/generate.py")
    return country, asn


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
