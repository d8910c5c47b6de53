"""Where the explorer listens, how to reach it there, and which Host headers it answers.

The explorer runs the user's model for whoever asks, so it listens on the
loopback interface unless told otherwise. Beyond loopback it still answers
only requests whose Host header is an IP address, `localhost` or this
machine's own name: a web page on another site cannot reach it by making its
own domain name resolve to 127.0.0.1 (DNS rebinding), because the browser
then sends that domain as the Host.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from vaelab.errors import SettingError

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Address:
    """A host to bind, resolved to one IP address and its socket family."""

    host: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.ip.version == 6 else socket.AF_INET

    @property
    def loopback(self) -> bool:
        return self.ip.is_loopback

    @property
    def everywhere(self) -> bool:
        """Bound to every interface (0.0.0.0 or ::)."""
        return self.ip.is_unspecified

    def urls(self, port: int) -> list[str]:
        """Addresses a browser can open: this machine's name as well when bound everywhere."""
        if not self.everywhere:
            return [url(str(self.ip), port)]
        loopback = "::1" if self.ip.version == 6 else "127.0.0.1"
        return [url(socket.gethostname(), port), url(loopback, port)]


def url(host: str, port: int) -> str:
    """An http URL, with IPv6 addresses in brackets."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def resolve(host: str) -> Address:
    """The address `host` (an IP address or a name) binds to; VaelabError if none."""
    try:
        return Address(host, ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SettingError(
            f"{{host}} {host!r} is neither an IP address nor a name this machine can resolve; "
            "use 127.0.0.1 (this machine only) or ::1",
            "host",
        ) from None
    return Address(host, ipaddress.ip_address(found[0][4][0]))


def bind_error(address: Address, port: int, err: OSError) -> SettingError:
    """A one-line reason why binding failed, and what to try instead."""
    where = url(str(address.ip), port).removeprefix("http://").rstrip("/")
    if err.errno == errno.EADDRINUSE:
        advice = "another program uses that port; choose another {port} (0 picks a free one)"
    elif err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        advice = "that address is not on this machine; use {host} 127.0.0.1"
    elif err.errno == errno.EACCES:
        advice = "ports below 1024 need administrator rights; choose a {port} above 1023"
    else:
        advice = "choose another {host} or {port}"
    return SettingError(f"cannot serve on {where}: {err.strerror}; {advice}", "host", "port")


def allowed_hosts(address: Address) -> set[str]:
    """Host names (besides IP literals) the server answers to."""
    names = {*LOOPBACK_NAMES, address.host.lower()}
    if not address.loopback:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return names


def host_is_allowed(header: str | None, allowed: set[str]) -> bool:
    """Whether a request's Host header names this server rather than someone's domain."""
    if not header:
        return False
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":")[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host in allowed or host.endswith(".localhost")
