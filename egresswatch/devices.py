"""Which device a flow endpoint belongs to: the inventory first, then cameras found by MAC vendor
(`egresswatch.oui`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

from egresswatch.config import UNASSIGNED_GROUP, DeviceSpec
from egresswatch.model import Device
from egresswatch.oui import CAMERA_VENDORS, vendor_of

_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class SiteNetworks(Protocol):
    """What the directory needs from the site's LocalNetworks (stages do not import each other)."""

    def is_local(self, ip: bytes) -> bool: ...


class LearnedBindings(Protocol):
    """Which MAC held an IP at a moment (bindings.BindingTable), learned from ARP, NDP and DHCP."""

    def mac_at(self, ip: bytes, ts: float) -> bytes | None: ...


class Identity(Protocol):
    name: str
    vendor: str | None
    role: str


class Evidence(Protocol):
    """What passive discovery (discovery.Discovery) concluded about a MAC, with a stable name."""

    revision: int
    """Changes whenever the identity `get` gives for some MAC may change."""

    def get(self, mac: bytes) -> Identity | None: ...


ATTRIBUTABLE_ROLES = frozenset(("camera", "nvr"))


class DeviceDirectory:
    """Inventory lookup (MAC, exact IP, longest CIDR) plus discovery of unlisted local cameras.

    With learned bindings, a flow's address is first turned into the MAC that held it when the
    flow began: behind a router (or in a raw-IP capture) that MAC is the host's, not the frame's.
    An inventory entry that has a MAC is not matched by its IP while a binding says another MAC
    holds that IP, so a laptop given a camera's old lease is not the camera.

    With evidence from discovery, an unlisted host is a device when discovery names a camera
    vendor or says it is a camera or NVR (an OEM camera whose SADP reply says Hikvision); without
    it, a camera vendor's OUI decides. A discovered device keeps the name it was first given;
    when later evidence changes its vendor or role, the same name carries the new ones.
    """

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        local: SiteNetworks,
        max_discovered: int = 65536,
        bindings: LearnedBindings | None = None,
        evidence: Evidence | None = None,
        max_answers: int = 16384,
    ) -> None:
        self._local = local
        self._bindings = bindings
        self._evidence = evidence
        self._by_mac: dict[bytes, Device] = {}
        self._by_ip: dict[bytes, Device] = {}
        self._mac_of: dict[str, bytes] = {}
        """Inventory device name -> its configured MAC."""
        # (address bits, prefix length, network number >> host bits, device), longest prefix first
        self._by_cidr: list[tuple[int, int, int, Device]] = []
        self._discovered: dict[bytes, Device] = {}
        self._max_discovered = max_discovered
        self._answers: dict[tuple[bytes | None, bytes, bytes | None], tuple[int, Device | None]] = {}
        """(MAC, IP, MAC holding the IP) -> (evidence revision, device): a site's hosts start flows
        with the same few peers over and over, and only discovery evidence changes the answer."""
        self._max_answers = max_answers
        for spec in specs:
            mac = bytes.fromhex(spec.mac.replace(":", "")) if spec.mac else None
            vendor = spec.vendor or (vendor_of(mac) if mac else None)
            device = Device(name=spec.name, group=spec.group, vendor=vendor, role=spec.role)
            if mac:
                self._by_mac[mac] = device
                self._mac_of[spec.name] = mac
            if spec.ip:
                self._by_ip[ipaddress.ip_address(spec.ip).packed] = device
            if spec.cidr:
                net = ipaddress.ip_network(spec.cidr)
                bits, plen = net.max_prefixlen, net.prefixlen
                self._by_cidr.append((bits, plen, int(net.network_address) >> (bits - plen), device))
        self._by_cidr.sort(key=lambda entry: entry[1], reverse=True)

    def lookup(self, mac: bytes | None, ip: bytes, ts: float = 0.0) -> Device | None:
        """The device behind a flow endpoint (6-byte MAC or None, packed IP) at packet time `ts`."""
        if mac is not None:
            if mac[0] & 1:
                mac = None  # multicast and broadcast MACs name no host
            else:
                device = self._by_mac.get(mac)
                if device is not None:
                    return device
        if len(ip) == 16 and ip[:12] == _V4_MAPPED_PREFIX:
            ip = ip[12:]
        learned = self._bindings.mac_at(ip, ts) if self._bindings is not None else None
        revision = self._evidence.revision if self._evidence is not None else 0
        key = (mac, ip, learned)
        known = self._answers.get(key)
        if known is not None and known[0] == revision:
            return known[1]
        device = self._resolve(mac, ip, learned)
        if key not in self._answers and len(self._answers) >= self._max_answers:
            del self._answers[next(iter(self._answers))]  # the oldest: bounded and O(1)
        self._answers[key] = (revision, device)
        return device

    def _resolve(self, mac: bytes | None, ip: bytes, learned: bytes | None) -> Device | None:
        """`lookup` past the frame's own inventory MAC, with `learned` the MAC that held `ip` then."""
        if learned is not None and learned != mac:
            device = self._by_mac.get(learned)  # routed or cooked traffic: the holder is the host
            if device is not None:
                return device
        device = self._by_ip.get(ip) or self._in_cidr(ip)
        if device is not None:
            own = self._mac_of.get(device.name)
            if own is None or learned is None or learned == own:
                return device
        for candidate in (mac,) if learned == mac else (mac, learned):
            if candidate is not None:
                device = self._discover(candidate, ip)
                if device is not None:
                    return device
        return None

    def _in_cidr(self, ip: bytes) -> Device | None:
        bits = len(ip) * 8
        value = int.from_bytes(ip, "big")
        for net_bits, plen, network, device in self._by_cidr:
            if net_bits == bits and value >> (bits - plen) == network:
                return device
        return None

    def _discover(self, mac: bytes, ip: bytes) -> Device | None:
        """An unlisted local host that discovery (or, without it, a camera vendor's OUI) names."""
        if not self._local.is_local(ip):
            return None  # e.g. the router's MAC carrying a remote address
        found = self._evidence.get(mac) if self._evidence is not None else None
        if found is not None and (found.vendor in CAMERA_VENDORS or found.role in ATTRIBUTABLE_ROLES):
            name, vendor, role = found.name, found.vendor, found.role
        else:
            vendor = vendor_of(mac)
            if vendor not in CAMERA_VENDORS:
                return None
            name, role = f"{vendor}-{mac.hex()}", "camera"
        device = self._discovered.get(mac)
        if device is not None and (device.vendor, device.role) == (vendor, role):
            return device
        device = Device(
            name=device.name if device is not None else name,
            group=UNASSIGNED_GROUP,
            vendor=vendor,
            role=role,
            discovered=True,
        )
        if mac not in self._discovered and len(self._discovered) >= self._max_discovered:
            # a flood of spoofed MACs must not grow memory without bound: forget the oldest, and
            # the answers that named it (rebuilt, it may carry a newer name)
            del self._discovered[next(iter(self._discovered))]
            self._answers.clear()
        self._discovered[mac] = device
        return device
