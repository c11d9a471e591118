"""The login throttle's rules, on the database: counting, locking, forgetting."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from biobank.auth import throttle
from biobank.auth.models import LoginThrottle

POLICY = throttle.Policy(
    free_failures=3, delay_seconds=2, max_delay_seconds=60, forget_after=dt.timedelta(hours=1)
)
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def test_the_wait_doubles_after_the_free_failures_up_to_the_ceiling():
    """0, 0, 0, then 2, 4, 8, 16, 32 seconds, then capped at 60 (even after very many)."""
    waits = [POLICY.delay(n) for n in range(1, 11)]
    assert waits == [0, 0, 0, 2, 4, 8, 16, 32, 60, 60]
    assert POLICY.delay(10_000) == 60


def test_the_policy_comes_from_the_configuration(app):
    """LOGIN_* keys set the policy."""
    policy = throttle.Policy.from_config(
        {**app.config, "LOGIN_FREE_FAILURES": 9, "LOGIN_FORGET_HOURS": 2}
    )
    assert policy.free_failures == 9 and policy.forget_after == dt.timedelta(hours=2)


def test_attempts_are_counted_and_the_free_ones_lock_the_pair(session):
    """The third attempt (free: 3) may still be checked, and locks the pair for 2 s: a
    fourth is refused (nothing counted) until the wait has passed."""
    for _ in range(2):
        assert throttle.attempt(session, "ann", "10.0.0.1", POLICY, NOW) == 0
    assert throttle.wait_seconds(session, "ann", "10.0.0.1", NOW) == 0
    assert throttle.attempt(session, "ann", "10.0.0.1", POLICY, NOW) == 0
    assert throttle.wait_seconds(session, "ann", "10.0.0.1", NOW) == 2
    assert throttle.wait_seconds(session, "ANN ", "10.0.0.1", NOW) == 2
    assert throttle.wait_seconds(session, "ann", "10.0.0.2", NOW) == 0
    assert throttle.attempt(session, "ann", "10.0.0.1", POLICY, NOW) == 2
    row = session.scalar(select(LoginThrottle).where(LoginThrottle.username == "ann"))
    assert row.failures == 3
    later = NOW + dt.timedelta(seconds=2)
    assert throttle.wait_seconds(session, "ann", "10.0.0.1", later) == 0
    assert throttle.attempt(session, "ann", "10.0.0.1", POLICY, later) == 0
    assert throttle.wait_seconds(session, "ann", "10.0.0.1", later) == 4


def test_a_quiet_period_forgets_the_failures(session):
    """After forget_after without failures the count starts again at one."""
    for _ in range(3):
        throttle.attempt(session, "bob", "10.0.0.1", POLICY, NOW)
    much_later = NOW + dt.timedelta(hours=2)
    assert throttle.attempt(session, "bob", "10.0.0.1", POLICY, much_later) == 0
    row = session.scalar(select(LoginThrottle).where(LoginThrottle.username == "bob"))
    assert row.failures == 1


def test_old_quiet_rows_are_pruned(session):
    """Recording a failure deletes other pairs that are quiet and unlocked."""
    throttle.attempt(session, "old", "10.0.0.1", POLICY, NOW)
    throttle.attempt(session, "new", "10.0.0.1", POLICY, NOW + dt.timedelta(hours=2))
    names = session.scalars(select(LoginThrottle.username)).all()
    assert names == ["new"]


def test_clearing_forgets_one_pair_only(session):
    """A successful login clears its own pair, not others."""
    throttle.attempt(session, "cat", "10.0.0.1", POLICY, NOW)
    throttle.attempt(session, "cat", "10.0.0.2", POLICY, NOW)
    throttle.clear(session, "Cat", "10.0.0.1")
    assert session.scalar(select(func.count()).select_from(LoginThrottle)) == 1


def test_overlong_keys_are_cut_to_the_column_width(session):
    """A 10 000-character username or address is stored cut, not refused by the database."""
    throttle.attempt(session, "u" * 10_000, "a" * 10_000, POLICY, NOW)
    row = session.scalar(select(LoginThrottle))
    assert len(row.username) == 64 and len(row.address) == 64
