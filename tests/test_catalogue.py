"""The vendor-cloud catalogue: the packaged data, domain and payload matching, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.catalogue import Catalogue, Service
from egresswatch.config import ConfigError

# No example database: tests write nowhere but temp dirs.
FUZZ = settings(database=None)
CATALOGUE = Catalogue.load()


@pytest.mark.parametrize(
    ("name", "service", "jurisdiction"),
    [
        ("hik-connect.com", "Hik-Connect", "CN"),
        ("API.Hik-Connect.com.", "Hik-Connect", "CN"),
        ("devapi.ys7.com", "EZVIZ", "CN"),
        ("apiieu.ezvizlife.com", "EZVIZ", "CN"),
        ("www.easy4ipcloud.com", "Dahua P2P (Easy4IP)", "CN"),
        ("app.imoulife.com", "Imou / Lechange", "CN"),
        ("en.ezcloud.uniview.com", "Uniview EZCloud", "CN"),
        ("p2p.reolink.com", "Reolink P2P", "CN"),
        ("p2p11.reolink.com", "Reolink P2P", "CN"),
        ("devices-apis.reolink.com", "Reolink cloud", "CN"),  # the less specific pattern
        ("n-devs.tplinkcloud.com", "TP-Link Tapo cloud", "SG"),
    ],
)
def test_packaged_catalogue_names_services(name: str, service: str, jurisdiction: str) -> None:
    found = CATALOGUE.match_domain(name)
    assert found is not None and (found.name, found.jurisdiction) == (service, jurisdiction)


@pytest.mark.parametrize(
    "name",
    ["nothik-connect.com", "hik-connect.com.example.org", "uniview.com", "example.com", "com", "", "..."],
)
def test_suffix_match_is_on_whole_labels(name: str) -> None:
    assert CATALOGUE.match_domain(name) is None


def test_every_packaged_entry_cites_a_source_and_names_are_unique() -> None:
    raw = yaml.safe_load((Path(__file__).parents[1] / "egresswatch/data/services.yaml").read_text())
    assert all(len(entry["source"]) > 40 for entry in raw["services"])
    assert len(CATALOGUE.services) == len(raw["services"]) == len({s.name for s in CATALOGUE.services})


@pytest.mark.parametrize(
    ("transport", "port", "payload", "expected"),
    [
        ("udp", 8800, b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n", ("Dahua P2P (Easy4IP)", "dh-p2p")),
        ("udp", 8800, b"DHPOST /online/relay HTTP/1.1\r\nCSeq: 2\r\n\r\n", ("Dahua P2P (Easy4IP)", "dh-p2p")),
        ("udp", 9000, b"DHGET /probe/p2psrv HTTP/1.1\r\n", None),  # signalling is listed on 8800 only
        ("tcp", 8800, b"DHGET /probe/p2psrv HTTP/1.1\r\n", None),
        ("udp", 40123, b"PTCP" + bytes(20), ("Dahua PTCP relay", "ptcp")),  # the relay has no fixed port
        ("udp", 9999, bytes.fromhex("3acf872a") + bytes(16), ("Reolink P2P", "baichuan-p2p")),
        ("udp", 9999, bytes.fromhex("10cf872a") + bytes(16), ("Reolink P2P", "baichuan-relay")),
        ("udp", 9999, b"\x00" * 20, None),  # the port alone is no evidence
        ("udp", 8800, b"DHG", None),
        ("icmp", None, b"PTCP", ("Dahua PTCP relay", "ptcp")),
    ],
)
def test_payload_signatures(
    transport: str, port: int | None, payload: bytes, expected: tuple[str, str] | None
) -> None:
    found = CATALOGUE.match_payload(transport, port, payload)
    assert ((found.service.name, found.app) if found else None) == expected


def _load(tmp_path: Path, services: object) -> Catalogue:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return Catalogue.load(path)


GOOD = {"name": "Example Cloud", "operator": "Example Ltd", "jurisdiction": "GB", "source": "example"}


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        (
            {**GOOD, "domains": ["example.org"], "operater": "x"},
            "services[0] (Example Cloud).operater",
            "unknown",
        ),
        ({**GOOD, "domains": ["example.org"], "jurisdiction": "China"}, ".jurisdiction", "ISO 3166"),
        ({**GOOD, "domains": ["example.org"], "source": " "}, ".source", "required"),
        ({**GOOD, "domains": ["Example.org"]}, ".domains[0]", "lower-case"),
        ({**GOOD, "domains": ["org"]}, ".domains[0]", "lower-case"),
        ({**GOOD, "domains": "example.org"}, ".domains", "list"),
        ({**GOOD, "signatures": {"x": ["ABCD"]}, "ports": ["udp/70000"]}, ".ports[0]", "transport/port"),
        ({**GOOD, "signatures": {"x": ["ABCD"]}, "ports": ["sctp/80"]}, ".ports[0]", "transport/port"),
        ({**GOOD, "signatures": {"xy": ["AB"]}}, ".signatures.xy[0]", "4 bytes"),
        ({**GOOD, "signatures": {"xy": ["hex:zz"]}}, ".signatures.xy[0]", "hex"),
        ({**GOOD, "signatures": {"xy": ["Ωmega"]}}, ".signatures.xy[0]", "ASCII"),
        ({**GOOD, "signatures": ["ABCD"]}, ".signatures", "app name"),
        ({**GOOD, "signatures": {"Bad App": ["ABCD"]}}, ".signatures.Bad App", "lower-case"),
        ({**GOOD, "signatures": {"xy": []}}, ".signatures.xy", "non-empty"),
        ({**GOOD, "domains": ["example.org"], "ports": ["udp/53"]}, ".ports", "narrow"),
        (GOOD, "services[0] (Example Cloud)", "could never match"),
        ("just a string", "services[0]", "mapping"),
    ],
)
def test_validation_errors_name_entry_and_key(tmp_path: Path, entry: object, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, [entry])
    assert key in caught.value.key
    assert reason in caught.value.reason


def test_duplicate_names_and_bad_files_are_rejected(tmp_path: Path) -> None:
    entry = {**GOOD, "domains": ["example.org"]}
    with pytest.raises(ConfigError, match=r"services\[1\]\.name: duplicate"):
        _load(tmp_path, [entry, entry])
    with pytest.raises(ConfigError, match="cannot read"):
        Catalogue.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="one key, services"):
        Catalogue.load(tmp_path / "list.yaml")


def test_a_loaded_custom_catalogue_matches(tmp_path: Path) -> None:
    catalogue = _load(
        tmp_path,
        [
            {
                **GOOD,
                "domains": ["example.org", "relay?.example.net"],
                "signatures": {"cafe": ["hex:cafef00d"]},
            },
            {**GOOD, "name": "Inner", "jurisdiction": "IE", "domains": ["inner.example.org"]},
        ],
    )
    assert catalogue.match_domain("a.inner.example.org") == Service("Inner", "Example Ltd", "IE")
    assert catalogue.match_domain("www.example.org") == Service("Example Cloud", "Example Ltd", "GB")
    assert catalogue.match_domain("x.relay7.example.net") == Service("Example Cloud", "Example Ltd", "GB")
    assert catalogue.match_domain("relay77.example.net") is None  # ? is exactly one character
    found = catalogue.match_payload("tcp", 443, bytes.fromhex("cafef00d01"))
    assert found is not None and (found.service.name, found.app) == ("Example Cloud", "cafe")


@FUZZ
@given(st.text(max_size=80), st.binary(max_size=40), st.integers(min_value=0, max_value=65535))
def test_matchers_survive_garbage(name: str, payload: bytes, port: int) -> None:
    found = CATALOGUE.match_domain(name)
    assert found is None or found in CATALOGUE.services
    match = CATALOGUE.match_payload("udp", port, payload)
    assert match is None or match.service in CATALOGUE.services
