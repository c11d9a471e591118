"""Where label printers may be: the networks and ports a printer address must lie in.

A print job opens a TCP connection from the server and writes bytes to it, so a printer
address is a place the server will connect to on a manager's word. It must lie within
``BIOBANK_PRINTER_NETWORKS`` (CIDRs) on one of ``BIOBANK_PRINTER_PORTS`` (ports or ranges);
anything else is refused with a 422 naming the rule, when a printer is registered or
changed and again at every print (a host name may point elsewhere by then). Loopback,
link-local and unspecified addresses (this machine, its cloud metadata service, "any") are
allowed only by a listed network that is itself one of them (``127.0.0.1/32``), never by a
broad one (``0.0.0.0/0``). The connection goes to the address that was checked, not to a
second resolution of the name.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app

from biobank.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
DEFAULT_PORTS = "9100"
# A host name as DNS spells one (RFC 1123 labels); anything else is no printer's name.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


class Unresolved(Exception):
    """The host name has no address now (DNS does not know it)."""


def _special(item: Address | Network) -> str | None:
    """Which kind of address only an explicit listing allows, or None."""
    if item.is_loopback:
        return "loopback"
    if item.is_link_local:
        return "link-local"
    if item.is_unspecified:
        return "unspecified"
    return None


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is (::ffff:127.0.0.1 is loopback)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class PrinterRule:
    """The networks and ports printers may be at (from the configuration)."""

    networks: tuple[Network, ...]
    ports: tuple[tuple[int, int], ...]
    networks_text: str
    ports_text: str

    @classmethod
    def parse(cls, networks: str, ports: str) -> PrinterRule:
        """The rule from its two settings; ValueError naming the setting if one is wrong."""
        found = []
        for item in (part.strip() for part in networks.split(",")):
            if not item:
                continue
            try:
                found.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"BIOBANK_PRINTER_NETWORKS: {item!r} is no network ({exc})"
                ) from None
        ranges = []
        for item in (part.strip() for part in ports.split(",")):
            if not item:
                continue
            low, _, high = item.partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                raise ValueError(
                    f"BIOBANK_PRINTER_PORTS: {item!r} is no port or range (9100, 9100-9109)"
                ) from None
            if not 1 <= first <= last <= 65535:
                raise ValueError(f"BIOBANK_PRINTER_PORTS: {item!r} is outside 1-65535")
            ranges.append((first, last))
        return cls(
            tuple(found),
            tuple(ranges),
            ", ".join(str(n) for n in found) or "none",
            ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges) or "none",
        )

    def check_port(self, port: int, field: str = "port") -> None:
        """422 unless ``port`` is a printer port."""
        if not any(first <= port <= last for first, last in self.ports):
            raise Invalid(
                f"port {port} is not a printer port (BIOBANK_PRINTER_PORTS: {self.ports_text})",
                field=field,
            )

    def refusal(self, address: Address) -> str | None:
        """Why the rule refuses ``address``, or None if it is a printer's place."""
        address = _plain(address)
        special = _special(address)
        for network in self.networks:
            if address.version != network.version or address not in network:
                continue
            if special is None or _special(network) == special:
                return None
        if special is not None:
            return (
                f"a {special} address, allowed only when BIOBANK_PRINTER_NETWORKS lists "
                f"it explicitly ({self.networks_text})"
            )
        return f"outside the printer networks (BIOBANK_PRINTER_NETWORKS: {self.networks_text})"

    def addresses(self, host: str, port: int, field: str = "host") -> list[tuple[Any, ...]]:
        """The socket addresses of ``host:port``, each checked; 422 naming the rule if any
        is refused, Unresolved if the name has no address."""
        literal = _literal(host)
        if literal is None and not _HOST_NAME.fullmatch(host):
            raise Invalid(f"{host!r} is neither an IP address nor a host name", field=field)
        try:
            found = socket.getaddrinfo(
                str(literal or host), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise Unresolved(f"{host} cannot be resolved ({exc})") from None
        out = []
        for family, kind, proto, _name, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            why = self.refusal(address)
            if why is not None:
                shown = host if str(address) == host else f"{host} ({address})"
                raise Invalid(f"{shown} is {why}", field=field)
            out.append((family, kind, proto, sockaddr))
        self.check_port(port, "port" if field == "host" else field)
        return out


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def rule_from(config: Mapping[str, Any]) -> PrinterRule:
    """The printer rule of an app's configuration (PRINTER_NETWORKS, PRINTER_PORTS)."""
    return PrinterRule.parse(str(config["PRINTER_NETWORKS"]), str(config["PRINTER_PORTS"]))


def printer_rule() -> PrinterRule:
    """Where printers may be for the app serving this request or command."""
    return rule_from(current_app.config)
