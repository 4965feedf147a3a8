"""An offline guard: refuse network connections to anything but this machine.

The course promises to run offline. ``make test`` turns this guard on (``LESSON_OFFLINE_GUARD=1``)
for the unit tests and for every notebook kernel, so code that would download weights or data
fails loudly instead of passing on a machine that happens to be online.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

__all__ = ["NetworkAccessError", "install_network_guard", "uninstall_network_guard",
           "is_loopback"]

GUARD_ENV = "LESSON_OFFLINE_GUARD"
_original: dict[str, Any] = {}


class NetworkAccessError(RuntimeError):
    """Raised when code tries to reach a non-loopback address while the guard is on."""


def is_loopback(host: Any) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("8.8.8.8")
        (True, True, False)
    """
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return host == ""
    return True  # no DNS query is made for a literal; connect() checks the address itself


def _check(address: Any, family: int) -> None:
    if family == getattr(socket, "AF_UNIX", object()):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not is_loopback(host):
        raise NetworkAccessError(
            f"network access to {host!r} blocked: the course runs offline "
            f"({GUARD_ENV}=1). Only loopback addresses are allowed.")


def install_network_guard() -> None:
    """Make ``socket.connect``/``connect_ex`` and name lookups refuse non-loopback hosts.

    Example:
        >>> install_network_guard()
        >>> socket.create_connection(("198.51.100.1", 80), timeout=1)
        Traceback (most recent call last):
        ...
        lesson_utils.offline.NetworkAccessError: network access to '198.51.100.1' blocked: ...
        >>> uninstall_network_guard()
    """
    if _original:
        return
    _original["connect"] = socket.socket.connect
    _original["connect_ex"] = socket.socket.connect_ex
    _original["getaddrinfo"] = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        _check(address, self.family)
        return _original["connect"](self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        _check(address, self.family)
        return _original["connect_ex"](self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not is_loopback(host) and not _is_ip_literal(host):
            raise NetworkAccessError(
                f"name lookup of {host!r} blocked: the course runs offline ({GUARD_ENV}=1).")
        return _original["getaddrinfo"](host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def uninstall_network_guard() -> None:
    """Restore the original socket functions.

    Example:
        >>> uninstall_network_guard()  # a no-op when the guard is off
    """
    if not _original:
        return
    socket.socket.connect = _original.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _original.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _original.pop("getaddrinfo")  # type: ignore[assignment]


if os.environ.get(GUARD_ENV) == "1":
    install_network_guard()
