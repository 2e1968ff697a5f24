"""The kernel pre-filter: a BPF expression generated from the inventory.

On a camera VLAN most bytes are camera -> NVR video that never leaves the site. Dropping it in the
kernel (before libpcap copies it to user space) is what lets one Python process keep up with a
busy span port. The filter keeps:

- traffic with an inventory IP (or the MAC of a device listed without one), or a camera-vendor OUI
  on either end, unless both IP ends are local (that is the camera -> NVR bulk);
- whatever attribution needs regardless of who sends it: DNS (names for destinations), DHCP and
  ARP/NDP (MAC <-> IP bindings), discovery protocols (finding uninventoried cameras);
- tunnel encapsulations (GRE, which carries ERSPAN, and VXLAN), so an encapsulated mirror passes
  whole; the pipeline decodes the inner frames;
- ``capture.bpf_extra``, OR-ed in: an operator's "also keep this".

For capture files every clause is repeated behind ``vlan``: libpcap's ``vlan`` keyword moves the
offsets of every primitive after it, so the untagged form comes first and the tagged form last. On
a live Linux socket the kernel has already taken the 802.1Q tag out of the frame, and the daemon
installs the untagged form alone (``build_filter(live=True)``; `filter_expression` says why).

What a frame costs: the site's vendors have ~140 OUIs, tested on both ends. One ``==`` after
another, a frame without a camera OUI (office traffic) ran ~330 instructions; the OUI sets are a
binary search instead (`_oui_search`), ~12 instructions per end. The device clause tests the OUIs
first: the camera -> NVR bulk then leaves it at its source OUI, and libpcap's optimizer makes the
smallest program of that order (measured with libpcap 1.10 on the site mix: 1464 instructions,
~52 run per frame on average, against 1438 and ~128 for the linear tests; putting "both ends
local" first saves ~2 per frame and costs ~500 instructions, too close to `BPF_BUDGET`).
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pcapy

from egresswatch.config import Config, ConfigError, load_config
from egresswatch.oui import CAMERA_VENDORS, ouis_for, vendor_of
from egresswatch.workers import share_filter

DNS = "port 53"
DHCP = "udp port 67 or udp port 68 or udp port 546 or udp port 547"
NDP = "icmp6 and (icmp6[0] == 135 or icmp6[0] == 136)"
DISCOVERY_UDP_PORTS = (3702, 37020, 37810, 5050, 1900, 5353)
"""WS-Discovery/ONVIF, Hikvision SADP, Dahua discovery, vendor search, SSDP, mDNS."""
TUNNELS = "ip proto 47 or ip6 proto 47 or udp port 4789"
"""GRE (ERSPAN types I-III ride on it) and VXLAN."""


@dataclass(frozen=True, slots=True)
class FilterInputs:
    """What the filter is built from, already normalised; `build_filter` fills it from a Config."""

    macs: tuple[str, ...] = ()
    """MACs of inventory devices listed without an address, lower-case colon form."""
    networks: tuple[str, ...] = ()
    """Inventory IPs and CIDRs."""
    ouis: tuple[bytes, ...] = ()
    """3-byte camera-vendor OUIs."""
    local: tuple[str, ...] = ()
    """Networks that never leave the site (``networks.local``)."""
    extra: str = ""


BPF_MAXINSNS = 4096
"""The kernel's limit on a classic BPF program (include/uapi/linux/bpf_common.h)."""
BPF_BUDGET = BPF_MAXINSNS // 2
"""What we allow the offline-compiled program. On a live Linux socket libpcap compiles ``vlan``
into auxiliary-data checks and the program grows: one of 3534 instructions offline was refused
by the kernel live, and libpcap then filters in user space without a word."""


def build_filter(config: Config, *, live: bool = False) -> str:
    """The BPF expression for ``config``, compiled once here so that a bad ``capture.bpf_extra`` or an
    inventory too large for the kernel is a config error (with its key) rather than a capture crash.

    ``live``: the form for a live Linux socket (see `filter_expression`). With several workers each
    one's socket also filters its share of the address pairs, so the budget is checked on the
    largest combination, worker 0's."""
    expression = filter_expression(inputs_from_config(config), tags_in_frame=not live)
    checked = expression
    if live and config.capture.workers > 1:
        checked = f"({share_filter(0, config.capture.workers, tags_in_frame=False)}) and ({expression})"
    try:
        program = pcapy.compile(pcapy.DLT_EN10MB, config.capture.snaplen, checked, 1, 0)
    except pcapy.PcapError as exc:
        raise ConfigError("capture.bpf_extra", f"the capture filter does not compile: {exc}") from exc
    size = len(program.get_bpf())
    if size > BPF_BUDGET:
        raise ConfigError("devices", f"the capture filter needs {size} BPF instructions, more than the "
                          f"{BPF_BUDGET} that fit a live socket; list devices by ip or cidr, not by mac only")
    return expression


def bpf_command(args: argparse.Namespace) -> int:
    """``egresswatch bpf -c CONFIG [--file]``: print the generated filter, as the daemon installs it on
    a live interface (for tcpdump -i), or with ``--file`` the form for capture files (tcpdump -r)."""
    print(build_filter(load_config(args.config), live=not args.file))
    return 0


def inputs_from_config(config: Config) -> FilterInputs:
    """Collect addresses, address-less MACs and camera-vendor OUIs from the inventory.

    OUIs are those of the camera vendors the site has: every vendor named by an inventory device or
    recognised from an inventory MAC. A second camera of the same make is then kept before anyone
    lists it. Not every known camera vendor: 435 OUIs, tested on both ends and behind ``vlan``,
    make a program the kernel refuses, and libpcap then silently filters in user space.
    """
    macs: list[str] = []
    networks: list[str] = []
    vendors: set[str] = set()
    for device in config.devices:
        if device.vendor:
            vendors.add(device.vendor)
        if device.mac:
            vendors.add(vendor_of(_mac_bytes(device.mac)) or "")
            # A listed address identifies the device more cheaply (addresses collapse into a few
            # networks; every MAC costs ~16 instructions), so only address-less devices need their MAC.
            if not device.ip and not device.cidr:
                macs.append(device.mac)
        if device.ip:
            networks.append(str(device.ip))
        if device.cidr:
            networks.append(str(device.cidr))
    ouis = {oui for slug in vendors & CAMERA_VENDORS for oui in ouis_for(slug)}
    return FilterInputs(
        macs=tuple(macs),
        networks=tuple(networks),
        ouis=tuple(sorted(ouis)),
        local=tuple(str(net) for net in config.local_networks),
        extra=config.capture.bpf_extra.strip(),
    )


def filter_expression(inputs: FilterInputs, *, tags_in_frame: bool = True) -> str:
    """Assemble the expression; see the module docstring for what each part is for.

    ``tags_in_frame=False`` is for a live Linux socket: the kernel has taken the 802.1Q tag out of
    the frame before the filter runs, so the untagged form alone sees every single-tagged frame's
    headers. The ``vlan`` form is left out there, and not only as dead weight: libpcap 1.10 compiles
    ``(...) or (vlan and (...))`` wrongly for a socket, and the OUI search then let the tagged
    camera -> NVR bulk through (tests/test_live_netns.py). A QinQ frame keeps its inner tag in the
    frame and is not IP to the untagged form: on a live socket only its DNS, DHCP, ARP and
    discovery frames are not kept either (docs/deployment.md).
    """
    core = _or(
        _and(_device_clause(inputs), _not(_both_local(inputs.local))),
        DNS,
        DHCP,
        "arp",
        NDP,
        " or ".join(f"udp port {port}" for port in DISCOVERY_UDP_PORTS),
        TUNNELS,
    )
    parts = [inputs.extra] if inputs.extra else []
    if not tags_in_frame:
        return _or(*parts, core)
    # The untagged form must not see a frame that still carries its tag (a file, or a mirror that
    # keeps tags): its IP tests would read the tag as the ethertype, find no IP, and "not both
    # local" would let the camera -> NVR bulk through.
    parts += [f"ether[12:2] != 0x8100 and ({core})", f"vlan and ({core})"]
    return _or(*parts)


def _device_clause(inputs: FilterInputs) -> str:
    # MACs whose OUI is already matched would only lengthen the program.
    oui_set = set(inputs.ouis)
    macs = [mac for mac in dict.fromkeys(inputs.macs) if _mac_bytes(mac)[:3] not in oui_set]
    # ether[6:4] is the source OUI plus one byte, ether[0:4] the destination's.
    terms = [_oui_search("ether[6:4]", inputs.ouis), _oui_search("ether[0:4]", inputs.ouis)]
    terms += [f"ether host {mac}" for mac in macs]
    terms += [_host_or_net(net) for net in _collapse(inputs.networks)]
    return _or(*terms)


OUI_SEARCH_LEAF = 4
"""OUIs a search leaves to ``==`` tests one after another: on the site mix 4 gave the smallest
program with no more instructions run per frame than 1 to 3 (8 runs ~2 more)."""


def _oui_search(field: str, ouis: Sequence[bytes]) -> str:
    """``field``'s first 3 bytes are one of the sorted ``ouis``: a binary search on pivots.

    Pivots compare the masked field, like the leaves: the accumulator then holds one value
    throughout and libpcap loads it once (comparing the bare field, also exact since a pivot's low
    byte is 0, made the site mix's search 224 instructions instead of 183)."""
    masked = f"{field} & 0xffffff00"
    if len(ouis) <= OUI_SEARCH_LEAF:
        return _or(*(f"{masked} == 0x{oui.hex()}00" for oui in ouis))
    middle = len(ouis) // 2
    pivot = f"0x{ouis[middle].hex()}00"
    below, above = _oui_search(field, ouis[:middle]), _oui_search(field, ouis[middle:])
    return f"({masked} < {pivot} and ({below})) or ({masked} >= {pivot} and ({above}))"


def _both_local(local: Iterable[str]) -> str:
    nets = _collapse(local)
    if not nets:
        return ""
    src = " or ".join(f"src net {net}" for net in nets)
    dst = " or ".join(f"dst net {net}" for net in nets)
    return f"({src}) and ({dst})"


def _collapse(networks: Iterable[str]) -> list[str]:
    """Merge overlapping and adjacent networks per family: fewer BPF instructions."""
    parsed = [ipaddress.ip_network(net, strict=False) for net in networks]
    out: list[str] = []
    for version in (4, 6):
        family = [net for net in parsed if net.version == version]
        out += [str(net) for net in ipaddress.collapse_addresses(family)]  # type: ignore[arg-type]
    return out


def _host_or_net(net: str) -> str:
    network = ipaddress.ip_network(net)
    if network.num_addresses == 1:
        return f"host {network.network_address}"
    return f"net {network}"


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _or(*terms: str) -> str:
    present = [term for term in terms if term]
    if len(present) == 1:
        return present[0]
    return " or ".join(f"({term})" for term in present)


def _and(left: str, right: str) -> str:
    if not left:
        return ""
    return f"({left}) and ({right})" if right else left


def _not(term: str) -> str:
    return f"not ({term})" if term else ""
