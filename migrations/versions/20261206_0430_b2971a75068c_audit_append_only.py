"""The audit trail is append-only in the database: triggers refuse UPDATE and DELETE on
audit_record, as on the custody events and the consent record.

Revision ID: b2971a75068c
Revises: c4e1a9d27b5f
Create Date: 2026-12-06 04:30:00
"""

from __future__ import annotations

from alembic import op

revision = 'b2971a75068c'
down_revision = 'c4e1a9d27b5f'
branch_labels = None
depends_on = None

TABLE = "audit_record"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(f"""
            CREATE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
        """)
    for verb in ("UPDATE", "DELETE"):
        if postgres:
            op.execute(f"""
                CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE}
                FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()
            """)
        else:
            op.execute(f"""
                CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE}
                BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END
            """)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER {TABLE}_no_{verb}" + (f" ON {TABLE}" if postgres else ""))
    if postgres:
        op.execute(f"DROP FUNCTION {TABLE}_append_only()")
