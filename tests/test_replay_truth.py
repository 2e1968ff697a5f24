"""End to end: ``egresswatch replay --summary-json`` on every generated capture equals its truth.

The truth files are written by pcaps/generate.py from its own record of what it put on the wire
(never by running egresswatch); pcaps/README.md documents the semantics they encode.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from egresswatch.cli import main

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
CONFIG = str(ROOT / "config" / "demo.yaml")
CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
PCAP_HEADER, RECORD_HEADER = 24, 16


def replay(capture: Path, out: Path) -> int:
    return main(["replay", str(capture), "-c", CONFIG, "--summary-json", str(out)])


@pytest.mark.parametrize("capture", CAPTURES)
def test_summary_equals_ground_truth(capture: str, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    assert replay(PCAPS / capture, out) == 0
    truth = json.loads((PCAPS / (capture.rsplit(".", 1)[0] + ".truth.json")).read_text())
    summary = json.loads(out.read_text())
    # Compare the parts first so a failure points at what differs, then the whole document.
    assert summary["totals"] == truth["totals"]
    assert [d["name"] for d in summary["devices"]] == [d["name"] for d in truth["devices"]]
    for got, expected in zip(summary["devices"], truth["devices"], strict=True):
        assert got == expected, got["name"]
    assert summary["alerts"] == truth["alerts"]
    assert summary == truth


def _cut_record(path: Path) -> tuple[int, int]:
    """(1-based number, byte offset) of the first record the file does not hold in full."""
    blob = path.read_bytes()
    offset, number = PCAP_HEADER, 1
    while offset + RECORD_HEADER <= len(blob):
        caplen = struct.unpack_from("<I", blob, offset + 8)[0]
        if offset + RECORD_HEADER + caplen > len(blob):
            break
        offset += RECORD_HEADER + caplen
        number += 1
    return number, offset


def test_truncated_file_says_where_it_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = PCAPS / "truncated.pcap"
    number, offset = _cut_record(capture)
    assert offset < capture.stat().st_size, "the fixture must end inside a record"
    assert replay(capture, tmp_path / "summary.json") == 0
    err = capsys.readouterr().err
    assert "truncated.pcap" in err
    assert re.search(rf"\bpacket {number}\b", err), err
    assert re.search(rf"\b{offset}\b", err), err


def test_missing_file_is_exit_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-capture.pcap"
    assert replay(missing, tmp_path / "summary.json") == 2
    assert "no-such-capture.pcap" in capsys.readouterr().err


def test_non_capture_file_is_exit_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes-not-a-capture.pcap"
    text.write_text("this is a text file, not a packet capture\n" * 4)
    assert replay(text, tmp_path / "summary.json") == 2
    assert "notes-not-a-capture.pcap" in capsys.readouterr().err
