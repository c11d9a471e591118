"""The figures: each measured in this process, on the database the build filled.

Requests go through Flask's test client with a bearer token, as a client would send them;
times are taken around each call with ``perf_counter_ns``. Random choices (tubes, boxes,
patients) come from a fixed seed, so every run asks for the same things. Each figure starts
with a warm-up that is not counted, and with a garbage collection.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from biobank import clock
from biobank.auth import service as auth
from biobank.db import get_session
from biobank.samples.models import Aliquot

SEED = 21


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


class Client:
    """A test client that sends a bearer token, checks the status and times each call."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client: FlaskClient = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def timed(self, method: str, url: str, expect: int = 200, **kwargs: Any) -> float:
        """One request; its duration in microseconds. A wrong status is an error."""
        call = getattr(self.client, method)
        started = time.perf_counter_ns()
        response = call(url, headers=self.headers, **kwargs)
        elapsed = (time.perf_counter_ns() - started) / 1000
        if response.status_code != expect:
            raise RuntimeError(
                f"{method.upper()} {url}: {response.status_code} "
                f"{response.get_data(as_text=True)[:500]}"
            )
        return elapsed

    def get(self, url: str, **kwargs: Any) -> Any:
        """A request whose answer is wanted (not timed)."""
        response = self.client.get(url, headers=self.headers, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
        return response.json


def user_token(
    app: Flask,
    username: str,
    role: str,
    substudies: list[str] | None = None,
    sites: list[str] | None = None,
) -> str:
    """A token for a bench user of a role (made on first use), limited to ``sites``."""
    with app.app_context():
        session = get_session()
        user = session.scalar(select(auth.User).where(auth.User.username == username))
        if user is None:
            user = auth.create_user(
                session, username, role, substudies=substudies or [], sites=sites or []
            )
        token = auth.issue_token(session, user, days=1)
        session.commit()
    return token


def random_codes(app: Flask, count: int, seed: int = SEED) -> list[str]:
    """Barcodes of ``count`` aliquots drawn at random (with replacement), in draw order."""
    with app.app_context():
        session = get_session()
        low, high = session.execute(select(func.min(Aliquot.id), func.max(Aliquot.id))).one()
        rng = random.Random(seed)
        ids = [rng.randint(low, high) for _ in range(count)]
        codes: dict[int, str] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 5000):
            codes.update(
                session.execute(
                    select(Aliquot.id, Aliquot.barcode).where(
                        Aliquot.id.in_(unique[start : start + 5000])
                    )
                ).all()
            )
        session.rollback()
    return [codes[i] for i in ids if i in codes]


def interleaved(
    calls: dict[str, Callable[[str], float]],
    codes: dict[str, list[str]],
    warmup: int,
    block: int = 100,
) -> dict[str, list[float]]:
    """Time each call over its own codes (the first ``warmup`` of them not counted), in
    alternating blocks whose first call rotates, so that the noise of a busy machine falls
    on every side alike; returns the durations per call.

    Each side gets its own random tubes: given the same ones, a side would find the pages
    the side before it just read in the database's cache, and look cheaper than it is.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, call in calls.items():
        for code in codes[name][:warmup]:
            call(code)
    gc.collect()
    names = list(calls)
    timed = min(len(codes[name]) for name in names) - warmup
    for number, start in enumerate(range(warmup, warmup + timed, block)):
        turn = names[number % len(names) :] + names[: number % len(names)]
        for name in turn:
            times[name].extend(calls[name](code) for code in codes[name][start : start + block])
    return times


def repeat_for(seconds: float, minimum: int, action: Callable[[], float]) -> list[float]:
    """Run ``action`` at least ``minimum`` times and until ``seconds`` have passed."""
    results: list[float] = []
    started = time.perf_counter()
    while len(results) < minimum or time.perf_counter() - started < seconds:
        results.append(action())
    return results


def per_second(
    count: int, action: Callable[[], Any], seconds: float = 2.0, minimum: int = 3
) -> float:
    """The best of several runs of ``action`` (which handles ``count`` items), in items/s.

    The best run is the one least disturbed by anything else the machine was doing.
    """

    def once() -> float:
        started = time.perf_counter()
        action()
        return count / (time.perf_counter() - started)

    gc.collect()
    return max(repeat_for(seconds, minimum, once))


def today() -> str:
    """Today (UTC), as the API takes dates."""
    return clock.today().isoformat()


def decimal_text(value: Decimal | None) -> str | None:
    """A volume as the API sends it."""
    return None if value is None else str(value)
