"""The school's hosts and the remote addresses they talk to (see config/demo.yaml and README)."""

from __future__ import annotations

from capgen.wire import Host

RESOLVER = Host("10.20.0.53", "00:14:22:20:00:53")  # Dell server
PC = Host("10.20.2.15", "00:14:22:20:02:15")  # Dell office PC: not a camera OUI, not in the inventory
HIK_ENTRANCE = Host("10.20.1.11", "44:19:b6:20:01:11")
HIK_GYM = Host("10.20.1.12", "44:19:b6:20:01:12")
DAHUA_YARD = Host("10.20.1.21", "3c:ef:8c:20:01:21")
DAHUA_PARKING = Host("10.20.1.22", "3c:ef:8c:20:01:22")
NVR = Host("10.20.1.2", "44:19:b6:20:01:02")
HIK_STRAY = Host("10.20.1.99", "44:19:b6:20:01:99")  # not in the inventory: hikvision-4419b6200199
DAHUA_STRAY = Host("10.20.1.98", "3c:ef:8c:20:01:98")  # not in the inventory: dahua-3cef8c200198
GATEWAY_IP = "10.20.0.1"

# Remote ends (fixture geography in capgen/geoip.py)
HIK_CLOUD = Host("198.51.100.21")  # CN, dev.hik-connect.com (Hik-Connect)
EZVIZ_CLOUD = Host("198.51.100.22")  # CN, SNI only
CN_FOOTAGE = Host("198.51.100.30")  # CN, an RTSP server abroad
CN_VIDEO_SINK = Host("198.51.100.40")  # CN, unidentified UDP video
CN_BULK = Host("198.51.100.50")  # CN, fragmented UDP
PC_CN = Host("198.51.100.10")  # CN
DAHUA_CLOUD = Host("198.51.100.140")  # DE, eu.easy4ipcloud.com (Dahua P2P, operator in CN)
DAHUA_CLOUD_B = Host("198.51.100.141")  # DE
US_CLOUD = Host("203.0.113.10")  # US
US_FOOTAGE = Host("203.0.113.50")  # US
US_TELEMETRY = Host("203.0.113.60")  # US
UK_FOOTAGE = Host("203.0.113.150")  # GB, not the backup
BACKUP = Host("203.0.113.200")  # GB, the NVR's offsite backup
NTP_SERVER = Host("192.0.2.123")  # IE
IE_SERVICE = Host("192.0.2.80")  # IE
IE_PING = Host("192.0.2.1")  # IE

HIK_CLOUD_NAME = "dev.hik-connect.com"
EZVIZ_NAME = "api.ezvizlife.com"
DAHUA_CLOUD_NAME = "eu.easy4ipcloud.com"
BACKUP_NAME = "offsite-backup.example.org"
IE_SERVICE_NAME = "status.example.net"
IMOU_NAME = "p2p.imoulife.com"
HIK_RELAY_NAME = "relay.hik-connect.com"
NTP_NAME = "pool.ntp.org"
DAHUA_RELAY_NAME = "relay.easy4ipcloud.com"
