"""Config loading: defaults, normalisation, and errors that name the key path."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from egresswatch.config import (
    DEFAULT_LOCAL_NETWORKS,
    AllowRule,
    Config,
    ConfigError,
    load_config,
    normalise_mac,
    parse_config,
)


def parse(data: dict, base_dir: Path = Path("/nonexistent")) -> Config:
    return parse_config(data, base_dir)


def error_of(data: dict, base_dir: Path = Path("/nonexistent")) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir)
    return info.value


FULL_YAML = """
networks:
  local: [10.0.0.0/8, "fd00::/8"]
devices:
  - name: cam-entrance
    mac: "44-19-B6-00-00-11"
    ip: 10.20.0.11
    group: cameras
    vendor: hikvision
  - name: nvr-1
    cidr: 10.30.0.0/28
    group: cameras
    role: nvr
groups:
  cameras:
    allow:
      - categories: [infrastructure]
      - categories: [telemetry]
        countries: [GB, IE]
      - categories: [footage]
        networks: [198.51.100.0/24]
        asns: [64500]
        domains: [Backup.Example.org.]
        operator_jurisdictions: [GB]
geoip:
  country_db: dbs/country.mmdb
  cache_size: 1024
  fallback: none
flows:
  max: 1000
  active_timeout: 30
  idle_timeout: {tcp: 120, udp: 30.5, other: 10}
  tcp_closed_timeout: 2
classify: {video_min_kbps: 512}
alerts: {dedup_seconds: 60}
events: {flows: egress}
metrics: {listen: "0.0.0.0:9200", max_devices: 10}
capture:
  interfaces: [eth1, eth2]
  snaplen: 1600
  buffer_mb: 128
  promiscuous: false
  workers: 4
  bpf_extra: "not port 22"
"""


def test_full_file_loads_with_every_value(tmp_path: Path) -> None:
    (tmp_path / "dbs").mkdir()
    (tmp_path / "dbs" / "country.mmdb").write_bytes(b"placeholder")
    path = tmp_path / "site.yaml"
    path.write_text(FULL_YAML)

    config = load_config(path)

    assert config.source == path.resolve()
    assert config.local_networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    cam, nvr = config.devices
    assert (cam.name, cam.mac, cam.ip, cam.cidr, cam.group, cam.vendor, cam.role) == (
        "cam-entrance",
        "44:19:b6:00:00:11",
        "10.20.0.11",
        None,
        "cameras",
        "hikvision",
        "camera",
    )
    assert (nvr.mac, nvr.ip, nvr.cidr, nvr.vendor, nvr.role) == (None, None, "10.30.0.0/28", None, "nvr")
    rules = config.groups["cameras"].allow
    assert rules[0] == AllowRule(categories=frozenset({"infrastructure"}))
    assert rules[1] == AllowRule(categories=frozenset({"telemetry"}), countries=frozenset({"GB", "IE"}))
    assert rules[2].networks == (ipaddress.ip_network("198.51.100.0/24"),)
    assert rules[2].asns == frozenset({64500})
    assert rules[2].domains == ("backup.example.org",)
    assert rules[2].operator_jurisdictions == frozenset({"GB"})
    assert config.geoip.country_db == tmp_path / "dbs" / "country.mmdb"
    assert (config.geoip.asn_db, config.geoip.cache_size, config.geoip.fallback) == (None, 1024, "none")
    flows = config.flows
    assert (flows.max, flows.active_timeout, flows.idle_tcp, flows.idle_udp, flows.idle_other) == (
        1000,
        30.0,
        120.0,
        30.5,
        10.0,
    )
    assert flows.tcp_closed_timeout == 2.0
    assert config.classify.video_min_kbps == 512.0
    assert config.alerts.dedup_seconds == 60.0
    assert config.events.flows == "egress"
    assert (config.metrics.listen_host, config.metrics.listen_port, config.metrics.max_devices) == (
        "0.0.0.0",
        9200,
        10,
    )
    cap = config.capture
    assert (cap.interfaces, cap.snaplen, cap.buffer_mb, cap.promiscuous, cap.workers, cap.bpf_extra) == (
        ("eth1", "eth2"),
        1600,
        128,
        False,
        4,
        "not port 22",
    )


def test_defaults_match_the_documentation() -> None:
    config = parse({})
    assert config.devices == ()
    assert set(config.groups) == {"unassigned", "default"}
    assert all(group.allow == () for group in config.groups.values())
    assert [str(n) for n in config.local_networks] == list(DEFAULT_LOCAL_NETWORKS)
    assert "192.168.0.0/16" in DEFAULT_LOCAL_NETWORKS and "ff00::/8" in DEFAULT_LOCAL_NETWORKS
    assert (config.geoip.country_db, config.geoip.asn_db) == (None, None)
    assert (config.geoip.cache_size, config.geoip.fallback) == (65536, "iptocc")
    f = config.flows
    assert (f.max, f.active_timeout, f.idle_tcp, f.idle_udp, f.idle_other, f.tcp_closed_timeout) == (
        262144,
        60,
        300,
        60,
        60,
        5,
    )
    assert config.classify.video_min_kbps == 256
    assert config.alerts.dedup_seconds == 900
    assert config.events.flows == "devices"
    assert (config.metrics.listen_host, config.metrics.listen_port, config.metrics.max_devices) == (
        "127.0.0.1",
        9108,
        500,
    )
    c = config.capture
    assert (c.interfaces, c.snaplen, c.buffer_mb, c.promiscuous, c.workers, c.bpf_extra) == (
        (),
        262144,
        64,
        True,
        1,
        "",
    )
    assert config.source is None


def test_device_defaults_and_builtin_groups() -> None:
    config = parse(
        {
            "devices": [
                {"name": "cam", "ip": "10.0.0.5"},
                {"name": "x", "ip": "10.0.0.6", "group": "unassigned"},
            ]
        }
    )
    assert (config.devices[0].group, config.devices[0].role) == ("default", "camera")
    assert config.devices[1].group == "unassigned"


def test_configured_unassigned_group_replaces_the_builtin_one() -> None:
    config = parse({"groups": {"unassigned": {"allow": [{"categories": ["infrastructure"]}]}}})
    assert config.groups["unassigned"].allow == (AllowRule(categories=frozenset({"infrastructure"})),)


def test_config_is_immutable() -> None:
    config = parse({})
    with pytest.raises(TypeError):
        config.groups["new"] = config.groups["default"]  # type: ignore[index]


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n")
    assert load_config(path).flows.max == 262144


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("44:19:B6:00:00:42", "44:19:b6:00:00:42"),
        ("44-19-b6-00-00-42", "44:19:b6:00:00:42"),
        ("4419.b600.0042", "44:19:b6:00:00:42"),
        ("4419B6000042", "44:19:b6:00:00:42"),
        ("44:19-b6:00:00:42", None),
        ("44:19:b6:00:00", None),
        ("44:19:b6:00:00:4g", None),
    ],
)
def test_normalise_mac(text: str, expected: str | None) -> None:
    assert normalise_mac(text) == expected


def test_relative_db_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "asn.mmdb").write_bytes(b"x")
    config = parse({"geoip": {"asn_db": "asn.mmdb"}}, tmp_path)
    assert config.geoip.asn_db == tmp_path / "asn.mmdb"


@pytest.mark.parametrize(
    ("data", "key", "reason_part"),
    [
        ({"device": []}, "device", "did you mean 'devices'"),
        (
            {"groups": {"cameras": {"allow": [{"countrys": ["GB"]}]}}},
            "groups.cameras.allow[0].countrys",
            "unknown key",
        ),
        ({"devices": [{"name": "a", "mac": "44:19:b6:00:00:1"}]}, "devices[0].mac", "not a MAC"),
        ({"devices": [{"name": "a", "mac": "01:00:5e:00:00:01"}]}, "devices[0].mac", "multicast"),
        ({"devices": [{"name": "a", "ip": "10.0.0.300"}]}, "devices[0].ip", "not an IP address"),
        ({"devices": [{"name": "a", "cidr": "10.0.0.1/24"}]}, "devices[0].cidr", "host bits"),
        (
            {"devices": [{"name": "a", "ip": "10.0.0.1", "cidr": "10.0.0.0/24"}]},
            "devices[0].cidr",
            "exclusive",
        ),
        ({"devices": [{"name": "a"}]}, "devices[0]", "needs mac, ip or cidr"),
        ({"devices": [{"ip": "10.0.0.1"}]}, "devices[0].name", "required"),
        ({"devices": [{"name": "a b", "ip": "10.0.0.1"}]}, "devices[0].name", "may contain only"),
        (
            {"devices": [{"name": "a", "ip": "10.0.0.1", "role": "doorbell"}]},
            "devices[0].role",
            "camera, nvr, other",
        ),
        ({"devices": [{"name": "a", "ip": "10.0.0.1", "vendor": "Hik Vision"}]}, "devices[0].vendor", "slug"),
        (
            {"devices": [{"name": "a", "ip": "10.0.0.1", "group": "camras"}], "groups": {"cameras": {}}},
            "devices[0].group",
            "'camras' is not defined",
        ),
        (
            {"devices": [{"name": "a", "ip": "10.0.0.1"}, {"name": "a", "ip": "10.0.0.2"}]},
            "devices[1].name",
            "already used by devices[0]",
        ),
        (
            {
                "devices": [
                    {"name": "a", "mac": "44:19:b6:00:00:01"},
                    {"name": "b", "ip": "10.0.0.2"},
                    {"name": "c", "mac": "44-19-B6-00-00-01"},
                ]
            },
            "devices[2].mac",
            "already used by devices[0]",
        ),
        (
            {"devices": [{"name": "a", "ip": "10.0.0.1"}, {"name": "b", "ip": "10.0.0.1"}]},
            "devices[1].ip",
            "already used",
        ),
        ({"devices": {"name": "a"}}, "devices", "expected a list"),
        ({"groups": {"c": {"allow": [{"countries": ["gb"]}]}}}, "groups.c.allow[0].countries[0]", "ISO"),
        ({"groups": {"c": {"allow": [{"countries": ["GBR"]}]}}}, "groups.c.allow[0].countries[0]", "ISO"),
        (
            {"groups": {"c": {"allow": [{"operator_jurisdictions": ["uk"]}]}}},
            "groups.c.allow[0].operator_jurisdictions[0]",
            "ISO",
        ),
        (
            {"groups": {"c": {"allow": [{"categories": ["video"]}]}}},
            "groups.c.allow[0].categories[0]",
            "footage, telemetry, firmware, infrastructure",
        ),
        ({"groups": {"c": {"allow": [{"asns": ["AS64500"]}]}}}, "groups.c.allow[0].asns[0]", "AS number"),
        ({"groups": {"c": {"allow": [{"asns": [True]}]}}}, "groups.c.allow[0].asns[0]", "AS number"),
        (
            {"groups": {"c": {"allow": [{"networks": ["198.51.100.0/33"]}]}}},
            "groups.c.allow[0].networks[0]",
            "CIDR",
        ),
        (
            {"groups": {"c": {"allow": [{"domains": ["bad domain.org"]}]}}},
            "groups.c.allow[0].domains[0]",
            "not a domain",
        ),
        ({"groups": {"c": {"allow": [{"countries": []}]}}}, "groups.c.allow[0].countries", "empty list"),
        ({"groups": {"c": {"allow": [{}]}}}, "groups.c.allow[0]", "at least one matcher"),
        ({"groups": {"c": {"allow": [None]}}}, "groups.c.allow[0]", "at least one matcher"),
        (
            {"groups": {"c": {"allow": [{"categories": "footage"}]}}},
            "groups.c.allow[0].categories",
            "expected a list",
        ),
        ({"groups": {"c": {"deny": []}}}, "groups.c.deny", "unknown key"),
        ({"groups": {"c d": {}}}, "groups.c d", "may contain only"),
        ({"groups": ["c"]}, "groups", "expected a mapping"),
        ({"networks": {"local": ["10.0.0.0/8", "nope"]}}, "networks.local[1]", "CIDR"),
        ({"geoip": {"country_db": "missing.mmdb"}}, "geoip.country_db", "does not exist"),
        ({"geoip": {"fallback": "maxmind"}}, "geoip.fallback", "iptocc, none"),
        ({"geoip": {"cache_size": 0}}, "geoip.cache_size", "positive integer"),
        ({"flows": {"max": 10.5}}, "flows.max", "positive integer"),
        ({"flows": {"max": True}}, "flows.max", "positive integer"),
        ({"flows": {"active_timeout": -1}}, "flows.active_timeout", "positive number"),
        ({"flows": {"active_timeout": "60"}}, "flows.active_timeout", "positive number"),
        ({"flows": {"idle_timeout": {"tcp": 0}}}, "flows.idle_timeout.tcp", "positive number"),
        ({"flows": {"idle_timeout": {"icmp": 5}}}, "flows.idle_timeout.icmp", "unknown key"),
        ({"classify": {"video_min_kbps": 0}}, "classify.video_min_kbps", "positive number"),
        ({"alerts": {"dedup_seconds": float("inf")}}, "alerts.dedup_seconds", "positive number"),
        ({"events": {"flows": "some"}}, "events.flows", "all, devices, egress"),
        ({"metrics": {"listen": "9108"}}, "metrics.listen", "host:port"),
        ({"metrics": {"listen": "localhost:70000"}}, "metrics.listen", "host:port"),
        ({"metrics": {"listen": "::1:9108"}}, "metrics.listen", "host:port"),
        ({"metrics": {"listen": "[1::2::3]:9108"}}, "metrics.listen", "not an IP address"),
        ({"capture": {"promiscuous": "yes please"}}, "capture.promiscuous", "true or false"),
        ({"capture": {"interfaces": "eth1"}}, "capture.interfaces", "expected a list"),
        ({"capture": {"workers": 0}}, "capture.workers", "positive integer"),
        ({"capture": {"bpf_extra": 5}}, "capture.bpf_extra", "expected a string"),
    ],
)
def test_bad_values_name_their_key(data: dict, key: str, reason_part: str) -> None:
    err = error_of(data)
    assert err.key == key
    assert reason_part in err.reason
    assert str(err) == f"{key}: {err.reason}"


def test_unquoted_norway_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "norway.yaml"
    path.write_text("groups:\n  c:\n    allow:\n      - countries: [SE, NO]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "groups.c.allow[0].countries[1]"
    assert 'quote country codes, e.g. "NO"' in info.value.reason
    path.write_text('groups:\n  c:\n    allow:\n      - countries: [SE, "NO"]\n')
    assert load_config(path).groups["c"].allow[0].countries == frozenset({"SE", "NO"})


def test_unquoted_mac_that_yaml_reads_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "mac.yaml"
    path.write_text("devices:\n  - name: cam\n    mac: 10:20:30:40:50:12\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "devices[0].mac"
    assert "quote MAC addresses" in info.value.reason


def test_ipv4_mapped_device_address_is_stored_as_ipv4() -> None:
    assert parse({"devices": [{"name": "cam", "ip": "::ffff:10.0.0.7"}]}).devices[0].ip == "10.0.0.7"


def test_listen_accepts_bracketed_ipv6() -> None:
    metrics = parse({"metrics": {"listen": "[::1]:9000"}}).metrics
    assert (metrics.listen_host, metrics.listen_port) == ("::1", 9000)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"^\(top level\): expected a mapping, got list"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == str(path)
    assert "cannot read config file" in info.value.reason


def test_yaml_syntax_error_gives_the_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("flows:\n  max: [1, 2\nalerts: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == str(path)
    assert info.value.reason.startswith("YAML syntax error at line 3, column")


# --- the daemon's keys (issue 3) -----------------------------------------------------------------


def test_daemon_keys_load_with_paths_resolved_against_the_config(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem", "users"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "log").mkdir()
    config = parse(
        {
            "events": {"path": "log/events.jsonl", "max_mb": 20, "backups": 0},
            "metrics": {
                "tls_cert": "cert.pem", "tls_key": str(tmp_path / "key.pem"), "basic_auth_users": "users"},
            "capture": {"user": "nobody"},
        },
        tmp_path,
    )
    assert (config.events.path, config.events.max_mb, config.events.backups) == (
        str(tmp_path / "log" / "events.jsonl"), 20, 0)
    m = config.metrics
    assert (m.tls_cert, m.tls_key, m.basic_auth_users) == (
        tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "users")
    assert config.capture.user == "nobody"


def test_daemon_key_defaults() -> None:
    config = parse({})
    assert (config.events.path, config.events.max_mb, config.events.backups) == ("-", 100, 5)
    m = config.metrics
    assert (m.tls_cert, m.tls_key, m.basic_auth_users) == (None, None, None)
    assert config.capture.user is None
    assert parse({"events": {"path": "-"}}).events.path == "-"


@pytest.mark.parametrize(
    ("data", "key", "reason_part"),
    [
        ({"events": {"path": "no-such-dir/events.jsonl"}}, "events.path", "does not exist"),
        ({"events": {"path": 5}}, "events.path", "non-empty string"),
        ({"events": {"max_mb": 0}}, "events.max_mb", "positive integer"),
        ({"events": {"backups": -1}}, "events.backups", ">= 0"),
        ({"events": {"backups": True}}, "events.backups", ">= 0"),
        ({"events": {"rotate": 3}}, "events.rotate", "unknown key"),
        ({"metrics": {"tls_cert": "missing.pem"}}, "metrics.tls_cert", "does not exist"),
        ({"metrics": {"basic_auth_users": "missing"}}, "metrics.basic_auth_users", "does not exist"),
        ({"metrics": {"tls_crt": "cert.pem"}}, "metrics.tls_crt", "did you mean 'tls_cert'"),
        ({"capture": {"user": "no-such-user-egresswatch-test"}}, "capture.user", "no such user"),
        ({"capture": {"user": ""}}, "capture.user", "non-empty string"),
    ],
)
def test_bad_daemon_values_name_their_key(data: dict, key: str, reason_part: str) -> None:
    err = error_of(data)
    assert (err.key, reason_part in err.reason) == (key, True), err.reason


def test_tls_key_without_certificate_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("x", encoding="utf-8")
    err = error_of({"metrics": {"tls_key": "key.pem"}}, tmp_path)
    assert (err.key, "metrics.tls_cert" in err.reason) == ("metrics.tls_key", True)
