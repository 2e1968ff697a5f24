"""Geo: fixture MaxMind DBs read with the real maxminddb, the iptocc fallback, cache, reopen."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_geo import write_asn_db, write_country_db
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from egresswatch.config import GeoIPConfig
from egresswatch.geo import Geo, GeoError
from egresswatch.model import Place

COUNTRIES = {
    "198.51.100.0/25": "CN",
    "198.51.100.128/25": "DE",
    "203.0.113.0/24": "US",
    "2001:db8:1::/48": "CN",
    "2001:db8:2::/48": "DE",
}
ASNS = {"198.51.100.0/24": (64500, "Example Transit"), "2001:db8:1::/48": (64501, "Example Cloud")}


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.fixture
def dbs(tmp_path: Path) -> tuple[Path, Path]:
    country = write_country_db(tmp_path / "country.mmdb", COUNTRIES, registered={"192.0.2.0/24": "GB"})
    asn = write_asn_db(tmp_path / "asn.mmdb", ASNS)
    return country, asn


@pytest.fixture
def geo(dbs: tuple[Path, Path]) -> Iterator[Geo]:
    g = Geo(GeoIPConfig(country_db=dbs[0], asn_db=dbs[1], cache_size=16))
    yield g
    g.close()


@pytest.mark.parametrize(
    ("address", "place"),
    [
        ("198.51.100.7", Place("CN", 64500, "Example Transit", "Fixture-Country")),
        ("198.51.100.200", Place("DE", 64500, "Example Transit", "Fixture-Country")),
        ("203.0.113.9", Place("US", None, None, "Fixture-Country")),
        ("192.0.2.1", Place("GB", None, None, "Fixture-Country")),  # registered_country only
        ("2001:db8:1::5", Place("CN", 64501, "Example Cloud", "Fixture-Country")),
        ("2001:db8:2::5", Place("DE", None, None, "Fixture-Country")),
        ("2001:db8:3::5", Place("ZZ", None, None, "Fixture-Country")),
        ("::ffff:198.51.100.200", Place("DE", 64500, "Example Transit", "Fixture-Country")),
        ("10.0.0.1", Place("ZZ", None, None, "Fixture-Country")),
    ],
)
def test_locate(geo: Geo, address: str, place: Place) -> None:
    assert geo.locate(ip(address)) == place


def test_country_db_alone_leaves_asn_empty(dbs: tuple[Path, Path]) -> None:
    geo = Geo(GeoIPConfig(country_db=dbs[0]))
    assert geo.locate(ip("198.51.100.7")) == Place("CN", None, None, "Fixture-Country")
    geo.close()


def test_ipv4_only_database_answers_zz_for_ipv6(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="V4-Only")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "FR"}})
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    geo = Geo(GeoIPConfig(country_db=tmp_path / "v4.mmdb"))
    assert geo.locate(ip("198.51.100.1")).country == "FR"
    assert geo.locate(ip("2001:db8:1::1")) == Place("ZZ", None, None, "V4-Only")
    geo.close()


def test_build_timestamps(geo: Geo) -> None:
    stamps = geo.build_timestamps()
    assert set(stamps) == {"Fixture-Country", "Fixture-ASN"}
    assert all(isinstance(v, int) and v > 1_600_000_000 for v in stamps.values())


def test_cache_is_bounded_and_still_correct(geo: Geo) -> None:
    for i in range(64):
        assert geo.locate(bytes([198, 51, 100, i])).country == "CN"
        assert geo.locate(bytes([198, 51, 100, 128 + i])).country == "DE"
    assert len(geo._cache) == 16  # whitebox: the bound is the point of this test
    assert geo.locate(bytes([198, 51, 100, 0])).country == "CN"


def test_iptocc_fallback_without_country_db() -> None:
    geo = Geo(GeoIPConfig(country_db=None, fallback="iptocc"))
    # a lookup of a public address in embedded data, nothing is sent anywhere
    assert geo.locate(ip("8.8.8.8")) == Place("US", None, None, "iptocc")
    assert geo.locate(ip("::ffff:8.8.8.8")).country == "US"
    assert geo.locate(ip("198.51.100.1")) == Place("ZZ", None, None, "iptocc")  # documentation range
    assert geo.build_timestamps() == {}


def test_iptocc_fallback_with_asn_db(dbs: tuple[Path, Path]) -> None:
    geo = Geo(GeoIPConfig(asn_db=dbs[1]))
    assert geo.locate(ip("198.51.100.1")) == Place("ZZ", 64500, "Example Transit", "iptocc")
    assert set(geo.build_timestamps()) == {"Fixture-ASN"}


def test_no_country_source_refuses_to_start() -> None:
    with pytest.raises(GeoError, match=r"set geoip\.country_db"):
        Geo(GeoIPConfig(country_db=None, fallback="none"))


@pytest.mark.parametrize("which", ["country_db", "asn_db"])
def test_not_a_mmdb_names_the_file(tmp_path: Path, dbs: tuple[Path, Path], which: str) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"this is not a MaxMind DB" * 100)
    paths = {"country_db": dbs[0], "asn_db": dbs[1], which: bogus}
    with pytest.raises(GeoError, match=re.escape(f"{bogus} is not a MaxMind DB")):
        Geo(GeoIPConfig(**paths))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match=r"absent\.mmdb"):
        Geo(GeoIPConfig(country_db=tmp_path / "absent.mmdb"))


def test_reopen_after_replace_by_rename(geo: Geo, dbs: tuple[Path, Path], tmp_path: Path) -> None:
    assert geo.reopen_if_changed() is False
    assert geo.locate(ip("203.0.113.9")).country == "US"
    staged = write_country_db(tmp_path / "staged.mmdb", {"203.0.113.0/24": "JP"}, database_type="Next")
    os.replace(staged, dbs[0])
    assert geo.reopen_if_changed() is True
    assert geo.locate(ip("203.0.113.9")) == Place("JP", None, None, "Next")  # cache was dropped
    assert geo.build_timestamps().keys() == {"Next", "Fixture-ASN"}
    assert geo.reopen_if_changed() is False


def test_bad_replacement_is_reported_once_and_old_db_keeps_serving(
    geo: Geo, dbs: tuple[Path, Path], tmp_path: Path
) -> None:
    staged = tmp_path / "broken.mmdb"
    staged.write_bytes(b"truncated download")
    os.replace(staged, dbs[1])
    with pytest.raises(GeoError, match="is not a MaxMind DB"):
        geo.reopen_if_changed()
    assert geo.reopen_if_changed() is False
    assert geo.locate(ip("198.51.100.7")).asn == 64500


def test_deleted_file_keeps_the_open_reader(geo: Geo, dbs: tuple[Path, Path]) -> None:
    dbs[0].unlink()
    assert geo.reopen_if_changed() is False
    assert geo.locate(ip("198.51.100.7")).country == "CN"


def test_close_is_idempotent(geo: Geo) -> None:
    geo.close()
    geo.close()
