"""Talking to a network label printer: raw ZPL over TCP (Zebra's port 9100), with a timeout.

The printer has taken a job when its TCP stack accepted every byte (sendall returned) and
the connection was closed; a printer that refuses, cannot be reached, or stalls past the
timeout (connecting, or no longer reading) raises PrinterError, and the caller records
nothing.
"""

from __future__ import annotations

import socket

from biobank.errors import DomainError


class PrinterError(DomainError):
    """The printer did not take the job."""

    def __init__(self, message: str, status_code: int, printer: str, address: str) -> None:
        super().__init__(message, errors={"printer": {"name": printer, "address": address}})
        self.status_code = status_code


def send(name: str, host: str, port: int, data: bytes, timeout: float) -> None:
    """Hand ``data`` to the printer; PrinterError (502 unreachable, 504 timeout) if not."""
    address = f"{host}:{port}"
    where = f"printer {name} at {address}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(data)
            # End of job: the printer sees the stream end, as after a print from a driver.
            conn.shutdown(socket.SHUT_WR)
    except TimeoutError:
        raise PrinterError(f"{where} did not take the labels within {timeout:g} s: is it "
                           "busy, paused or out of labels?", 504, name, address) from None
    except ConnectionRefusedError:
        raise PrinterError(f"{where} refused the connection: is it switched on, and is "
                           "raw printing on that port enabled?", 502, name, address) from None
    except OSError as exc:
        raise PrinterError(f"{where} cannot be reached ({exc.strerror or exc}); nothing "
                           "was printed", 502, name, address) from None
