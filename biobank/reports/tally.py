"""The inventory tallies, kept by the database's triggers on ``aliquot``, ``sample`` and
``patient``, so that inventory over time reads a few hundred rows instead of a million tubes.

- ``inventory_tally``: per UTC month, patient's site, material, aliquot type and kind, how many
  tubes. Kinds are flows: ``received`` (a tube made: its ``created_at`` month), ``shipped``,
  ``returned`` (shipped → available), ``consumed``, ``destroyed``, ``missing``, ``found``
  (missing → available), ``blocked``, ``unblocked`` (status changes: the month they happen),
  and ``in_stock``: the change in tubes held in the biobank (``samples.states.IN_HOUSE``), so
  the stock at the end of a month is the sum of ``in_stock`` up to it.
- ``thaw_tally``: tubes held in the biobank now, per site, material, aliquot type and number
  of freeze–thaw cycles.

The tallies' site is the tube's patient's (site 0: an anonymised tube, no patient), which is
not the site-scope rule (``biobank.auth.scope``: where the tube is stored): the inventory
report reads them for the whole trial only and counts a few sites' tubes from the tubes
themselves. A correction that moves tubes between keys (a sample's material or patient, a
patient's site, a tube's type or sample) moves their stock along in the month it happens;
past flows stay where they were.

As with ``biobank.requests.tally``: triggers, not services, keep them, so every path that
writes tubes (a split, the CSV import, a status change) keeps them right; a migration that
recreates ``aliquot``, ``sample`` or ``patient`` on SQLite (Alembic's batch "move and copy")
drops the triggers with the old table and must create them again (``create_statements``).
The tests compare the tallies with a recount from the tubes and the custody log.

A bulk writer (the CSV import) may hold the insert trigger back for its own transaction
(``held_back``) and count its tubes per chunk instead: grouped in one statement, then fanned
out from the groups to the two tallies. The trigger's four statements per row cost the import
a third of its speed. The hold is a row of ``tally_pause`` that the transaction inserts and
deletes again before it ends, so no other transaction ever sees it (SQLite writes one
transaction at a time; PostgreSQL's other transactions do not see uncommitted rows) and
their tubes are counted by the trigger as ever.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import NamedTuple

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from biobank.bulk import SQLITE_VARIABLES
from biobank.reports.sql import MONTH
from biobank.samples.states import DEPARTED, IN_HOUSE

FLOWS = "inventory_tally"
THAWS = "thaw_tally"
PAUSE = "tally_pause"
FLOW_KEY = "month, site_id, material_id, aliquot_type_id, kind"
THAW_KEY = "site_id, material_id, aliquot_type_id, freeze_thaw_count"
KINDS = (
    "received",
    "shipped",
    "returned",
    "consumed",
    "destroyed",
    "missing",
    "found",
    "blocked",
    "unblocked",
    "in_stock",
)
_HOUSE = "(" + ", ".join(f"'{s}'" for s in sorted(IN_HOUSE)) + ")"

# The month of a timestamp column (``sql.MONTH``), and of the moment the change happens, per
# dialect.
_NOW = {
    "sqlite": "strftime('%Y-%m', 'now')",
    "postgresql": "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')",
}


def _kind(old: str | None, new: str) -> str:
    """The flow a status change (or a tube made with a status) counts as, or NULL."""
    back = (
        (
            f"WHEN {old} = 'shipped' AND {new} = 'available' THEN 'returned' "
            f"WHEN {old} = 'missing' AND {new} = 'available' THEN 'found' "
            f"WHEN {old} = 'blocked' AND {new} = 'available' THEN 'unblocked' "
        )
        if old
        else ""
    )
    return (
        f"CASE {back}WHEN {new} IN ('shipped', 'consumed', 'destroyed', 'missing', "
        f"'blocked') THEN {new} END"
    )


def _tube_key(tube: str) -> str:
    """From ``sample`` (aliased s) joined to its patient (p): the tube's site and material."""
    return f"FROM sample s LEFT JOIN patient p ON p.id = s.patient_id WHERE s.id = {tube}.sample_id"


def _flow(month: str, tube: str, kind: str, tubes: str, condition: str = "1 = 1") -> str:
    return (
        f"INSERT INTO {FLOWS} ({FLOW_KEY}, tubes) "
        f"SELECT {month}, coalesce(p.site_id, 0), s.material_id, {tube}.aliquot_type_id, "
        f"{kind}, {tubes} {_tube_key(tube)} AND {condition} {_ADD_FLOWS}"
    )


def _thaw(tube: str, tubes: str) -> str:
    return (
        f"INSERT INTO {THAWS} ({THAW_KEY}, tubes) "
        f"SELECT coalesce(p.site_id, 0), s.material_id, {tube}.aliquot_type_id, "
        f"{tube}.freeze_thaw_count, {tubes} {_tube_key(tube)} "
        f"AND {tube}.status IN {_HOUSE} {_ADD_THAWS}"
    )


_ADD_FLOWS = f"ON CONFLICT ({FLOW_KEY}) DO UPDATE SET tubes = {FLOWS}.tubes + excluded.tubes"
_ADD_THAWS = f"ON CONFLICT ({THAW_KEY}) DO UPDATE SET tubes = {THAWS}.tubes + excluded.tubes"


def _made(month: str) -> tuple[str, ...]:
    """A tube made (the trigger's NEW): received in its creation month, a flow if made with
    a status that is one, and held (stock, freeze–thaw cycles) if made in house."""
    kind = _kind(None, "NEW.status")
    return (
        _flow(month, "NEW", "'received'", "1"),
        _flow(month, "NEW", kind, "1", f"{kind} IS NOT NULL"),
        _flow(month, "NEW", "'in_stock'", "1", f"NEW.status IN {_HOUSE}"),
        _thaw("NEW", "1"),
    )


GROUP = "month, site_id, material_id, aliquot_type_id, status, freeze_thaw_count, n"


def _grouped(month: str, rows: str) -> str:
    """The tubes ``rows`` selects of ``aliquot a``, grouped by key, status and cycles: rows
    of the ``GROUP`` columns (``n``: how many tubes)."""
    return (
        f"SELECT {month}, coalesce(p.site_id, 0), s.material_id, a.aliquot_type_id, "
        "a.status, a.freeze_thaw_count, count(*) "
        "FROM aliquot a JOIN sample s ON s.id = a.sample_id "
        f"LEFT JOIN patient p ON p.id = s.patient_id WHERE {rows} "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )


def _made_in_bulk(groups: str) -> tuple[str, str]:
    """Tubes grouped as ``_grouped`` groups them (``groups``: a VALUES list of its rows),
    counted as ``_made`` counts one: fanned out to the flows and the thaws."""
    g = f"WITH g ({GROUP}) AS ({groups}) "
    key = "month, site_id, material_id, aliquot_type_id"
    return (
        g + f"INSERT INTO {FLOWS} ({FLOW_KEY}, tubes) "
        f"SELECT {key}, kind, sum(n) FROM ("
        f"SELECT {key}, 'received' AS kind, n FROM g "
        f"UNION ALL SELECT {key}, {_kind(None, 'status')}, n FROM g "
        f"UNION ALL SELECT {key}, 'in_stock', n FROM g WHERE status IN {_HOUSE}) f "
        f"WHERE kind IS NOT NULL GROUP BY 1, 2, 3, 4, 5 {_ADD_FLOWS}",
        g + f"INSERT INTO {THAWS} ({THAW_KEY}, tubes) "
        f"SELECT {THAW_KEY}, sum(n) FROM g WHERE status IN {_HOUSE} "
        f"GROUP BY 1, 2, 3, 4 {_ADD_THAWS}",
    )


def _moved(
    dialect: str, where: str, old_site: str, new_site: str, old_material: str, new_material: str
) -> tuple[str, ...]:
    """Tubes held of the samples ``where`` selects move from the old key to the new one."""
    now = _NOW[dialect]
    held = (
        f"FROM aliquot a JOIN sample s ON s.id = a.sample_id WHERE {where} AND a.status IN {_HOUSE}"
    )
    # A material read from the samples (a patient's move) is a column to group by; one from
    # the trigger's row (a sample's correction) is a constant of the statement.
    by = ", s.material_id" if "s.material_id" in (old_material, new_material) else ""
    statements = []
    for site, material, sign in ((old_site, old_material, "-"), (new_site, new_material, "")):
        statements.append(
            f"INSERT INTO {FLOWS} ({FLOW_KEY}, tubes) "
            f"SELECT {now}, {site}, {material}, a.aliquot_type_id, 'in_stock', "
            f"{sign}count(*) {held} GROUP BY a.aliquot_type_id{by} "
            f"{_ADD_FLOWS}"
        )
        statements.append(
            f"INSERT INTO {THAWS} ({THAW_KEY}, tubes) "
            f"SELECT {site}, {material}, a.aliquot_type_id, a.freeze_thaw_count, "
            f"{sign}count(*) {held} GROUP BY a.aliquot_type_id, a.freeze_thaw_count{by} "
            f"{_ADD_THAWS}"
        )
    return tuple(statements)


class Trigger(NamedTuple):
    """A row trigger, written once for SQLite and PostgreSQL."""

    name: str
    event: str
    when: str
    statements: tuple[str, ...]
    pausable: bool = False  # does nothing while its transaction holds a ``tally_pause`` row


def triggers(dialect: str, pausable: bool = True) -> tuple[Trigger, ...]:
    """The tallies' triggers on ``dialect``; ``pausable=False``: as first made (c4e1a9d27b5f),
    before the insert trigger could be held back."""
    month, now = MONTH[dialect].format("NEW.created_at"), _NOW[dialect]
    key_changed = (
        "(OLD.status <> NEW.status OR OLD.sample_id <> NEW.sample_id "
        "OR OLD.aliquot_type_id <> NEW.aliquot_type_id)"
    )
    site_of = "(SELECT site_id FROM patient WHERE id = {0})"
    return (
        Trigger(
            "inventory_tally_aliquot_insert", "INSERT ON aliquot", "1 = 1", _made(month), pausable
        ),
        Trigger(
            "inventory_tally_aliquot_update",
            "UPDATE OF status, sample_id, aliquot_type_id, freeze_thaw_count ON aliquot",
            f"{key_changed} OR OLD.freeze_thaw_count <> NEW.freeze_thaw_count",
            (
                _flow(
                    now,
                    "NEW",
                    _kind("OLD.status", "NEW.status"),
                    "1",
                    f"OLD.status <> NEW.status AND {_kind('OLD.status', 'NEW.status')} IS NOT NULL",
                ),
                _flow(now, "OLD", "'in_stock'", "-1", f"OLD.status IN {_HOUSE} AND {key_changed}"),
                _flow(now, "NEW", "'in_stock'", "1", f"NEW.status IN {_HOUSE} AND {key_changed}"),
                _thaw("OLD", "-1"),
                _thaw("NEW", "1"),
            ),
        ),
        Trigger(
            "inventory_tally_sample_update",
            "UPDATE OF material_id, patient_id ON sample",
            "OLD.material_id <> NEW.material_id "
            "OR coalesce(OLD.patient_id, 0) <> coalesce(NEW.patient_id, 0)",
            _moved(
                dialect,
                "s.id = NEW.id",
                f"coalesce({site_of.format('OLD.patient_id')}, 0)",
                f"coalesce({site_of.format('NEW.patient_id')}, 0)",
                "OLD.material_id",
                "NEW.material_id",
            ),
        ),
        Trigger(
            "inventory_tally_patient_update",
            "UPDATE OF site_id ON patient",
            "OLD.site_id <> NEW.site_id",
            _moved(
                dialect,
                "s.patient_id = NEW.id",
                "OLD.site_id",
                "NEW.site_id",
                "s.material_id",
                "s.material_id",
            ),
        ),
    )


def create_statements(
    dialect: str, pausable: bool = True, names: Iterable[str] | None = None
) -> list[str]:
    """The DDL of the triggers on ``dialect`` ("sqlite" or "postgresql"): all, or ``names``."""
    if dialect not in MONTH:
        raise ValueError(f"no inventory tally triggers for {dialect}")
    found = []
    paused = f"EXISTS (SELECT 1 FROM {PAUSE})"
    for trigger in triggers(dialect, pausable):
        if names is not None and trigger.name not in names:
            continue
        body = "".join(f"{s}; " for s in trigger.statements)
        if dialect == "sqlite":
            when = f"({trigger.when}) AND NOT {paused}" if trigger.pausable else trigger.when
            found.append(
                f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                f"WHEN {when} BEGIN {body}END"
            )
        else:  # PostgreSQL allows no subquery in WHEN: the function asks
            hold = f"IF {paused} THEN RETURN NULL; END IF; " if trigger.pausable else ""
            found += [
                (
                    f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN {hold}{body}RETURN NULL; END $$"
                ),
                (
                    f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                    f"WHEN ({trigger.when}) EXECUTE FUNCTION {trigger.name}()"
                ),
            ]
    return found


def drop_statements(dialect: str, names: Iterable[str] | None = None) -> list[str]:
    """The DDL that removes the triggers (all, or those ``names``)."""
    found = []
    for trigger in triggers(dialect):
        if names is not None and trigger.name not in names:
            continue
        table = trigger.event.split(" ON ")[1]
        found.append(
            f"DROP TRIGGER IF EXISTS {trigger.name}"
            + (f" ON {table}" if dialect == "postgresql" else "")
        )
        if dialect == "postgresql":
            found.append(f"DROP FUNCTION IF EXISTS {trigger.name}()")
    return found


class HeldBack:
    """What a bulk writer counts itself while the insert trigger is held back."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.month = MONTH[connection.dialect.name].format("a.created_at")
        self.mark = "?" if connection.dialect.name == "sqlite" else "%s"

    def made(self, ids: Iterable[int]) -> None:
        """Count the tubes ``ids`` (just inserted), as the insert trigger would have."""
        spans: list[list[int]] = []
        for id_ in sorted(int(i) for i in ids):  # whole numbers: safe to write into the SQL
            if spans and id_ == spans[-1][1] + 1:
                spans[-1][1] = id_
            else:
                spans.append([id_, id_])
        if not spans:
            return
        rows = "(" + " OR ".join(f"a.id BETWEEN {lo} AND {hi}" for lo, hi in spans) + ")"
        # Grouped once, here, and the few groups handed to both statements: each reading
        # the chunk's tubes with their samples and patients again cost twice the time.
        groups = self.connection.exec_driver_sql(_grouped(self.month, rows)).all()
        columns = len(GROUP.split(", "))
        per = SQLITE_VARIABLES // columns  # parameters per statement, on either database
        row = "(" + ", ".join([self.mark] * columns) + ")"
        for start in range(0, len(groups), per):
            part = groups[start : start + per]
            values = "VALUES " + ", ".join([row] * len(part))
            parameters = tuple(chain.from_iterable(part))
            for statement in _made_in_bulk(values):
                self.connection.exec_driver_sql(statement, parameters)


@contextmanager
def held_back(connection: Connection) -> Iterator[HeldBack]:
    """Hold the aliquot insert trigger back in this transaction; the caller counts the tubes
    it makes with ``HeldBack.made``. The hold ends with the block, error or not."""
    holder = uuid.uuid4().hex
    mark = "?" if connection.dialect.name == "sqlite" else "%s"
    connection.exec_driver_sql(f"INSERT INTO {PAUSE} (holder) VALUES ({mark})", (holder,))
    release = f"DELETE FROM {PAUSE} WHERE holder = {mark}"
    try:
        yield HeldBack(connection)
    except BaseException:
        try:
            connection.exec_driver_sql(release, (holder,))
        except DBAPIError:  # a transaction that failed cannot commit: the row goes with it
            pass
        raise
    connection.exec_driver_sql(release, (holder,))


# --- freezer fill: positions used per month and freezer -----------------------------------

FILL = "fill_tally"
FILL_KEY = "month, freezer_id"
# Custody events that put a tube into a freezer's position, and those after which it holds
# none (biobank.reports.fill says why these).
ENTERING = ("stored", "moved", "put_back", "refrozen")
LEAVING = ("unstored", *sorted(DEPARTED))
_FREEZER_OF = {
    "sqlite": "json_extract({0}.new_values, '$.freezer_id')",
    "postgresql": "CAST({0}.new_values ->> 'freezer_id' AS integer)",
}
_FILL_TRIGGER = "fill_tally_custody_event_insert"


def _listed(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _one_of(expr: str, values: tuple[str, ...], listed: bool = False) -> str:
    """SQL: ``expr`` is one of ``values``, written as equalities (``listed``: as ``IN``).

    SQLite runs ``IN`` over three or more constants by first building a temporary index of
    them, once per statement; in a trigger that is once per row the trigger runs for, and
    the fill trigger runs for every custody event inserted. Its ``IN`` in the WHEN made an
    event the trigger then skips cost 8.7 µs to insert instead of 6.3 (4.4 with no trigger),
    and the three in its body cost a place event ~30 µs. Equalities cost neither database
    anything.
    """
    if listed:
        return f"{expr} IN {_listed(values)}"
    return "(" + " OR ".join(f"{expr} = '{v}'" for v in values) + ")"


def holds(dialect: str, event: str, listed: bool = False) -> str:
    """SQL: the freezer whose position the tube holds after the custody event (NULL: none)."""
    return (
        f"CASE WHEN {_one_of(f'{event}.event_type', ENTERING, listed)} "
        f"THEN {_FREEZER_OF[dialect].format(event)} END"
    )


def fill_statements(dialect: str, as_first_made: bool = False) -> list[str]:
    """The DDL of the trigger that keeps ``fill_tally``: a tube's place event that changes
    the freezer it holds a position in counts +1 for the freezer entered and −1 for the one
    left, in the event's UTC month (the tube's previous place event: by its chain's index).

    ``as_first_made``: the text of e6b8c4d2f012, event types tested with ``IN`` (``_one_of``
    says why no longer)."""
    month = MONTH[dialect].format("NEW.occurred_at")
    now = holds(dialect, "NEW", as_first_made)
    places = ENTERING + LEAVING
    before = (
        f"(SELECT {holds(dialect, 'e', as_first_made)} FROM custody_event e "
        f"WHERE e.aliquot_id = NEW.aliquot_id AND e.id < NEW.id "
        f"AND {_one_of('e.event_type', places, as_first_made)} ORDER BY e.id DESC LIMIT 1)"
    )
    when = f"NEW.aliquot_id IS NOT NULL AND {_one_of('NEW.event_type', places, as_first_made)}"
    add = f"ON CONFLICT ({FILL_KEY}) DO UPDATE SET tubes = {FILL}.tubes + excluded.tubes"
    if dialect == "sqlite":
        body = (
            f"INSERT INTO {FILL} ({FILL_KEY}, tubes) SELECT {month}, f, d FROM ("
            f"SELECT {now} AS f, 1 AS d, {before} AS o UNION ALL "
            f"SELECT {before}, -1, {now}) WHERE f IS NOT NULL AND f IS NOT o {add}; "
        )
        return [
            f"CREATE TRIGGER {_FILL_TRIGGER} AFTER INSERT ON custody_event FOR EACH ROW "
            f"WHEN {when} BEGIN {body}END"
        ]
    if dialect != "postgresql":
        raise ValueError(f"no fill tally trigger for {dialect}")
    body = (
        f"DECLARE entered integer := {now}; left_from integer := {before}; BEGIN "
        f"IF entered IS NOT DISTINCT FROM left_from THEN RETURN NULL; END IF; "
        f"IF entered IS NOT NULL THEN INSERT INTO {FILL} ({FILL_KEY}, tubes) "
        f"VALUES ({month}, entered, 1) {add}; END IF; "
        f"IF left_from IS NOT NULL THEN INSERT INTO {FILL} ({FILL_KEY}, tubes) "
        f"VALUES ({month}, left_from, -1) {add}; END IF; RETURN NULL; END"
    )
    return [
        f"CREATE FUNCTION {_FILL_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$",
        f"CREATE TRIGGER {_FILL_TRIGGER} AFTER INSERT ON custody_event FOR EACH ROW "
        f"WHEN ({when}) EXECUTE FUNCTION {_FILL_TRIGGER}()",
    ]


def fill_drop_statements(dialect: str) -> list[str]:
    """The DDL that removes the fill trigger."""
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {_FILL_TRIGGER} ON custody_event",
            f"DROP FUNCTION IF EXISTS {_FILL_TRIGGER}()",
        ]
    return [f"DROP TRIGGER IF EXISTS {_FILL_TRIGGER}"]
