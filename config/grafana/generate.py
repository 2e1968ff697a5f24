"""Generate the egresswatch Grafana dashboards with grafana-foundation-sdk.

    pip install grafana-foundation-sdk && python config/grafana/generate.py

writes ``dashboards/*.json`` next to this file. The JSON is committed (Grafana provisioning reads
it); ``tests/test_dashboards.py`` checks it is what this script produces, that every datasource and
variable resolves, and that every query parses in promtool. The SDK builds the panel and variable
models, so field names and shapes come from Grafana's own schema rather than hand-written JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, geomap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "egresswatch-prometheus"
"""uid of the datasource in provisioning/datasources/egresswatch.yml: the `datasource` variable's default."""
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
SENSOR = 'instance=~"$instance"'
LAST_SEEN = "egresswatch_device_last_seen_timestamp_seconds"
VIOLATIONS = "egresswatch_policy_violations_total"
VIOLATION_TIME = "egresswatch_policy_violation_last_timestamp_seconds"


def _egress(matchers: str = "") -> str:
    """Bytes leaving the site: country "local" is camera-to-NVR and other site-internal traffic."""
    return f'egresswatch_device_egress_bytes_total{{{SENSOR}, country!="local"{matchers}}}'


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if instant:
        return query.instant().format(PromQueryFormat.TABLE)
    return query.range().legend_format(legend or "__auto")


def _panel(builder: Builder, title: str, description: str, *queries: prometheus.Dataquery) -> Builder:
    for query in queries:
        builder = builder.with_target(query)
    return builder.title(title).description(description).datasource(DATASOURCE)


def _datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .current(models.VariableOption(selected=True, text="egresswatch", value=DATASOURCE_UID))
    )


def _label_variable(name: str, label: str, selector: str, include_all: bool) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({selector}, {name})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )
    if include_all:
        variable = variable.include_all(True).multi(True).all_value(".*")
    return variable


def _instance_variable() -> dashboard.QueryVariable:
    return _label_variable("instance", "Sensor", "egresswatch_build_info", include_all=True)


def _board(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["egresswatch"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(_datasource_variable())
        .with_variable(_instance_variable())
    )


def _timestamp_table(title: str, description: str, *queries: prometheus.Dataquery) -> table.Panel:
    """Instant queries merged on their labels into one table (Grafana's "merge" transformation).

    The last query's column holds a timestamp in milliseconds and is shown as a date.
    """
    panel = _panel(table.Panel(), title, description, *queries)
    time_column = f"Value #{queries[-1].build().ref_id}" if len(queries) > 1 else "Value"
    return (
        panel.with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
        .override_by_name(time_column, [models.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
        .span(24)
    )


def _last_seen_query(selector: str, ref: str) -> prometheus.Dataquery:
    # x1000: Grafana's dateTime units take milliseconds; the gauge holds packet time in seconds.
    return _query(f"max by (device, group, vendor, role) ({selector}) * 1000", ref=ref, instant=True)


def site_overview() -> dashboard.Dashboard:
    countries = (
        common_builders.MapLayerOptions()
        .type("markers")
        .name("Egress bytes")
        .location(
            common_builders.FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.LOOKUP)
            .lookup("country")
            .gazetteer("public/gazetteer/countries.json")
        )
        .config({"showLegend": True, "style": {"size": {"field": "Value", "min": 4, "max": 40}}})
    )
    world = (
        geomap.Panel()
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers([countries])
        .view(geomap.MapViewConfig().id("zero").zoom(1))
        .unit("bytes")
        .span(24)
        .height(12)
    )
    return (
        _board(
            "egresswatch-overview",
            "egresswatch: site overview",
            "Where the site's cameras send data, what kind, and what the policy thinks of it.",
        )
        .with_panel(
            _panel(
                world,
                "Egress by destination country",
                "Bytes sent off-site by all devices in the time range, by destination country.",
                _query(f"sum by (country) (increase({_egress()}[$__range]))", instant=True),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("bps").span(16),
                "Footage vs telemetry leaving the site",
                "Off-site bit rate by category (footage, telemetry, firmware, infrastructure).",
                _query(f"sum by (category) (rate({_egress()}[$__rate_interval])) * 8", "{{category}}"),
            )
        )
        .with_panel(
            _panel(
                stat.Panel().span(8),
                "Devices",
                "Devices seen since egresswatch started; unassigned ones were discovered, not inventoried.",
                _query(f"count({LAST_SEEN}{{{SENSOR}}})", "seen"),
                _query(
                    f'count({LAST_SEEN}{{{SENSOR}, group="unassigned"}}) or vector(0)',
                    "unassigned",
                    ref="B",
                ),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("bps").span(24),
                "Disallowed egress by device and country",
                "Bit rate of traffic the policy judged a violation.",
                _query(
                    "sum by (device, country, category) "
                    f"""(rate({_egress(', verdict="violation"')}[$__rate_interval])) * 8""",
                    "{{device}} -> {{country}} ({{category}})",
                ),
            )
        )
        .with_panel(
            _timestamp_table(
                "Policy violations",
                "egresswatch alerts since it started (one per device, destination and category per 15 min)"
                " and the packet time of the latest.",
                _query(f"{VIOLATIONS}{{{SENSOR}}}", ref="A", instant=True),
                _query(f"{VIOLATION_TIME}{{{SENSOR}}} * 1000", ref="B", instant=True),
            )
        )
        .with_panel(
            _timestamp_table(
                "Devices and last seen",
                "Every device with attributed traffic, and the packet time of its latest flow report.",
                _last_seen_query(f"{LAST_SEEN}{{{SENSOR}}}", "A"),
            )
        )
    )


def device_drilldown() -> dashboard.Dashboard:
    device = f'{SENSOR}, device="$device"'
    by_device = "egresswatch_device_{direction}_bytes_total{{" + device + "}}"
    return (
        _board(
            "egresswatch-device",
            "egresswatch: device",
            "One camera or NVR: where it sends data, what kind, and its violations.",
        )
        .with_variable(_label_variable("device", "Device", f"{LAST_SEEN}{{{SENSOR}}}", include_all=False))
        .with_panel(
            _timestamp_table(
                "Device",
                "Group, vendor and role of the device, and the packet time of its latest flow report.",
                _last_seen_query(f"{LAST_SEEN}{{{device}}}", "A"),
            ).height(5)
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("bps").span(12),
                "Sent, by destination country",
                'Bit rate sent by the device; "local" is traffic that stays on the site (e.g. to the NVR).',
                _query(
                    f"sum by (country) (rate({by_device.format(direction='egress')}[$__rate_interval])) * 8",
                    "{{country}}",
                ),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("bps").span(12),
                "Received, by country",
                "Bit rate the device received on its flows.",
                _query(
                    f"sum by (country) (rate({by_device.format(direction='ingress')}[$__rate_interval])) * 8",
                    "{{country}}",
                ),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("bps").span(24),
                "Sent, by category and verdict",
                "What the device sends (footage, telemetry, ...) and whether the policy allows it.",
                _query(
                    "sum by (category, verdict) "
                    f"(rate({by_device.format(direction='egress')}[$__rate_interval])) * 8",
                    "{{category}} / {{verdict}}",
                ),
            )
        )
        .with_panel(
            _panel(
                table.Panel().unit("bytes").span(12),
                "Bytes sent since egresswatch started",
                "Per destination country, category and verdict.",
                _query(
                    f"sum by (country, category, verdict) ({by_device.format(direction='egress')})",
                    instant=True,
                ),
            )
        )
        .with_panel(
            _timestamp_table(
                "Violations",
                "egresswatch alerts for this device and the packet time of the latest.",
                _query(f"{VIOLATIONS}{{{device}}}", ref="A", instant=True),
                _query(f"{VIOLATION_TIME}{{{device}}} * 1000", ref="B", instant=True),
            ).span(12)
        )
    )


def health() -> dashboard.Dashboard:
    def rate(metric: str, by: str = "") -> str:
        grouping = f"sum by ({by}) " if by else "sum"
        return f"{grouping}(rate({metric}{{{SENSOR}}}[$__rate_interval]))"

    return (
        _board("egresswatch-health", "egresswatch: health", "Is egresswatch seeing everything it should?")
        .with_panel(
            _panel(
                stat.Panel().span(6),
                "Up",
                "1 when Prometheus can scrape the sensor.",
                _query(f'up{{job="egresswatch", {SENSOR}}}', "{{instance}}"),
            )
        )
        .with_panel(
            _panel(
                stat.Panel().span(6),
                "Last config reload succeeded",
                "1 when the latest reload was accepted; failures keep the previous configuration.",
                _query(f"egresswatch_config_last_reload_success{{{SENSOR}}}", "{{instance}}"),
                _query(f"egresswatch_config_reload_failures_total{{{SENSOR}}}", "failures", ref="B"),
            )
        )
        .with_panel(
            _panel(
                stat.Panel().unit("s").span(6),
                "GeoIP database age",
                "Time since each loaded GeoIP database was built; alert beyond 30 days.",
                _query(
                    f"time() - egresswatch_geoip_database_build_timestamp_seconds{{{SENSOR}}}", "{{database}}"
                ),
            )
        )
        .with_panel(
            _panel(
                table.Panel().span(6),
                "Build",
                "egresswatch and Python versions per sensor.",
                _query(f"egresswatch_build_info{{{SENSOR}}}", instant=True),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("pps").span(12),
                "Packets per second",
                "Frames read by the pipeline, and what each capture interface delivered.",
                _query(rate("egresswatch_packets_total"), "pipeline"),
                _query(
                    rate("egresswatch_capture_received_packets_total", "interface"), "{{interface}}", ref="B"
                ),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("pps").span(12),
                "Capture drops",
                "Packets the kernel or NIC dropped before egresswatch saw them (alert: any for 5 min),"
                " and whether each capture runs.",
                _query(
                    rate("egresswatch_capture_dropped_packets_total", "interface"), "dropped {{interface}}"
                ),
                _query(f"egresswatch_capture_up{{{SENSOR}}}", "up {{interface}}", ref="B"),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().span(12),
                "Flows",
                "Flows in the table, new flows per second, and evictions (the table was full).",
                _query(f"sum(egresswatch_flows_active{{{SENSOR}}})", "active"),
                _query(rate("egresswatch_flows_total"), "new/s", ref="B"),
                _query(rate("egresswatch_flow_evictions_total"), "evicted/s", ref="C"),
            )
        )
        .with_panel(
            _panel(
                timeseries.Panel().unit("pps").span(12),
                "Decode errors",
                "Malformed or truncated packets skipped, by anomaly; 0 when there are none.",
                _query(f"{rate('egresswatch_decode_errors_total', 'reason')} or vector(0)", "{{reason}}"),
            )
        )
    )


BOARDS = {"overview": site_overview, "device": device_drilldown, "health": health}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"egresswatch-{name}.json": json.dumps(board().build(), cls=JSONEncoder, indent=2, sort_keys=True)
        + "\n"
        for name, board in BOARDS.items()
    }


def main() -> None:
    DASHBOARDS.mkdir(exist_ok=True)
    for name, text in render().items():
        (DASHBOARDS / name).write_text(text)


if __name__ == "__main__":
    main()
