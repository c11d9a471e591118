"""64 guesses at once: the login throttle's free failures are a hard ceiling.

PostgreSQL only (SQLite lets one writer at a time in): real, separately committed
transactions from 64 threads, each a browser of its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import delete, select

from biobank import create_app
from biobank.auth import service
from biobank.auth.models import LoginThrottle, User, WebSession
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(not PG_URL, reason="real concurrent logins need PostgreSQL")

GUESSERS = 64
PASSWORD = "the right one, at last"


def test_sixty_four_concurrent_wrong_passwords_check_no_more_than_the_free_failures(engine):
    """64 browsers post a wrong password for one user at the same moment: at most
    LOGIN_FREE_FAILURES of them are checked (401), the others refused unchecked (429); the
    right password sent just after is refused too (the pair is locked), not let in."""
    from sqlalchemy.orm import Session

    # A long first wait: the right password below comes within it however slow the machine.
    app = create_app(
        {
            "DATABASE_URL": PG_URL,
            "TESTING": True,
            "PROPAGATE_EXCEPTIONS": False,
            "LOGIN_DELAY_SECONDS": 600,
        }
    )
    username = f"guessed-{time.time_ns()}"
    with Session(engine) as session:
        service.create_user(session, username, "technician", password=PASSWORD)
        session.commit()
    try:
        browsers = [app.test_client() for _ in range(GUESSERS)]
        tokens = [
            re.search(
                r'name="csrf_token" value="([^"]+)"', b.get("/login").get_data(as_text=True)
            ).group(1)  # type: ignore[union-attr]
            for b in browsers
        ]
        barrier = threading.Barrier(GUESSERS)
        outcomes: Counter[int] = Counter()
        lock = threading.Lock()

        def guess(browser, token) -> None:  # type: ignore[no-untyped-def]
            barrier.wait()
            status = browser.post(
                "/login", data={"username": username, "password": "wrong!", "csrf_token": token}
            ).status_code
            with lock:
                outcomes[status] += 1

        threads = [
            threading.Thread(target=guess, args=pair) for pair in zip(browsers, tokens, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        print("64 concurrent wrong passwords:", dict(outcomes))
        free = app.config["LOGIN_FREE_FAILURES"]
        assert sum(outcomes.values()) == GUESSERS
        assert set(outcomes) <= {401, 429}, outcomes
        assert 1 <= outcomes[401] <= free, outcomes
        last = browsers[0].post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": tokens[0]}
        )
        assert last.status_code == 429
    finally:
        with engine.begin() as conn:
            conn.execute(delete(LoginThrottle).where(LoginThrottle.username == username))
            user_id = select(User.id).where(User.username == username).scalar_subquery()
            conn.execute(delete(WebSession).where(WebSession.user_id == user_id))
            conn.execute(delete(User).where(User.username == username))
        app.extensions["biobank.engine"].dispose()
