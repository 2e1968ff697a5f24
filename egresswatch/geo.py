"""Where a remote address is: MaxMind DBs read with `maxminddb`, a bounded cache, live reopen.

Looked up once per flow destination, never per packet; answers are cached by packed address.
Any MaxMind DB with `country.iso_code` works for the country (GeoIP2/GeoLite2 Country or City,
DB-IP, IPinfo); `registered_country.iso_code` is the fallback for ranges that only carry that
(anycast, satellite). The ASN DB uses the GeoLite2-ASN field names.

Without `geoip.country_db` the `iptocc` package answers, when `geoip.fallback` is "iptocc".
Evaluated as installed (3.3.170): offline (the RIR delegation data is compiled into the wheel, no
file or network I/O), refreshed nightly from the five RIRs and released with it, one call
`country_code(str) -> str | None` at well under a microsecond. It reports the country a block
is *registered* to, which agrees with MaxMind for ~95 % of IPv4 (its README), and it has no AS
data, so events say `source: "iptocc"` and the ASN stays empty unless an ASN DB is set.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import iptocc
import maxminddb

from egresswatch.config import GeoIPConfig
from egresswatch.model import UNKNOWN_COUNTRY, Place

_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
IPTOCC_SOURCE = "iptocc"


class GeoError(Exception):
    """A geolocation source that cannot be used; the message tells the operator what to fix."""


def _signature(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class _Database:
    """One open MaxMind DB and the file identity it was opened from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.signature = _signature(path)
            self.reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
        except maxminddb.InvalidDatabaseError as exc:
            raise GeoError(f"{path} is not a MaxMind DB file ({exc})") from exc
        except (OSError, ValueError) as exc:
            raise GeoError(f"cannot open GeoIP database {path}: {exc}") from exc
        metadata = self.reader.metadata()
        self.name: str = metadata.database_type
        self.build_epoch: int = metadata.build_epoch

    def record(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict:
        try:
            record = self.reader.get(address)
        except ValueError:  # an IPv6 address asked of an IPv4-only database
            return {}
        return record if isinstance(record, dict) else {}


class Geo:
    """Country and AS of remote addresses, with a bounded cache of `cfg.cache_size` answers."""

    def __init__(self, cfg: GeoIPConfig) -> None:
        if cfg.country_db is None and cfg.fallback != IPTOCC_SOURCE:
            raise GeoError(
                "no country database: set geoip.country_db to a MaxMind DB with country.iso_code "
                "(e.g. GeoLite2-Country.mmdb), or geoip.fallback: iptocc to use RIR registration data"
            )
        self._country = _Database(cfg.country_db) if cfg.country_db else None
        try:
            self._asn = _Database(cfg.asn_db) if cfg.asn_db else None
        except GeoError:
            self.close()
            raise
        self._cache: dict[bytes, Place] = {}
        self._cache_size = cfg.cache_size

    def locate(self, ip: bytes) -> Place:
        """The place of a packed 4- or 16-byte address; IPv4-mapped IPv6 is looked up as IPv4."""
        place = self._cache.get(ip)
        if place is not None:
            return place
        address = ipaddress.ip_address(ip[12:] if ip[:12] == _V4_MAPPED_PREFIX else ip)
        if self._country is not None:
            record = self._country.record(address)
            code = (record.get("country") or {}).get("iso_code") or (
                (record.get("registered_country") or {}).get("iso_code")
            )
            source = self._country.name
        else:
            code = iptocc.country_code(str(address))
            source = IPTOCC_SOURCE
        asn = org = None
        if self._asn is not None:
            record = self._asn.record(address)
            asn = record.get("autonomous_system_number")
            org = record.get("autonomous_system_organization")
        place = Place(country=code or UNKNOWN_COUNTRY, asn=asn, as_org=org, source=source)
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]  # oldest first: bounded and O(1)
        self._cache[ip] = place
        return place

    def reopen_if_changed(self) -> bool:
        """Reopen any database whose file was replaced or rewritten; True when one was.

        A file that is briefly missing keeps the open reader (an atomic rename never leaves a gap,
        a deletion is no reason to stop). A replacement that is not a valid DB raises GeoError once
        and the old reader stays in service until the file changes again.
        """
        changed = False
        for attr in ("_country", "_asn"):
            db: _Database | None = getattr(self, attr)
            if db is None:
                continue
            try:
                signature = _signature(db.path)
            except OSError:
                continue
            if signature == db.signature:
                continue
            db.signature = signature  # a bad replacement is reported once, not on every poll
            fresh = _Database(db.path)
            db.reader.close()
            setattr(self, attr, fresh)
            changed = True
        if changed:
            self._cache.clear()
        return changed

    def build_timestamps(self) -> dict[str, int]:
        """Database type (e.g. "GeoLite2-Country") -> build time, seconds since the epoch."""
        return {db.name: db.build_epoch for db in (self._country, self._asn) if db is not None}

    def close(self) -> None:
        for attr in ("_country", "_asn"):
            db = getattr(self, attr, None)
            if db is not None:
                db.reader.close()
                setattr(self, attr, None)
