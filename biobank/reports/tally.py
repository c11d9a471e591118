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

A tube belongs to its patient's site (site 0: an anonymised tube, no patient). A correction
that moves tubes between keys (a sample's material or patient, a patient's site, a tube's type
or sample) moves their stock along in the month it happens; past flows stay where they were.

As with ``biobank.requests.tally``: triggers, not services, keep them, so every path that
writes tubes (a split, the CSV import, a status change) keeps them right; a migration that
recreates ``aliquot``, ``sample`` or ``patient`` on SQLite (Alembic's batch "move and copy")
drops the triggers with the old table and must create them again (``create_statements``).
The tests compare the tallies with a recount from the tubes and the custody log.
"""

from __future__ import annotations

from typing import NamedTuple

from biobank.samples.states import IN_HOUSE

FLOWS = "inventory_tally"
THAWS = "thaw_tally"
FLOW_KEY = "month, site_id, material_id, aliquot_type_id, kind"
THAW_KEY = "site_id, material_id, aliquot_type_id, freeze_thaw_count"
KINDS = ("received", "shipped", "returned", "consumed", "destroyed", "missing", "found",
         "blocked", "unblocked", "in_stock")
_HOUSE = "(" + ", ".join(f"'{s}'" for s in sorted(IN_HOUSE)) + ")"

# The month of a timestamp column, and of the moment the change happens, per dialect.
_MONTH = {"sqlite": "strftime('%Y-%m', {0})", "postgresql": "to_char({0}, 'YYYY-MM')"}
_NOW = {"sqlite": "strftime('%Y-%m', 'now')",
        "postgresql": "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')"}


def _kind(old: str | None, new: str) -> str:
    """The flow a status change (or a tube made with a status) counts as, or NULL."""
    back = (f"WHEN {old} = 'shipped' AND {new} = 'available' THEN 'returned' "
            f"WHEN {old} = 'missing' AND {new} = 'available' THEN 'found' "
            f"WHEN {old} = 'blocked' AND {new} = 'available' THEN 'unblocked' ") if old else ""
    return (f"CASE {back}WHEN {new} IN ('shipped', 'consumed', 'destroyed', 'missing', "
            f"'blocked') THEN {new} END")


def _tube_key(tube: str) -> str:
    """From ``sample`` (aliased s) joined to its patient (p): the tube's site and material."""
    return ("FROM sample s LEFT JOIN patient p ON p.id = s.patient_id "
            f"WHERE s.id = {tube}.sample_id")


def _flow(month: str, tube: str, kind: str, tubes: str, condition: str = "1 = 1") -> str:
    return (f"INSERT INTO {FLOWS} ({FLOW_KEY}, tubes) "
            f"SELECT {month}, coalesce(p.site_id, 0), s.material_id, {tube}.aliquot_type_id, "
            f"{kind}, {tubes} {_tube_key(tube)} AND {condition} "
            f"ON CONFLICT ({FLOW_KEY}) DO UPDATE SET tubes = {FLOWS}.tubes + excluded.tubes")


def _thaw(tube: str, tubes: str) -> str:
    return (f"INSERT INTO {THAWS} ({THAW_KEY}, tubes) "
            f"SELECT coalesce(p.site_id, 0), s.material_id, {tube}.aliquot_type_id, "
            f"{tube}.freeze_thaw_count, {tubes} {_tube_key(tube)} "
            f"AND {tube}.status IN {_HOUSE} "
            f"ON CONFLICT ({THAW_KEY}) DO UPDATE SET tubes = {THAWS}.tubes + excluded.tubes")


def _moved(dialect: str, where: str, old_site: str, new_site: str, old_material: str,
           new_material: str) -> tuple[str, ...]:
    """Tubes held of the samples ``where`` selects move from the old key to the new one."""
    now = _NOW[dialect]
    held = f"FROM aliquot a JOIN sample s ON s.id = a.sample_id WHERE {where} " \
           f"AND a.status IN {_HOUSE}"
    # A material read from the samples (a patient's move) is a column to group by; one from
    # the trigger's row (a sample's correction) is a constant of the statement.
    by = ", s.material_id" if "s.material_id" in (old_material, new_material) else ""
    statements = []
    for site, material, sign in ((old_site, old_material, "-"), (new_site, new_material, "")):
        statements.append(
            f"INSERT INTO {FLOWS} ({FLOW_KEY}, tubes) "
            f"SELECT {now}, {site}, {material}, a.aliquot_type_id, 'in_stock', "
            f"{sign}count(*) {held} GROUP BY a.aliquot_type_id{by} "
            f"ON CONFLICT ({FLOW_KEY}) DO UPDATE SET tubes = {FLOWS}.tubes + excluded.tubes")
        statements.append(
            f"INSERT INTO {THAWS} ({THAW_KEY}, tubes) "
            f"SELECT {site}, {material}, a.aliquot_type_id, a.freeze_thaw_count, "
            f"{sign}count(*) {held} GROUP BY a.aliquot_type_id, a.freeze_thaw_count{by} "
            f"ON CONFLICT ({THAW_KEY}) DO UPDATE SET tubes = {THAWS}.tubes + excluded.tubes")
    return tuple(statements)


class Trigger(NamedTuple):
    """A row trigger, written once for SQLite and PostgreSQL."""

    name: str
    event: str
    when: str
    statements: tuple[str, ...]


def triggers(dialect: str) -> tuple[Trigger, ...]:
    """The tallies' triggers on ``dialect``."""
    month, now = _MONTH[dialect].format("NEW.created_at"), _NOW[dialect]
    key_changed = ("(OLD.status <> NEW.status OR OLD.sample_id <> NEW.sample_id "
                   "OR OLD.aliquot_type_id <> NEW.aliquot_type_id)")
    site_of = "(SELECT site_id FROM patient WHERE id = {0})"
    return (
        Trigger("inventory_tally_aliquot_insert", "INSERT ON aliquot", "1 = 1", (
            _flow(month, "NEW", "'received'", "1"),
            _flow(month, "NEW", _kind(None, "NEW.status"), "1",
                  f"{_kind(None, 'NEW.status')} IS NOT NULL"),
            _flow(month, "NEW", "'in_stock'", "1", f"NEW.status IN {_HOUSE}"),
            _thaw("NEW", "1"))),
        Trigger("inventory_tally_aliquot_update",
                "UPDATE OF status, sample_id, aliquot_type_id, freeze_thaw_count ON aliquot",
                f"{key_changed} OR OLD.freeze_thaw_count <> NEW.freeze_thaw_count", (
                    _flow(now, "NEW", _kind("OLD.status", "NEW.status"), "1",
                          f"OLD.status <> NEW.status AND "
                          f"{_kind('OLD.status', 'NEW.status')} IS NOT NULL"),
                    _flow(now, "OLD", "'in_stock'", "-1",
                          f"OLD.status IN {_HOUSE} AND {key_changed}"),
                    _flow(now, "NEW", "'in_stock'", "1",
                          f"NEW.status IN {_HOUSE} AND {key_changed}"),
                    _thaw("OLD", "-1"), _thaw("NEW", "1"))),
        Trigger("inventory_tally_sample_update", "UPDATE OF material_id, patient_id ON sample",
                "OLD.material_id <> NEW.material_id "
                "OR coalesce(OLD.patient_id, 0) <> coalesce(NEW.patient_id, 0)",
                _moved(dialect, "s.id = NEW.id",
                       f"coalesce({site_of.format('OLD.patient_id')}, 0)",
                       f"coalesce({site_of.format('NEW.patient_id')}, 0)",
                       "OLD.material_id", "NEW.material_id")),
        Trigger("inventory_tally_patient_update", "UPDATE OF site_id ON patient",
                "OLD.site_id <> NEW.site_id",
                _moved(dialect, "s.patient_id = NEW.id", "OLD.site_id", "NEW.site_id",
                       "s.material_id", "s.material_id")),
    )


def create_statements(dialect: str) -> list[str]:
    """The DDL of the triggers on ``dialect`` ("sqlite" or "postgresql")."""
    if dialect not in _MONTH:
        raise ValueError(f"no inventory tally triggers for {dialect}")
    found = []
    for trigger in triggers(dialect):
        body = "".join(f"{s}; " for s in trigger.statements)
        if dialect == "sqlite":
            found.append(f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                         f"WHEN {trigger.when} BEGIN {body}END")
        else:
            found += [(f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$$ BEGIN {body}RETURN NULL; END $$"),
                      (f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                       f"WHEN ({trigger.when}) EXECUTE FUNCTION {trigger.name}()")]
    return found


def drop_statements(dialect: str) -> list[str]:
    """The DDL that removes the triggers (the migration's downgrade)."""
    found = []
    for trigger in triggers(dialect):
        table = trigger.event.split(" ON ")[1]
        found.append(f"DROP TRIGGER IF EXISTS {trigger.name}"
                     + (f" ON {table}" if dialect == "postgresql" else ""))
        if dialect == "postgresql":
            found.append(f"DROP FUNCTION IF EXISTS {trigger.name}()")
    return found
