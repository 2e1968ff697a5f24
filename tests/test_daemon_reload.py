"""Reloading a running daemon: SIGHUP with a good config, a bad config on disk, a GeoIP DB swap."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.support.netns import daemon, veth_pair, write_config, write_site_pcap


def write_country_db(path: Path, country: str) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["203.0.113.0/24", "198.51.100.0/24"]), {"country": {"iso_code": country}})
    writer.to_db_file(str(path))



def test_good_reload_then_bad_config_keeps_the_old_one(tmp_path: Path) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap")
    with veth_pair() as pair:
        config = write_config(tmp_path / "site.yaml", pair.capture_if)
        with daemon(pair, config, tmp_path) as running:
            # Good: the inventory drops cam2 and SIGHUP applies it; cam2 is no longer attributed.
            text = config.read_text(encoding="utf-8")
            config.write_text("\n".join(line for line in text.splitlines() if "cam2" not in line) + "\n",
                              encoding="utf-8")
            running.process.send_signal(signal.SIGHUP)
            running.wait_for(lambda: running.metric("egresswatch_config_last_reload_success") == 1
                             and b"config reloaded" in (tmp_path / "daemon.log").read_bytes(), "good reload")
            # Bad: a typo on disk is noticed by its mtime, rejected, counted; capture goes on.
            config.write_text(text.replace("buffer_mb: 8", "bufer_mb: 8"), encoding="utf-8")
            os.utime(config, ns=(1, 1))
            running.wait_for(lambda: running.metric("egresswatch_config_reload_failures_total") == 1,
                             "rejected reload counted")
            assert running.metric("egresswatch_config_last_reload_success") == 0
            pair.replay(str(truth.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == truth.kept, "replay seen")
            assert running.stop() == 0
            records = running.event_records()
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "capture.bufer_mb: unknown key" in log
    ends = {r["source"]["ip"]: r for r in records if r["event"]["action"] == "flow_end"}
    assert ends["10.20.0.11"]["egresswatch"]["device"]["name"] == "cam1"
    # cam2 left the inventory: its Hikvision MAC now makes it a discovered, unassigned camera.
    device = ends["10.20.0.12"]["egresswatch"]["device"]
    assert (device["name"], device["group"]) == ("hikvision-4419b6000012", "unassigned")


def test_replaced_geoip_database_is_reopened(tmp_path: Path) -> None:
    truth = write_site_pcap(tmp_path / "site.pcap")
    database = tmp_path / "country.mmdb"
    write_country_db(database, "GB")
    with veth_pair() as pair:
        config = write_config(tmp_path / "site.yaml", pair.capture_if,
                              extra=f"geoip:\n  country_db: {database}\n")
        with daemon(pair, config, tmp_path) as running:
            pair.replay(str(truth.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == truth.kept, "replay 1")
            # geoipupdate's way: write the new file aside, rename it over the old one.
            write_country_db(tmp_path / "country.mmdb.new", "FR")
            (tmp_path / "country.mmdb.new").replace(database)
            running.wait_for(lambda: b"GeoIP database reopened" in (tmp_path / "daemon.log").read_bytes(),
                             "the reopen")
            # New flows (new source port) are placed with the new database.
            again = write_site_pcap(tmp_path / "again.pcap", sport_offset=100)
            pair.replay(str(again.path))
            running.wait_for(lambda: running.metric("egresswatch_packets_total") == 2 * again.kept, "again")
            assert running.stop() == 0
            records = running.event_records()
    found = {r["source"]["port"]: r["destination"]["geo"]["country_iso_code"] for r in records
             if r["event"]["action"] == "flow_end" and r["destination"]["ip"] == "203.0.113.5"}
    assert found == {40001: "GB", 40101: "FR"}
