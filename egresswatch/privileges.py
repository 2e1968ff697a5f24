"""Dropping root after the capture handles are open, keeping only CAP_NET_RAW.

CAP_NET_RAW stays because an interface that disappears is reopened later (a new AF_PACKET
socket), and the parent keeps it so that a worker it restarts can open its handles. Nothing else
is kept: promiscuous mode is requested per socket (PACKET_MR_PROMISC), which needs no
CAP_NET_ADMIN once the socket exists. Linux only; ctypes, no extra dependency.
"""

from __future__ import annotations

import ctypes
import os
import pwd

PR_SET_KEEPCAPS = 8
CAP_NET_RAW = 13
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def drop_privileges(user: str, keep: tuple[int, ...] = (CAP_NET_RAW,)) -> None:
    """Become ``user`` (its uid, primary gid, no supplementary groups) keeping the ``keep`` caps.

    A process that already is ``user`` (a worker forked by a parent that dropped root, or a service
    started as that user) only narrows its capabilities: it could not change groups anyway.
    Raises OSError (or KeyError for an unknown user) rather than carrying on as root.
    """
    entry = pwd.getpwnam(user)
    libc = ctypes.CDLL(None, use_errno=True)
    if os.getuid() == os.geteuid() == entry.pw_uid != 0:
        _set_capabilities(libc, keep)
        return
    _check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    _set_capabilities(libc, keep)
    _check(libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS, 0)")


def _set_capabilities(libc: ctypes.CDLL, keep: tuple[int, ...]) -> None:
    """Effective and permitted become exactly ``keep``; nothing inheritable."""
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
