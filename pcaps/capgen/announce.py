"""What cameras say about themselves on the LAN (SADP, DHIP, WS-Discovery, SSDP) and DHCP.

Each sender marks its frame with what it means for the truth (`Record.announce`, `.bindings`):
the generator states the vendor and role an announcement makes its host, and which address a
DHCP ACK or release binds, and the truth follows those records.
"""

from __future__ import annotations

import json
import socket
import struct

import dpkt

from capgen.frames import mac_bytes
from capgen.sessions import udp_send
from capgen.wire import Host, Wire

SADP_PORT, DHIP_PORT, WSD_PORT, SSDP_PORT = 37020, 37810, 3702, 1900
SADP_GROUP = Host("239.255.255.250", "01:00:5e:7f:ff:fa")
DHIP_GROUP = Host("239.255.255.251", "01:00:5e:7f:ff:fb")
WSD_GROUP = SADP_GROUP
BROADCAST = Host("255.255.255.255", "ff:ff:ff:ff:ff:ff")
DHCP_SERVER = Host("10.20.0.1", "00:1b:54:20:00:01")
DHCP_ACK, DHCP_RELEASE, DHCP_REQUEST = 5, 7, 3


def sadp_hello(wire: Wire, t: float, host: Host, model: str, role: str, firmware: str) -> None:
    """An unsolicited SADP Hello (Hikvision firmware, whatever the OUI) to 239.255.255.250:37020."""
    assert host.mac is not None
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Hello><Uuid>{host.mac.replace(":", "")}</Uuid>'
        f"<Types>hello</Types><DeviceType>{'NVR' if role == 'nvr' else 'IPC'}</DeviceType>"
        f"<DeviceDescription>{model}</DeviceDescription><DeviceSN>{model}2026{host.mac[-5:].replace(':', '')}"
        f"</DeviceSN><MAC>{host.mac.replace(':', '-')}</MAC><IPv4Address>{host.ip}</IPv4Address>"
        f"<SoftwareVersion>{firmware}</SoftwareVersion><Activated>true</Activated>"
        "<SupportHCPlatform>true</SupportHCPlatform><HCPlatformEnable>true</HCPlatformEnable></Hello>"
    ).encode()
    udp_send(wire, t, host, SADP_GROUP, SADP_PORT, SADP_PORT, body)
    wire.mark_last(announce=(host.mac, "hikvision", role))


def dhip_notify(wire: Wire, t: float, host: Host, model: str, device_class: str, role: str) -> None:
    """A DHIP client.notifyDevInfo (Dahua firmware) to 239.255.255.251:37810."""
    assert host.mac is not None
    info = {
        "DeviceType": model,
        "DeviceClass": device_class,
        "SerialNo": f"7K0{host.mac[-5:].replace(':', '')}PAZ",
        "Version": "2.840.0000000.18.R",
        "Vendor": "Dahua",
        "IPv4Address": {"IPAddress": host.ip},
    }
    body = json.dumps({"method": "client.notifyDevInfo", "mac": host.mac, "params": {"deviceInfo": info}})
    data = body.encode()
    header = struct.pack("<I4sIIIIII", 32, b"DHIP", 0, 0, len(data), 0, len(data), 0)
    udp_send(wire, t, host, DHIP_GROUP, DHIP_PORT, DHIP_PORT, header + data)
    wire.mark_last(announce=(host.mac, "dahua", role))


def wsd_probe_match(wire: Wire, t: float, host: Host, to: Host, name: str, vendor: str) -> None:
    """An ONVIF WS-Discovery ProbeMatch (a NetworkVideoTransmitter) answering a probe from `to`."""
    assert host.mac is not None
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><env:Envelope '
        'xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><env:Header><wsa:Action>'
        "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></env:Header>"
        "<env:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>"
        f"urn:uuid:00000000-0000-0000-0000-{host.mac.replace(':', '')}</wsa:Address>"
        "</wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>"
        "onvif://www.onvif.org/type/video_encoder "
        f"onvif://www.onvif.org/name/{name} onvif://www.onvif.org/hardware/{name}</d:Scopes>"
        f"<d:XAddrs>http://{host.ip}/onvif/device_service</d:XAddrs><d:MetadataVersion>1"
        "</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>"
    ).encode()
    udp_send(wire, t, host, to, WSD_PORT, 40000 + int(host.mac[-2:], 16), body)
    wire.mark_last(announce=(host.mac, vendor, "camera"))


def ssdp_notify(wire: Wire, t: float, host: Host, server: str, vendor: str) -> None:
    """An SSDP NOTIFY ssdp:alive (UPnP) whose SERVER names the maker."""
    assert host.mac is not None
    body = (
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
        f"LOCATION: http://{host.ip}:49152/description.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
        f"SERVER: {server}\r\nUSN: uuid:{host.mac.replace(':', '')}::upnp:rootdevice\r\n\r\n"
    ).encode()
    udp_send(wire, t, host, SADP_GROUP, SSDP_PORT, SSDP_PORT, body)
    wire.mark_last(announce=(host.mac, vendor, "camera"))


def dhcp_ack(wire: Wire, t: float, client: Host, hostname: str) -> None:
    """The server's DHCPACK giving `client.ip` to `client.mac` (broadcast, as for a new client)."""
    assert client.mac is not None
    options = (
        (dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([DHCP_ACK])),
        (dpkt.dhcp.DHCP_OPT_HOSTNAME, hostname.encode()),
    )
    message = dpkt.dhcp.DHCP(
        op=dpkt.dhcp.DHCP_OP_REPLY,
        chaddr=mac_bytes(client.mac),
        yiaddr=struct.unpack("!I", socket.inet_aton(client.ip))[0],
        opts=options,
    )
    udp_send(wire, t, DHCP_SERVER, BROADCAST, 67, 68, bytes(message))
    wire.mark_last(bindings=((client.ip, client.mac),))


def dhcp_release(wire: Wire, t: float, client: Host) -> None:
    """The client's DHCPRELEASE of `client.ip` (unicast to the server)."""
    assert client.mac is not None
    message = dpkt.dhcp.DHCP(
        op=dpkt.dhcp.DHCP_OP_REQUEST,
        chaddr=mac_bytes(client.mac),
        ciaddr=struct.unpack("!I", socket.inet_aton(client.ip))[0],
        opts=((dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([DHCP_RELEASE])),),
    )
    udp_send(wire, t, client, DHCP_SERVER, 68, 67, bytes(message))
    wire.mark_last(bindings=((client.ip, None),))
