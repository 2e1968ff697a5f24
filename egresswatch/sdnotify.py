"""systemd notifications (sd_notify) without libsystemd: one datagram to $NOTIFY_SOCKET.

The protocol is a single AF_UNIX datagram of newline-separated ``KEY=VALUE`` assignments; an address
starting with "@" is in the abstract namespace. ``WATCHDOG_USEC`` (set by ``WatchdogSec=``) is how
often systemd expects ``WATCHDOG=1``; we ping at half that, as sd_watchdog_enabled(3) advises.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends to the socket systemd named; does nothing when not run under systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; another process must not ping.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = int(usec) / 2e6 if usec.isdigit() and mine else None
        self._next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *assignments: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(assignments).encode(), self._address)

    def ready(self) -> None:
        self.notify("READY=1", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self, now: float) -> None:
        """Ping if due; the main loop calls this every iteration, so a hung loop stops the pings."""
        if self.watchdog_interval is None or now < self._next_ping:
            return
        self._next_ping = now + self.watchdog_interval
        self.notify("WATCHDOG=1")
