from __future__ import annotations

import importlib
import json
import socket
from pathlib import Path

import dpkt
import pytest
from fixtures_geo import write_country_db
from prometheus_client.parser import text_string_to_metric_families

from egresswatch.cli import COMMANDS, Command, main

GOOD = """\
devices:
  - name: cam-entrance
    mac: "44:19:b6:00:00:11"
    ip: 10.20.0.11
    group: cameras
    vendor: hikvision
  - name: nvr-1
    ip: 10.20.0.2
    group: nvr
    role: nvr
groups:
  cameras:
    allow:
      - categories: [infrastructure]
  nvr:
    allow: []
"""


def write(tmp_path: Path, text: str, name: str = "egresswatch.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", write(tmp_path, GOOD)]) == 0
    # cameras and nvr, plus the built-in "unassigned" and "default" groups
    assert capsys.readouterr().out == "config ok: 2 devices, 4 groups\n"


@pytest.mark.parametrize(("text", "message"), [
    (GOOD.replace("categories: [infrastructure]", "countrys: [GB]"),
     "config error: groups.cameras.allow[0].countrys: unknown key"),
    (GOOD.replace('"44:19:b6:00:00:11"', '"44:19:b6:00:00"'), "config error: devices[0].mac: "),
    ("devices: [\n", "YAML syntax error"),
])
def test_check_config_rejects_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                           message: str) -> None:
    assert main(["check-config", "-c", write(tmp_path, text)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", "-c", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"config error: {missing}: ")


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["check-config"],
    ["replay", "-c", "x.yaml"],
    ["replay", "a.pcap"],
    ["replay", "a.pcap", "-c", "x.yaml", "--workers", "0"],
    ["replay", "a.pcap", "-c", "x.yaml", "--workers", "many"],
    ["replay", "a.pcap", "-c", "x.yaml", "--bogus"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: egresswatch" in capsys.readouterr().err


def test_help_exits_0_and_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command.name in out for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_every_registered_command_loads(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    module, _, name = command.handler.partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert main([command.name, "--help"]) == 0
    assert f"usage: egresswatch {command.name}" in capsys.readouterr().out


def test_bpf_prints_the_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bpf", "-c", write(tmp_path, GOOD)]) == 0
    assert "10.20.0.2" in capsys.readouterr().out


def test_replay_reports_config_errors_before_reading_captures(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, GOOD.replace("role: nvr", "role: dvr"))
    assert main(["replay", str(tmp_path / "missing.pcap"), "-c", bad, "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("config error: devices[1].role: ")


# --- replay through the real pipeline ---------------------------------------------------------

CAMERA_MAC = bytes.fromhex("4419b6000011")
GATEWAY_MAC = bytes.fromhex("00005e005301")


def frame(src: str, dst: str, sport: int, dport: int, payload: bytes, src_mac: bytes,
          dst_mac: bytes) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_ACK, seq=1, ack=1, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, ttl=64,
                    data=tcp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


@pytest.fixture
def capture(tmp_path: Path) -> str:
    """Ten seconds of a camera pushing RTSP-port traffic to 203.0.113.9 (CN in the fixture DB)."""
    path = tmp_path / "camera.pcap"
    with open(path, "wb") as stream:
        writer = dpkt.pcap.Writer(stream)
        for i in range(20):
            ts = 1768204801.25 + i * 0.5
            writer.writepkt(frame("10.20.0.11", "203.0.113.9", 40000, 554, b"v" * 1000, CAMERA_MAC,
                                  GATEWAY_MAC), ts)
            writer.writepkt(frame("203.0.113.9", "10.20.0.11", 554, 40000, b"", GATEWAY_MAC, CAMERA_MAC),
                            ts + 0.01)
    return str(path)


@pytest.fixture
def geo_config(tmp_path: Path) -> str:
    write_country_db(tmp_path / "country.mmdb", {"203.0.113.0/24": "CN", "192.0.2.0/24": "GB"})
    return write(tmp_path, GOOD + "geoip:\n  country_db: country.mmdb\n")


def test_replay_writes_summary_events_and_metrics(tmp_path: Path, capture: str, geo_config: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    summary, events, metrics = tmp_path / "summary.json", tmp_path / "events.jsonl", tmp_path / "metrics.prom"
    argv = ["replay", capture, "-c", geo_config, "--no-progress", "--summary-json", str(summary),
            "--events", str(events), "--metrics-out", str(metrics)]
    assert main(argv) == 0
    result = json.loads(summary.read_text())
    assert result["totals"]["packets"] == 40
    (camera,) = [d for d in result["devices"] if d["name"] == "cam-entrance"]
    (row,) = camera["egress"]
    assert (row["country"], row["category"], row["verdict"]) == ("CN", "footage", "violation")
    assert row["packets_out"] == 20
    (alert,) = result["alerts"]
    assert alert["first_seen"] == "2026-01-12T08:00:01.250000Z"
    assert alert["bytes_out"] == row["bytes_out"]
    kinds = [json.loads(line)["event"]["kind"] for line in events.read_text().splitlines()]
    assert kinds.count("alert") == 1
    assert "event" in kinds
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert families["egresswatch_packets"].samples[0].value == 40
    out = capsys.readouterr().out
    assert "cam-entrance" in out
    assert "critical" in out


def test_replay_events_to_stdout_keep_the_table_off_stdout(capture: str, geo_config: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", capture, "-c", geo_config, "--no-progress", "--events", "-"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records
    assert "cam-entrance" in captured.err


@pytest.mark.parametrize("kind", ["missing", "not a capture"])
def test_replay_names_an_unreadable_capture(tmp_path: Path, geo_config: str, kind: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "input.pcap"
    if kind == "not a capture":
        path.write_text("this is not a pcap file\n" * 10)
    assert main(["replay", str(path), "-c", geo_config, "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: ")


def test_replay_warns_about_a_truncated_capture(tmp_path: Path, capture: str, geo_config: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(capture).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-30])
    assert main(["replay", str(cut), "-c", geo_config, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {cut}" in err
