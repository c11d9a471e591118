"""Talking to a network label printer: raw ZPL over TCP (Zebra's port 9100), with a timeout.

The printer has taken a job when its TCP stack accepted every byte (sendall returned) and
the connection was closed; a printer that refuses, cannot be reached, or stalls past the
timeout (connecting, or no longer reading) raises PrinterError. One that failed before a
connection was made got nothing; one that failed after (it stopped reading, reset the
connection) may have printed some of the labels: ``PrinterError.may_have_printed``.
"""

from __future__ import annotations

import socket
from typing import Any

from biobank.errors import DomainError
from biobank.labels.network import PrinterRule, Unresolved


class PrinterError(DomainError):
    """The printer did not take the job."""

    def __init__(
        self,
        message: str,
        status_code: int,
        printer: str,
        address: str,
        *,
        may_have_printed: bool = False,
    ) -> None:
        super().__init__(message, errors={"printer": {"name": printer, "address": address}})
        self.status_code = status_code
        # The connection was made before the failure: some bytes may have reached the printer.
        self.may_have_printed = may_have_printed


def connect(targets: list[tuple[Any, ...]], timeout: float) -> socket.socket:
    """A connection to the first of the checked addresses that answers (as
    ``socket.create_connection``, but never to an address the rule did not see)."""
    last: OSError | None = None
    for family, kind, proto, sockaddr in targets:
        conn = socket.socket(family, kind, proto)
        try:
            conn.settimeout(timeout)
            conn.connect(sockaddr)
        except OSError as exc:
            conn.close()
            last = exc
            continue
        return conn
    raise last or OSError("no address")


def send(name: str, host: str, port: int, data: bytes, timeout: float, rule: PrinterRule) -> None:
    """Hand ``data`` to the printer; 422 if its address breaks the printer rule (checked
    again now: a host name may point elsewhere since it was registered), PrinterError
    (502 unreachable, 504 timeout) if it does not take the job."""
    address = f"{host}:{port}"
    where = f"printer {name} at {address}"
    try:
        targets = rule.addresses(host, port, field="printer")
    except Unresolved as exc:
        raise PrinterError(
            f"{where} cannot be reached ({exc}); nothing was printed", 502, name, address
        ) from None
    try:
        conn = connect(targets, timeout)
    except TimeoutError:
        raise PrinterError(
            f"{where} did not take the labels within {timeout:g} s: is it "
            "busy, paused or out of labels?",
            504,
            name,
            address,
        ) from None
    except ConnectionRefusedError:
        raise PrinterError(
            f"{where} refused the connection: is it switched on, and is "
            "raw printing on that port enabled?",
            502,
            name,
            address,
        ) from None
    except OSError as exc:
        raise PrinterError(
            f"{where} cannot be reached ({exc.strerror or exc}); nothing was printed",
            502,
            name,
            address,
        ) from None
    try:
        with conn:
            conn.sendall(data)
            # End of job: the printer sees the stream end, as after a print from a driver.
            conn.shutdown(socket.SHUT_WR)
    except TimeoutError:
        raise PrinterError(
            f"{where} stopped taking the labels within {timeout:g} s: is it "
            "busy, paused or out of labels? It may have printed some of them",
            504,
            name,
            address,
            may_have_printed=True,
        ) from None
    except OSError as exc:
        raise PrinterError(
            f"{where} broke off the connection ({exc.strerror or exc}): it may have printed "
            "some of the labels",
            502,
            name,
            address,
            may_have_printed=True,
        ) from None
