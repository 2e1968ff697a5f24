"""The ``egresswatch`` command line.

Each subcommand is one ``Command`` in ``COMMANDS``: a name, a help line, its arguments and its
handler. The handler (and, for commands defined elsewhere, the arguments function) is named as
``"module:function"`` and imported only when that command is the one being run, so a command's
heavy imports (capture, multiprocessing) cost nothing to the others and adding a command is one
line, e.g. ``Command("devices", "...", "egresswatch.inventory:devices_command",
"egresswatch.inventory:add_arguments")``. A handler takes the parsed arguments and returns the exit
code; a ``ConfigError`` it raises is reported here.

Exit codes: 0 success, 2 a usage, config, capture-file or GeoIP error (the message on stderr names
the key or file).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from egresswatch import __version__
from egresswatch.config import Config, ConfigError, load_config
from egresswatch.sinks import Sink
from egresswatch.sinks.events import EventSink
from egresswatch.sinks.metrics import MetricsSink, render
from egresswatch.sinks.summary import SummarySink, plain_summary, render_table

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    handler: str
    """"module:function"; the function takes the parsed arguments and returns the exit code."""
    arguments: Callable[[argparse.ArgumentParser], None] | str
    """Adds the command's arguments to its parser; a "module:function" string is imported on use."""


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG", help="YAML configuration file")


def _bpf_arguments(parser: argparse.ArgumentParser) -> None:
    _config_argument(parser)
    parser.add_argument("--file", action="store_true",
                        help="the form for capture files (tags still in the frame), not for a live interface")


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pcaps", nargs="+", metavar="PCAP", help="pcap or pcapng files, read in order")
    _config_argument(parser)
    parser.add_argument("--events", metavar="PATH", help="write JSON-lines events here ('-' for stdout)")
    parser.add_argument("--summary-json", metavar="PATH", help="write the summary as JSON here")
    parser.add_argument("--metrics-out", metavar="PATH",
                        help="write the run's metrics in the Prometheus text format here")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="worker processes, each running the pipeline on its share of the flows "
                        "(default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


COMMANDS: tuple[Command, ...] = (
    Command("replay", "process capture files and summarise what each camera sent where",
            "egresswatch.cli:replay_command", _replay_arguments),
    Command("check-config", "validate a configuration file",
            "egresswatch.cli:check_config_command", _config_argument),
    Command("run", "capture live from the span port, serve metrics and write events",
            "egresswatch.daemon:run_command", "egresswatch.daemon:add_arguments"),
    Command("bpf", "print the kernel capture filter generated from the configuration",
            "egresswatch.bpf:bpf_command", _bpf_arguments),
    Command("devices", "list every device the captures show: inventory and discovered, with evidence",
            "egresswatch.inventory:devices_command", "egresswatch.inventory:add_arguments"),
)


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The full parser; arguments kept in other modules are loaded only for the ``selected`` command."""
    parser = argparse.ArgumentParser(
        prog="egresswatch", description="Passive egress monitoring for IP cameras on a span port.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help)
        if not isinstance(command.arguments, str):
            command.arguments(sub)
        elif command.name == selected:
            _resolve(command.arguments)(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The top-level parser has no options taking values, so the first bare word is the command.
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    try:
        args = build_parser(selected).parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors; callers get the code
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] = _resolve(args.handler)
    from egresswatch.capture import CaptureError
    from egresswatch.geo import GeoError

    try:
        return handler(args)
    except ConfigError as exc:
        print(f"config error: {exc.key}: {exc.reason}", file=sys.stderr)
    except CaptureError as exc:  # a missing file, not a capture, an unsupported link type
        print(f"{exc.path}: {exc.reason}", file=sys.stderr)
    except GeoError as exc:
        print(f"geoip error: {exc}", file=sys.stderr)
    return 2


def check_config_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"config ok: {len(config.devices)} devices, {len(config.groups)} groups")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # Imported here, not at the top: the capture and pipeline stack is only needed to replay.
    from egresswatch.pipeline import replay

    events_to_stdout = args.events == "-"
    with ExitStack() as files:
        events = None
        if events_to_stdout:
            events = sys.stdout
        elif args.events:
            try:
                events = files.enter_context(open(args.events, "w", encoding="utf-8"))
            except OSError as exc:
                print(f"egresswatch replay: cannot write events: {exc}", file=sys.stderr)
                return 2
        sinks = _Sinks(config, events, metrics=args.metrics_out is not None)
        with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
            totals = replay(args.pcaps, config, sinks.all, progress=progress, workers=args.workers)
    for line in totals.truncated_files or ():
        print(f"warning: {line}", file=sys.stderr)
    return sinks.write_outputs(args, table_to_stderr=events_to_stdout)


class _Sinks:
    """The sinks of one replay, and the files written from them once it is over."""

    def __init__(self, config: Config, events: TextIO | None, metrics: bool) -> None:
        self.summary = SummarySink(config, mac_vendor=_mac_vendor)
        self.all: list[Sink] = [self.summary]
        self.registry: CollectorRegistry | None = None
        if events is not None:
            self.all.append(EventSink(events, flows=config.events.flows))
        if metrics:
            self.registry = CollectorRegistry()
            self.all.append(MetricsSink(self.registry, config.metrics.max_devices))

    def write_outputs(self, args: argparse.Namespace, table_to_stderr: bool) -> int:
        """Write the summary/metrics files and print the table (to stderr when stdout carries events)."""
        summary = self.summary.to_dict()
        try:
            if args.summary_json:
                Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            if self.registry is not None:
                Path(args.metrics_out).write_bytes(render(self.registry))
        except OSError as exc:
            print(f"egresswatch replay: {exc}", file=sys.stderr)
            return 2
        stream = sys.stderr if table_to_stderr else sys.stdout
        if stream.isatty():
            from rich.console import Console

            render_table(summary, Console(file=stream))
        else:
            stream.write(plain_summary(summary))
        return 0


def _mac_vendor(mac: str) -> str | None:
    from egresswatch.oui import vendor_of

    return vendor_of(bytes.fromhex(mac.replace(":", "")))


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar over the bytes of all input files on stderr, or None when not wanted."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=None)

        def update(done_bytes: int, total_bytes: int) -> None:
            bar.update(task, completed=done_bytes, total=total_bytes)

        yield update
