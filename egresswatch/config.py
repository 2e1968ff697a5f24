"""YAML configuration -> frozen dataclasses; every error names its key path.

The schema is docs/configuration.md. Validation is strict on purpose: a typo in a monitoring
config does not fail loudly at run time, it silently changes what is judged a violation, so
unknown keys, wrong types and malformed values are all rejected here with the dotted key path
(`groups.cameras.allow[1].countrys: unknown key`).

Groups: "unassigned" (discovered devices) and "default" (devices that name no group) always
exist, with no allow rules unless configured. A device that names any other group must name one
defined under `groups`: a misspelt group would otherwise give a camera no allow rules and turn
every one of its flows into a violation, which reads like an incident rather than a typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import pwd
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from egresswatch.model import CATEGORIES, ROLES

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")

UNASSIGNED_GROUP = "unassigned"
DEFAULT_GROUP = "default"
BUILTIN_GROUPS = (UNASSIGNED_GROUP, DEFAULT_GROUP)

DEFAULT_LOCAL_NETWORKS = (
    *("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"),
    *("127.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "fc00::/7", "fe80::/10", "::1/128", "ff00::/8"),
)

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")
_LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
# colon or dash pairs (one separator throughout), Cisco dotted quads, or bare hex
_MAC_RE = re.compile(
    r"[0-9a-f]{2}([:-])([0-9a-f]{2}\1){4}[0-9a-f]{2}|([0-9a-f]{4}\.){2}[0-9a-f]{4}|[0-9a-f]{12}"
)


class ConfigError(Exception):
    """A config value that cannot be used; `key` is its dotted path, e.g. `devices[2].mac`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    mac: str | None
    """Lower-case colon form, e.g. "44:19:b6:00:00:11"."""
    ip: str | None
    cidr: str | None
    group: str
    vendor: str | None
    role: str


@dataclasses.dataclass(frozen=True, slots=True)
class AllowRule:
    """One allow rule: every matcher that is not None must match (None = not constrained)."""

    categories: frozenset[str] | None = None
    countries: frozenset[str] | None = None
    asns: frozenset[int] | None = None
    networks: tuple[IPNetwork, ...] | None = None
    domains: tuple[str, ...] | None = None
    """Lower-case suffixes without a trailing dot."""
    operator_jurisdictions: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    allow: tuple[AllowRule, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class GeoIPConfig:
    country_db: Path | None = None
    asn_db: Path | None = None
    cache_size: int = 65536
    fallback: str = "iptocc"
    """"iptocc" or "none"."""


@dataclasses.dataclass(frozen=True, slots=True)
class FlowConfig:
    max: int = 262144
    active_timeout: float = 60.0
    idle_tcp: float = 300.0
    idle_udp: float = 60.0
    idle_other: float = 60.0
    tcp_closed_timeout: float = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class ClassifyConfig:
    video_min_kbps: float = 256.0


@dataclasses.dataclass(frozen=True, slots=True)
class AlertConfig:
    dedup_seconds: float = 900.0


@dataclasses.dataclass(frozen=True, slots=True)
class EventsConfig:
    flows: str = "devices"
    """"all", "devices" or "egress"."""
    path: str = "-"
    """The daemon's JSON-lines file (absolute once loaded), or "-" for stdout."""
    max_mb: int = 100
    """Rotate the file when it would grow past this size."""
    backups: int = 5
    """Rotated files kept (``events.jsonl.1`` ... ``.N``); 0 keeps none."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9108
    max_devices: int = 500
    tls_cert: Path | None = None
    """PEM certificate chain: serve HTTPS. It may hold the private key too."""
    tls_key: Path | None = None
    basic_auth_users: Path | None = None
    """``user:pbkdf2_sha256$...`` lines (egresswatch/passwords.py): require HTTP basic auth."""


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureConfig:
    interfaces: tuple[str, ...] = ()
    """Empty unless configured: the live daemon must be told where to listen."""
    snaplen: int = 262144
    buffer_mb: int = 64
    promiscuous: bool = True
    workers: int = 1
    bpf_extra: str = ""
    user: str | None = None
    """Drop root to this user once the capture handles are open."""


@dataclasses.dataclass(frozen=True, slots=True)
class BaselineConfig:
    learn_for: float = 604800.0
    """Seconds of packet time each device learns its destinations before new ones are reported."""
    max_values: int = 256


@dataclasses.dataclass(frozen=True, slots=True)
class StateConfig:
    path: Path | None = None
    """SQLite file for bindings, discovered devices, baselines and alert de-duplication; None keeps
    them in memory only (the replay default)."""
    flush_seconds: float = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    max_devices: int = 16384
    max_bindings: int = 65536


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    devices: tuple[DeviceSpec, ...]
    groups: Mapping[str, GroupSpec]
    local_networks: tuple[IPNetwork, ...]
    geoip: GeoIPConfig
    flows: FlowConfig
    classify: ClassifyConfig
    alerts: AlertConfig
    events: EventsConfig
    metrics: MetricsConfig
    capture: CaptureConfig
    baseline: BaselineConfig = BaselineConfig()
    state: StateConfig = StateConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    source: Path | None = None


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, through libyaml when PyYAML has it: the same documents, ~6x faster (the
    config, the service catalogue and the vendor table are read at every start)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; unreadable files and YAML syntax errors are ConfigErrors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc}") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), f"YAML syntax error{where}: {problem}") from exc
    config = parse_config({} if data is None else data, path.resolve().parent)
    return dataclasses.replace(config, source=path.resolve())


def parse_config(data: Mapping[str, Any], base_dir: Path) -> Config:
    """Validate an already-parsed YAML document; relative file paths resolve against base_dir."""
    top = _Map(data, "")
    groups = _groups(top.get("groups"), "groups")
    devices = _devices(top.get("devices"), "devices", groups)
    networks = _Map(top.get("networks"), "networks")
    local = tuple(_each(networks.get("local", list(DEFAULT_LOCAL_NETWORKS)), "networks.local", _network))
    networks.done()
    config = Config(
        devices=devices,
        groups=groups,
        local_networks=local,
        geoip=_geoip(top.get("geoip"), "geoip", base_dir),
        flows=_flows(top.get("flows"), "flows"),
        classify=_section(top.get("classify"), "classify", ClassifyConfig, video_min_kbps=_positive),
        alerts=_section(top.get("alerts"), "alerts", AlertConfig, dedup_seconds=_positive),
        events=_events(top.get("events"), "events", base_dir),
        metrics=_metrics(top.get("metrics"), "metrics", base_dir),
        capture=_capture(top.get("capture"), "capture"),
        baseline=_section(top.get("baseline"), "baseline", BaselineConfig, learn_for=_seconds,
                          max_values=_positive_int),
        state=_section(top.get("state"), "state", StateConfig,
                       path=lambda v, k: _path(v, k, base_dir), flush_seconds=_positive),
        discovery=_section(top.get("discovery"), "discovery", DiscoveryConfig,
                           max_devices=_positive_int, max_bindings=_positive_int),
    )
    top.done()
    return config


# --- reading helpers ---------------------------------------------------------------------------


class _Map:
    """A mapping being read: hands out values by name and rejects the names nobody asked for."""

    def __init__(self, data: object, key: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(key or "(top level)", f"expected a mapping, got {_kind(data)}")
        self.data = data
        self.key = key
        self.known: list[str] = []

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, default: object = None) -> Any:
        self.known.append(name)
        value = self.data.get(name)
        return default if value is None else value

    def read(self, name: str, check: Callable[[object, str], T], default: T) -> T:
        value = self.get(name)
        return default if value is None else check(value, self.path(name))

    def done(self) -> None:
        for name in self.data:
            if name not in self.known:
                close = difflib.get_close_matches(str(name), self.known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(self.path(str(name)), f"unknown key{hint}")


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _each(value: object, key: str, check: Callable[[object, str], T]) -> Iterator[T]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list, got {_kind(value)}")
    for i, item in enumerate(value):
        yield check(item, f"{key}[{i}]")


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, f"expected a non-empty string, got {_kind(value)}")
    return value


def _name(value: object, key: str) -> str:
    name = _string(value, key)
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(key, f"{name!r} may contain only letters, digits, '_', '.' and '-'")
    return name


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, f"expected a positive integer, got {value!r}")
    return value


def _count(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(key, f"expected a whole number >= 0, got {value!r}")
    return value


def _positive(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(key, f"expected a positive number, got {value!r}")
    return float(value)


def _seconds(value: object, key: str) -> float:
    """A duration that may be 0 (``baseline.learn_for: 0`` reports from the first destination on)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ConfigError(key, f"expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    return value


def _choice(*options: str) -> Callable[[object, str], str]:
    def check(value: object, key: str) -> str:
        if value not in options:
            raise ConfigError(key, f"expected one of {', '.join(options)}, got {value!r}")
        return str(value)

    return check


def _network(value: object, key: str) -> IPNetwork:
    text = _string(value, key)
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        raise ConfigError(key, f"not a network in CIDR notation: {exc}") from exc


def _section(data: object, key: str, cls: Callable[..., T], **checks: Callable[[object, str], Any]) -> T:
    """Read a flat section whose keys are exactly the dataclass fields, defaults from the class."""
    section = _Map(data, key)
    values = {name: section.get(name) for name in checks}
    section.done()
    return cls(**{n: checks[n](v, f"{key}.{n}") for n, v in values.items() if v is not None})


# --- devices -----------------------------------------------------------------------------------


def normalise_mac(text: str) -> str | None:
    """ "44-19-B6-00-00-11", "4419.b600.0011", "4419b6000011" -> "44:19:b6:00:00:11"; else None."""
    text = text.strip().lower()
    if not _MAC_RE.fullmatch(text):
        return None
    digits = re.sub(r"[:.-]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _mac(value: object, key: str) -> str:
    if isinstance(value, int):  # YAML 1.1 reads unquoted 10:20:30:40:50:12 as a base-60 number
        raise ConfigError(key, f"YAML read this MAC as the number {value}; quote MAC addresses")
    mac = normalise_mac(_string(value, key))
    if mac is None:
        raise ConfigError(key, f"{value!r} is not a MAC address (expected e.g. 44:19:b6:00:00:11)")
    if int(mac[:2], 16) & 1:
        raise ConfigError(key, f"{mac} is a multicast/broadcast MAC and cannot identify a device")
    return mac


def _ip(value: object, key: str) -> str:
    try:
        address = ipaddress.ip_address(_string(value, key))
    except ValueError as exc:
        raise ConfigError(key, f"not an IP address: {exc}") from exc
    # IPv4-mapped IPv6 is the IPv4 host: every stage judges it as such
    return str(getattr(address, "ipv4_mapped", None) or address)


def _cidr(value: object, key: str) -> str:
    return str(_network(value, key))


def _slug(value: object, key: str) -> str:
    slug = _string(value, key)
    if not _SLUG_RE.fullmatch(slug):
        raise ConfigError(key, f"{slug!r} is not a vendor slug (lower-case letters, digits, '-', '_')")
    return slug


def _devices(data: object, key: str, groups: Mapping[str, GroupSpec]) -> tuple[DeviceSpec, ...]:
    devices = tuple(_each([] if data is None else data, key, lambda v, k: _device(v, k, groups)))
    seen: dict[tuple[str, str], int] = {}
    for i, spec in enumerate(devices):
        for field in ("name", "mac", "ip"):
            value = getattr(spec, field)
            if value is None:
                continue
            first = seen.setdefault((field, value), i)
            if first != i:
                raise ConfigError(f"{key}[{i}].{field}", f"{value} is already used by {key}[{first}]")
    return devices


def _device(data: object, key: str, groups: Mapping[str, GroupSpec]) -> DeviceSpec:
    entry = _Map(data, key)
    name = entry.get("name")
    if name is None:
        raise ConfigError(entry.path("name"), "required")
    spec = DeviceSpec(
        name=_name(name, entry.path("name")),
        mac=entry.read("mac", _mac, None),
        ip=entry.read("ip", _ip, None),
        cidr=entry.read("cidr", _cidr, None),
        group=entry.read("group", _name, DEFAULT_GROUP),
        vendor=entry.read("vendor", _slug, None),
        role=entry.read("role", _choice(*ROLES), "camera"),
    )
    entry.done()
    if spec.ip is not None and spec.cidr is not None:
        raise ConfigError(entry.path("cidr"), "ip and cidr are exclusive; give one")
    if spec.mac is None and spec.ip is None and spec.cidr is None:
        raise ConfigError(key, "needs mac, ip or cidr to recognise the device")
    if spec.group not in groups:
        known = ", ".join(sorted(groups))
        raise ConfigError(entry.path("group"), f"group {spec.group!r} is not defined (groups: {known})")
    return spec


# --- groups ------------------------------------------------------------------------------------


def _groups(data: object, key: str) -> Mapping[str, GroupSpec]:
    section = _Map(data, key)
    groups = {name: GroupSpec(name, ()) for name in BUILTIN_GROUPS}
    for name in section.data:
        gkey = section.path(str(name))
        _name(name, gkey)
        group = _Map(section.get(name), gkey)
        allow = tuple(_each(group.get("allow", []), group.path("allow"), _rule))
        group.done()
        groups[name] = GroupSpec(name, allow)
    return MappingProxyType(groups)


def _codes(value: object, key: str) -> frozenset[str]:
    def code(item: object, ikey: str) -> str:
        if isinstance(item, bool):  # YAML 1.1 reads an unquoted NO (Norway) as false
            raise ConfigError(ikey, f'{item!r} is a YAML boolean; quote country codes, e.g. "NO"')
        if not isinstance(item, str) or not _COUNTRY_RE.fullmatch(item):
            raise ConfigError(ikey, f"{item!r} is not an ISO 3166 alpha-2 code (two upper-case letters)")
        return item

    return frozenset(_each(value, key, code))


def _asn(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32:
        raise ConfigError(key, f"{value!r} is not an AS number (1 .. 4294967295)")
    return value


def _domain(value: object, key: str) -> str:
    domain = _string(value, key).lower().rstrip(".")
    if not domain or not all(_LABEL_RE.fullmatch(label) for label in domain.split(".")):
        raise ConfigError(key, f"{value!r} is not a domain name (a suffix like backup.example.org)")
    return domain


def _rule(data: object, key: str) -> AllowRule:
    def category(item: object, ikey: str) -> str:
        return _choice(*CATEGORIES)(item, ikey)

    readers: dict[str, Callable[[object, str], Any]] = {
        "categories": lambda v, k: frozenset(_each(v, k, category)),
        "countries": _codes,
        "asns": lambda v, k: frozenset(_each(v, k, _asn)),
        "networks": lambda v, k: tuple(_each(v, k, _network)),
        "domains": lambda v, k: tuple(_each(v, k, _domain)),
        "operator_jurisdictions": _codes,
    }
    rule = _Map(data, key)
    matchers = {}
    for name, read in readers.items():
        value = rule.get(name)
        if value is not None:
            matchers[name] = read(value, rule.path(name))
            if not matchers[name]:
                raise ConfigError(rule.path(name), "empty list matches nothing; remove the key instead")
    rule.done()
    if not matchers:
        raise ConfigError(key, "a rule needs at least one matcher (" + ", ".join(readers) + ")")
    return AllowRule(**matchers)


# --- other sections ----------------------------------------------------------------------------


def _path(value: object, key: str, base_dir: Path) -> Path:
    path = Path(_string(value, key)).expanduser()
    return path if path.is_absolute() else base_dir / path


def _existing_file(what: str, base_dir: Path) -> Callable[[object, str], Path]:
    def check(value: object, key: str) -> Path:
        path = _path(value, key, base_dir)
        if not path.is_file():
            raise ConfigError(key, f"{what} {path} does not exist")
        return path

    return check


def _geoip(data: object, key: str, base_dir: Path) -> GeoIPConfig:
    db = _existing_file("database file", base_dir)
    checks = {"cache_size": _positive_int, "fallback": _choice("iptocc", "none")}
    return _section(data, key, GeoIPConfig, country_db=db, asn_db=db, **checks)


def _events(data: object, key: str, base_dir: Path) -> EventsConfig:
    def events_path(value: object, pkey: str) -> str:
        if value == "-":
            return "-"
        path = _path(value, pkey, base_dir)
        if not path.parent.is_dir():
            raise ConfigError(pkey, f"directory {path.parent} does not exist")
        return str(path)

    return _section(data, key, EventsConfig, flows=_choice("all", "devices", "egress"), path=events_path,
                    max_mb=_positive_int, backups=_count)


def _flows(data: object, key: str) -> FlowConfig:
    section = _Map(data, key)
    idle = _Map(section.get("idle_timeout"), section.path("idle_timeout"))
    values = {
        "max": section.read("max", _positive_int, None),
        "active_timeout": section.read("active_timeout", _positive, None),
        "tcp_closed_timeout": section.read("tcp_closed_timeout", _positive, None),
        "idle_tcp": idle.read("tcp", _positive, None),
        "idle_udp": idle.read("udp", _positive, None),
        "idle_other": idle.read("other", _positive, None),
    }
    idle.done()
    section.done()
    return FlowConfig(**{name: value for name, value in values.items() if value is not None})


def _listen(value: object, key: str) -> tuple[str, int]:
    text = _string(value, key)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    port = int(match.group(2) or match.group(4)) if match else 0
    if not match or not 0 < port < 65536:
        raise ConfigError(key, f"{text!r} is not host:port (e.g. 127.0.0.1:9108 or [::1]:9108)")
    host = match.group(1) or match.group(3)
    if match.group(1):
        _ip(host, key)
    return host, port


def _metrics(data: object, key: str, base_dir: Path) -> MetricsConfig:
    section = _Map(data, key)
    default = MetricsConfig()
    host, port = section.read("listen", _listen, (default.listen_host, default.listen_port))
    max_devices = section.read("max_devices", _positive_int, default.max_devices)
    tls_cert = section.read("tls_cert", _existing_file("certificate file", base_dir), None)
    tls_key = section.read("tls_key", _existing_file("key file", base_dir), None)
    users = section.read("basic_auth_users", _existing_file("users file", base_dir), None)
    section.done()
    if tls_key is not None and tls_cert is None:
        raise ConfigError(section.path("tls_key"), "needs metrics.tls_cert (the certificate it belongs to)")
    return MetricsConfig(host, port, max_devices, tls_cert, tls_key, users)


def _capture(data: object, key: str) -> CaptureConfig:
    def interfaces(value: object, ikey: str) -> tuple[str, ...]:
        return tuple(_each(value, ikey, _string))

    def bpf(value: object, bkey: str) -> str:
        if not isinstance(value, str):
            raise ConfigError(bkey, f"expected a string, got {_kind(value)}")
        return value

    def user(value: object, ukey: str) -> str:
        name = _string(value, ukey)
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(ukey, f"no such user {name!r} on this machine") from None
        return name

    checks = {"snaplen": _positive_int, "buffer_mb": _positive_int, "workers": _positive_int}
    return _section(
        data, key, CaptureConfig, **checks, interfaces=interfaces, promiscuous=_bool, bpf_extra=bpf, user=user
    )
