"""The availability tally: available tubes per timepoint, material, aliquot type and patient,
kept by the database's triggers on ``aliquot`` and ``sample``.

Availability counts by timepoint × material × aliquot type, with the patients per group, for
the patients whose consent lets tubes out. Counted from the tubes, every request groups each
sample's available tubes and then regroups those per-sample counts (one row per sample and
type: ~330,000 at a million tubes) by timepoint, material and type — a sort SQLite cannot
avoid, as it has no hash aggregation: ~400 ms of CPU at a million tubes. The tally keeps those
per-patient counts in the order availability reads them, so a request reads them in key order
and filters them by patient.

Triggers (not the services) keep it, so every path that writes tubes — a split, the CSV
import's executemany, a status change, a correction — keeps it right without knowing of it.
Rows whose count falls to 0 stay (a tube may come back); readers skip them.

The migration that made the tally (48b1893b1b55) wrote these triggers out as they were then
and filled the tally from the tubes already there. A migration that recreates ``aliquot`` or
``sample`` on SQLite (Alembic's batch "move and copy") drops the triggers with the old table:
it must create them again (``create_statements``); the tests compare the tally with a recount.
"""

from __future__ import annotations

from typing import NamedTuple

from biobank.samples.states import Status

TABLE = "availability_tally"
# The status counted, as an SQL literal in the triggers' text.
AVAILABLE = f"'{Status.AVAILABLE.value}'"
KEY = "timepoint_key, material_id, aliquot_type_id, patient_id"
# The sample's side of the key; 0 stands for "no timepoint" (unscheduled samples) and for
# "no patient" (anonymised samples: biobank.consent.anonymise).
_SAMPLE_KEY = "coalesce(timepoint_id, 0), material_id, {type}, coalesce(patient_id, 0)"


def _add(tube: str) -> str:
    """One tube (``NEW`` or ``OLD``) more in its group."""
    return (
        f"INSERT INTO {TABLE} ({KEY}, tubes) "
        f"SELECT {_SAMPLE_KEY.format(type=f'{tube}.aliquot_type_id')}, 1 FROM sample "
        f"WHERE {tube}.status = {AVAILABLE} AND id = {tube}.sample_id "
        f"ON CONFLICT ({KEY}) DO UPDATE SET tubes = {TABLE}.tubes + 1"
    )


def _remove(tube: str) -> str:
    """One tube fewer in its group."""
    return (
        f"UPDATE {TABLE} SET tubes = tubes - 1 "
        f"WHERE {tube}.status = {AVAILABLE} AND ({KEY}) = "
        f"(SELECT {_SAMPLE_KEY.format(type=f'{tube}.aliquot_type_id')} FROM sample "
        f"WHERE id = {tube}.sample_id)"
    )


_SAMPLE_MOVED_OUT = (
    f"UPDATE {TABLE} SET tubes = tubes - (SELECT count(*) FROM aliquot "
    f"WHERE aliquot.sample_id = OLD.id AND aliquot.status = {AVAILABLE} "
    f"AND aliquot.aliquot_type_id = {TABLE}.aliquot_type_id) "
    f"WHERE timepoint_key = coalesce(OLD.timepoint_id, 0) AND material_id = OLD.material_id "
    f"AND patient_id = coalesce(OLD.patient_id, 0)"
)
_SAMPLE_MOVED_IN = (
    f"INSERT INTO {TABLE} ({KEY}, tubes) "
    f"SELECT coalesce(NEW.timepoint_id, 0), NEW.material_id, aliquot_type_id, "
    f"coalesce(NEW.patient_id, 0), "
    f"count(*) FROM aliquot WHERE sample_id = NEW.id AND status = {AVAILABLE} "
    f"GROUP BY aliquot_type_id "
    f"ON CONFLICT ({KEY}) DO UPDATE SET tubes = {TABLE}.tubes + excluded.tubes"
)


class Trigger(NamedTuple):
    """A row trigger, written once for SQLite and PostgreSQL."""

    name: str
    event: str  # "INSERT ON aliquot", ...
    when: str
    statements: tuple[str, ...]


TRIGGERS = (
    Trigger(
        "availability_tally_aliquot_insert",
        "INSERT ON aliquot",
        f"NEW.status = {AVAILABLE}",
        (_add("NEW"),),
    ),
    Trigger(
        "availability_tally_aliquot_delete",
        "DELETE ON aliquot",
        f"OLD.status = {AVAILABLE}",
        (_remove("OLD"),),
    ),
    Trigger(
        "availability_tally_aliquot_update",
        "UPDATE OF status, sample_id, aliquot_type_id ON aliquot",
        f"(OLD.status = {AVAILABLE} OR NEW.status = {AVAILABLE}) AND "
        "(OLD.status <> NEW.status OR OLD.sample_id <> NEW.sample_id "
        "OR OLD.aliquot_type_id <> NEW.aliquot_type_id)",
        (_remove("OLD"), _add("NEW")),
    ),
    # A sample corrected to another timepoint, material or patient (or anonymised) takes its
    # tubes along.
    Trigger(
        "availability_tally_sample_update",
        "UPDATE OF timepoint_id, material_id, patient_id ON sample",
        "coalesce(OLD.timepoint_id, 0) <> coalesce(NEW.timepoint_id, 0) "
        "OR OLD.material_id <> NEW.material_id "
        "OR coalesce(OLD.patient_id, 0) <> coalesce(NEW.patient_id, 0)",
        (_SAMPLE_MOVED_OUT, _SAMPLE_MOVED_IN),
    ),
)


def create_statements(dialect: str) -> list[str]:
    """The DDL of the triggers on ``dialect`` ("sqlite" or "postgresql")."""
    found = []
    for trigger in TRIGGERS:
        if dialect == "sqlite":
            body = "".join(f"{s}; " for s in trigger.statements)
            found.append(
                f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                f"WHEN {trigger.when} BEGIN {body}END"
            )
        elif dialect == "postgresql":
            body = "".join(f"{s}; " for s in trigger.statements)
            found += [
                (
                    f"CREATE FUNCTION {trigger.name}() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN {body}RETURN NULL; END $$"
                ),
                (
                    f"CREATE TRIGGER {trigger.name} AFTER {trigger.event} FOR EACH ROW "
                    f"WHEN ({trigger.when}) EXECUTE FUNCTION {trigger.name}()"
                ),
            ]
        else:
            raise ValueError(f"no availability tally triggers for {dialect}")
    return found
