"""Prometheus metrics: the contract in docs/architecture.md, documented once in ``METRICS``.

Three ways a metric gets its value, named by ``MetricDoc.source``:

- ``report``: updated by ``MetricsSink`` from each flow report or alert (per flow, never per packet);
- ``totals``: read from the pipeline's ``Totals`` at scrape time by ``TotalsCollector``; the hot loop
  keeps plain ints and nothing calls ``Counter.inc()`` per packet;
- ``daemon``: owned by the live daemon (GeoIP build time, config reloads, capture statistics). They
  are listed here so ``docs/metrics.md`` has one source, and ``new_metric`` builds them from it.

Label rules: device names beyond ``max_devices`` distinct ones become ``other``; a missing vendor,
category or verdict is ``unknown``, and so is ``jurisdiction`` (the home jurisdiction of the
operator of the destination's catalogued service) when no service is known. A device's flow whose
other end is local is counted in the device byte counters with ``country="local"`` (its verdict is
``local`` too), so a dashboard can show all the traffic a camera sends and filter egress with
``country!="local"``. No IP, port or domain is ever a label.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from egresswatch import __version__
from egresswatch.model import UNKNOWN_COUNTRY, FlowReport, Totals

OTHER_DEVICE = "other"
UNKNOWN_LABEL = "unknown"
LOCAL_COUNTRY = "local"

_DEVICE_FLOW = ("device", "group", "vendor", "country", "jurisdiction", "category", "verdict")
_VIOLATION = ("device", "group", "country", "jurisdiction", "category", "severity")


@dataclass(frozen=True, slots=True)
class MetricDoc:
    name: str
    """Full exposition name, counters with their ``_total`` suffix."""
    type: str
    """"counter" or "gauge"."""
    labels: tuple[str, ...]
    help: str
    source: str
    """"report", "totals" or "daemon": who sets the value (see the module docstring)."""


METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("egresswatch_packets_total", "counter", (), "Frames read, decodable or not.", "totals"),
    MetricDoc("egresswatch_ip_bytes_total", "counter", (),
              "IP-layer bytes (innermost IP header's length) of decoded packets.", "totals"),
    MetricDoc("egresswatch_decode_errors_total", "counter", ("reason",),
              "Malformed or truncated packets skipped, by decoder anomaly name.", "totals"),
    MetricDoc("egresswatch_flows_active", "gauge", (), "Flows in the flow table now.", "totals"),
    MetricDoc("egresswatch_flows_total", "counter", (), "Flows created.", "totals"),
    MetricDoc("egresswatch_flow_evictions_total", "counter", (),
              "Flows evicted because the flow table was full.", "totals"),
    MetricDoc("egresswatch_device_egress_bytes_total", "counter", _DEVICE_FLOW,
              "IP bytes sent by a device, by destination country (\"local\" for site-internal "
              "destinations), operator jurisdiction, category and verdict.", "report"),
    MetricDoc("egresswatch_device_ingress_bytes_total", "counter", _DEVICE_FLOW,
              "IP bytes received by a device on its flows, labelled like the egress counter.", "report"),
    MetricDoc("egresswatch_policy_violations_total", "counter", _VIOLATION,
              "Policy violation alerts (one per device, destination and category per de-dup window).",
              "report"),
    MetricDoc("egresswatch_policy_violation_last_timestamp_seconds", "gauge", _VIOLATION,
              "Packet time of the latest policy violation alert.", "report"),
    MetricDoc("egresswatch_device_last_seen_timestamp_seconds", "gauge",
              ("device", "group", "vendor", "role"),
              "Packet time of the latest flow report of a device.", "report"),
    MetricDoc("egresswatch_devices_discovered_total", "counter", ("vendor",),
              "Devices not in the inventory found by passive discovery (MAC vendor, announcements, "
              "vendor-cloud traffic).", "report"),
    MetricDoc("egresswatch_new_destinations_total", "counter", ("device", "group", "dimension"),
              "Egress reports that used a destination country, ASN or vendor service new to the device "
              "after its baseline learning period (one per new value and dimension).", "report"),
    MetricDoc("egresswatch_build_info", "gauge", ("version", "python"),
              "Always 1; the egresswatch and Python versions.", "report"),
    MetricDoc("egresswatch_geoip_database_build_timestamp_seconds", "gauge", ("database",),
              "Build time recorded in each loaded GeoIP database.", "daemon"),
    MetricDoc("egresswatch_config_reload_failures_total", "counter", (),
              "Configuration reloads rejected (the previous configuration kept running).", "daemon"),
    MetricDoc("egresswatch_config_last_reload_success", "gauge", (),
              "1 when the last configuration reload succeeded, else 0.", "daemon"),
    MetricDoc("egresswatch_capture_received_packets_total", "counter", ("interface",),
              "Packets the capture handles took in (libpcap ps_recv); with several workers every DNS "
              "frame is taken in once per worker.", "daemon"),
    MetricDoc("egresswatch_capture_dropped_packets_total", "counter", ("interface",),
              "Packets dropped by the kernel or interface before egresswatch saw them.", "daemon"),
    MetricDoc("egresswatch_capture_up", "gauge", ("interface",),
              "1 while the capture on an interface is running.", "daemon"),
)
_BY_NAME = {doc.name: doc for doc in METRICS}
_TOTALS_FIELDS = (
    ("egresswatch_packets_total", "packets"),
    ("egresswatch_ip_bytes_total", "ip_bytes"),
    ("egresswatch_flows_active", "active_flows"),
    ("egresswatch_flows_total", "flows"),
    ("egresswatch_flow_evictions_total", "evictions"),
)
"""The scalar ``totals`` metrics and the ``Totals`` attribute each one reads."""


def metric_doc(name: str) -> MetricDoc:
    """The documented metric called ``name`` (KeyError for a metric outside the contract)."""
    return _BY_NAME[name]


def new_metric(name: str, registry: CollectorRegistry) -> Counter | Gauge:
    """A prometheus-client Counter or Gauge for a documented metric, registered in ``registry``."""
    doc = _BY_NAME[name]
    if doc.type == "counter":
        # prometheus-client appends "_total" itself and strips it from the name it is given.
        return Counter(doc.name, doc.help, doc.labels, registry=registry)
    return Gauge(doc.name, doc.help, doc.labels, registry=registry)


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text exposition format (for ``--metrics-out``)."""
    return generate_latest(registry)


class TotalsCollector(Collector):
    """Run-wide counters read from ``Totals`` at scrape time. Exposition::

        egresswatch_packets_total 1200.0
        egresswatch_ip_bytes_total 834000.0
        egresswatch_decode_errors_total{reason="ipv4_bad_ihl"} 2.0
        egresswatch_flows_active 14.0
        egresswatch_flows_total 53.0
        egresswatch_flow_evictions_total 0.0
    """

    def __init__(self, totals: Callable[[], Totals]) -> None:
        self._totals = totals

    def _families(self, totals: Totals | None) -> Iterator[Metric]:
        for name, attribute in _TOTALS_FIELDS:
            doc = _BY_NAME[name]
            family_type = CounterMetricFamily if doc.type == "counter" else GaugeMetricFamily
            family = family_type(doc.name, doc.help, labels=doc.labels)
            if totals is not None:
                family.add_metric([], getattr(totals, attribute))
            yield family
        errors = _BY_NAME["egresswatch_decode_errors_total"]
        family = CounterMetricFamily(errors.name, errors.help, labels=errors.labels)
        if totals is not None and totals.decode_errors:
            for reason, count in sorted(totals.decode_errors.items()):
                family.add_metric([reason], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        """Names only, so registering checks for clashes without reading the totals."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(self._totals())


class MetricsSink:
    """Registers the ``report`` and ``totals`` metrics of ``METRICS`` in ``registry`` and feeds them.

    ``totals`` is read at every scrape (the daemon passes ``lambda: pipeline.totals``). Without it,
    the collector reports the ``Totals`` given to ``close`` (zeros before that), which is what a
    replay needs: its pipeline is built inside ``pipeline.replay``.
    """

    def __init__(self, registry: CollectorRegistry, max_devices: int,
                 totals: Callable[[], Totals] | None = None) -> None:
        self._max_devices = max_devices
        self._labelled_devices: set[str] = set()
        self._discovered: set[str] = set()
        self._last_seen: dict[tuple[str, ...], float] = {}
        self._final = Totals()
        self._egress = new_metric("egresswatch_device_egress_bytes_total", registry)
        self._ingress = new_metric("egresswatch_device_ingress_bytes_total", registry)
        self._violations = new_metric("egresswatch_policy_violations_total", registry)
        self._violation_time = new_metric("egresswatch_policy_violation_last_timestamp_seconds", registry)
        self._seen = new_metric("egresswatch_device_last_seen_timestamp_seconds", registry)
        self._discoveries = new_metric("egresswatch_devices_discovered_total", registry)
        self._new_destinations = new_metric("egresswatch_new_destinations_total", registry)
        new_metric("egresswatch_build_info", registry).labels(__version__, platform.python_version()).set(1)
        registry.register(TotalsCollector(totals or (lambda: self._final)))

    def _device_label(self, name: str) -> str:
        """The device's own name for the first ``max_devices`` names seen, then ``other``."""
        if name in self._labelled_devices:
            return name
        if len(self._labelled_devices) < self._max_devices:
            self._labelled_devices.add(name)
            return name
        return OTHER_DEVICE

    def flow(self, report: FlowReport) -> None:
        device = report.device
        if device is None:
            return
        name = self._device_label(device.name)
        vendor = device.vendor or UNKNOWN_LABEL
        if device.discovered and device.name not in self._discovered:
            self._discovered.add(device.name)
            self._discoveries.labels(vendor).inc()
        seen_key = (name, device.group, vendor, device.role)
        if report.end > self._last_seen.get(seen_key, float("-inf")):
            self._last_seen[seen_key] = report.end
            self._seen.labels(*seen_key).set(report.end)
        if report.egress:
            country = report.place.country if report.place else UNKNOWN_COUNTRY
        else:
            country = LOCAL_COUNTRY
        verdict = report.verdict.verdict if report.verdict else UNKNOWN_LABEL
        category = report.category or UNKNOWN_LABEL
        labels = (name, device.group, vendor, country, _jurisdiction(report), category, verdict)
        for dimension in report.new_destinations:
            self._new_destinations.labels(name, device.group, dimension).inc()
        if report.delta_src_bytes:
            self._egress.labels(*labels).inc(report.delta_src_bytes)
        if report.delta_dst_bytes:
            self._ingress.labels(*labels).inc(report.delta_dst_bytes)

    def alert(self, report: FlowReport) -> None:
        device = report.device
        labels = (
            self._device_label(device.name) if device else UNKNOWN_LABEL,
            device.group if device else UNKNOWN_LABEL,
            report.place.country if report.place else UNKNOWN_COUNTRY,
            _jurisdiction(report),
            report.category or UNKNOWN_LABEL,
            report.verdict.severity if report.verdict and report.verdict.severity else UNKNOWN_LABEL,
        )
        self._violations.labels(*labels).inc()
        self._violation_time.labels(*labels).set(report.end)

    def close(self, totals: Totals) -> None:
        self._final = totals


def _jurisdiction(report: FlowReport) -> str:
    """The operator's ISO code from the catalogue (a bounded set), or ``unknown``."""
    return report.service.jurisdiction if report.service else UNKNOWN_LABEL
