"""What every command group shares: who made a change, and how a refusal is reported.

A leaf module: the command groups (``biobank/*/cli.py``) import it, and ``biobank.cli``
imports the groups, so the imports run one way.
"""

from __future__ import annotations

import getpass
import sys
from typing import NoReturn

import click

from biobank.errors import DomainError


def cli_actor() -> str:
    """Changes made from the command line are attributed to the operating-system user."""
    return f"cli:{getpass.getuser()}"


def fail(exc: DomainError) -> NoReturn:
    """Report a refused command on stderr and exit non-zero."""
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)
