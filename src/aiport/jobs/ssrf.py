"""Keep webhooks from reaching inside the network (SSRF).

A webhook URL is checked when it is saved and again at every delivery: its host is
resolved and every address must be public (not private, loopback, link-local, multicast,
reserved or unspecified). The request then goes to the address that was checked, so a DNS
answer that changes in between (rebinding) cannot redirect it; redirects are never
followed. `allow_private` (AIPORT_WEBHOOK_ALLOW_PRIVATE) lifts the address rule for
deployments whose receivers live on an internal network, and for tests on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(ValueError):
    """The URL may not be called; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A vetted URL and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    def pinned_url(self) -> str:
        """The URL with the vetted address in place of the host name."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{host}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def blocked_reason(ip: IPAddress) -> str | None:
    """Why this address is not a public one (None: it is)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, why in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return why
    if not ip.is_global:
        return "not globally routable"
    return None


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials, or UnsafeTarget."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget(f"The URL is not valid: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("The URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("The URL must not contain credentials; sign requests with the webhook secret instead.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeTarget("The URL has no host.")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"The host {host!r} does not resolve: {exc.strerror}.") from exc
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeTarget(f"The host {host!r} has no address.")
    return addresses


async def vet(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and check every address; the Target pins the first one."""
    scheme, host, port = parse_url(url)
    addresses = await resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = blocked_reason(ipaddress.ip_address(address))
            if reason is not None:
                raise UnsafeTarget(
                    f"The host {host!r} resolves to {address}, a {reason} address; webhooks may only call "
                    "public addresses (an admin can allow private ones with AIPORT_WEBHOOK_ALLOW_PRIVATE=true)."
                )
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])
