"""Slowing down password guessing: failed logins per username and address, in the database.

A few failures cost nothing; after that each attempt must wait, a wait that doubles up to a
ceiling. The count lives in ``login_throttle`` so that every gunicorn worker sees it.

Every attempt is counted *before* its password is checked (``attempt``: one upsert, which
refuses a locked pair, and the lock for the next attempt, under the row's lock, committed
before the check), and forgotten only by a success (``clear``). So however many attempts
arrive at once, no more than the free failures are checked before the pair locks: a check
that reads the count first and counts the failure after (the earlier design) let 34 of 64
concurrent guesses through instead of 5.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from biobank.auth.models import LoginThrottle
from biobank.db import utcnow

_KEY_LENGTH = 64


@dataclasses.dataclass(frozen=True)
class Policy:
    """How many failures are free, how long the waits are, when failures are forgotten."""

    free_failures: int = 5
    delay_seconds: int = 2
    max_delay_seconds: int = 900
    forget_after: dt.timedelta = dt.timedelta(hours=24)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        """The policy set by the LOGIN_* configuration keys."""
        return cls(
            free_failures=config["LOGIN_FREE_FAILURES"],
            delay_seconds=config["LOGIN_DELAY_SECONDS"],
            max_delay_seconds=config["LOGIN_DELAY_MAX_SECONDS"],
            forget_after=dt.timedelta(hours=config["LOGIN_FORGET_HOURS"]),
        )

    def delay(self, failures: int) -> int:
        """Seconds to wait after the given number of consecutive failures."""
        excess = failures - self.free_failures
        if excess <= 0:
            return 0
        # Cap the exponent too: 2 ** 10_000 is a needless big integer.
        return min(self.delay_seconds * 2 ** min(excess - 1, 32), self.max_delay_seconds)


def _key(username: str, address: str) -> tuple[str, str]:
    # Case-folded so "Admin" and "admin" share a counter; cut to the column width.
    return username.strip().casefold()[:_KEY_LENGTH], (address or "unknown")[:_KEY_LENGTH]


def wait_seconds(
    session: Session, username: str, address: str, now: dt.datetime | None = None
) -> int:
    """Seconds before this username may try again from this address (0: now)."""
    now = now or utcnow()
    name, addr = _key(username, address)
    locked_until = session.scalar(
        select(LoginThrottle.locked_until).where(
            LoginThrottle.username == name, LoginThrottle.address == addr
        )
    )
    if locked_until is None or locked_until <= now:
        return 0
    return math.ceil((locked_until - now).total_seconds())


def attempt(
    session: Session, username: str, address: str, policy: Policy, now: dt.datetime | None = None
) -> int:
    """Count a login attempt before its password is checked, as a failure until ``clear``;
    returns 0 when the password may be checked, else the seconds to wait (nothing counted).

    The upsert adds the attempt only if the pair is not locked, and returns the count; the
    attempt that uses up the free failures locks the pair for the next one in the same
    transaction, while the upsert's row lock holds the others back. The caller commits
    before checking the password, so that the next attempt sees both.
    """
    now = now or utcnow()
    name, addr = _key(username, address)
    table = LoginThrottle.__table__
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    stale = table.c.last_failed_at < now - policy.forget_after
    statement = (
        insert(table)
        .values(username=name, address=addr, failures=1, last_failed_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.username, table.c.address],
            set_={"failures": case((stale, 1), else_=table.c.failures + 1), "last_failed_at": now},
            where=table.c.locked_until.is_(None) | (table.c.locked_until <= now),
        )
        .returning(table.c.failures)
    )
    failures = session.execute(statement).scalar()
    if failures is None:  # locked: refused without a check
        return max(1, wait_seconds(session, username, address, now))
    delay = policy.delay(failures + 1)
    if delay:
        session.execute(
            update(table)
            .where(table.c.username == name, table.c.address == addr)
            .values(locked_until=now + dt.timedelta(seconds=delay))
        )
    # Forget pairs that have been quiet long enough, so the table stays small.
    session.execute(
        delete(table).where(
            table.c.last_failed_at < now - policy.forget_after,
            (table.c.locked_until.is_(None)) | (table.c.locked_until < now),
        )
    )
    return 0


def clear(session: Session, username: str, address: str) -> None:
    """Forget the failures (and attempts) of a pair after a successful login."""
    name, addr = _key(username, address)
    session.execute(
        delete(LoginThrottle).where(LoginThrottle.username == name, LoginThrottle.address == addr)
    )
