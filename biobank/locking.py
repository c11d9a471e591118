"""The one lock order of every write, and the tube lock that starts a tube's changes.

Two transactions that take the same locks in opposite orders can deadlock. Every write
path therefore takes its locks in this order, each kind in ascending id:

1. the **owner** of the change, when there is one: the patient (consent, withdrawal:
   ``consent.service.lock_patient``), the sample request (``requests.lifecycle``), the
   containers of a container move (``storage.service``);
2. the **tubes** (``aliquot`` rows, ``lock_tubes`` below), before anything else about them
   is read or written: their status, position, thaw and request rows;
3. the tubes' **positions** and **thaw** rows (rewritten while the tube lock is held, so
   nobody else writes them meanwhile; the unique constraints decide between two tubes
   racing for one free place);
4. the **custody chains** (``custody.service``: advisory locks, by chain key), always last.

After taking the tube lock a path reads the tube's state again (``populate_existing``):
what it read before, to find the tube, may have changed while it waited. A deadlock or a
serialization failure that slips through anyway (PostgreSQL aborts one of the
transactions) is answered 409 with a message and nothing changed (``biobank.errors``);
it is never a 500. docs/operations.md ("Many people at one tube") says the same for people.

SQLite has one writer at a time: its lock is the database's, taken by the first write.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.samples.models import Aliquot


def lock_tubes(session: Session, aliquot_ids: Iterable[int]) -> dict[int, str]:
    """Lock tubes' rows in ascending id (step 2 of the order); returns their statuses as
    they are once locked.

    ``FOR NO KEY UPDATE``: it excludes every other writer of the tube but not the key-share
    locks that inserts referring to the tube take (its custody events, a child's parent),
    which could not deadlock with it but would wait for nothing.
    """
    ids = sorted(set(aliquot_ids))
    if not ids:
        return {}
    return dict(
        session.execute(
            select(Aliquot.id, Aliquot.status)
            .where(Aliquot.id.in_(ids))
            .order_by(Aliquot.id)
            .with_for_update(key_share=True)
        ).all()
    )
