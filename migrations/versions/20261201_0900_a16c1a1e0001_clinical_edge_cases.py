"""Clinical edge cases: provisional risk groups, the day-8 date, overrides of the one-way
escalation with their warning, and the trial (its opening date bounds diagnosis dates).

Existing patients under six months who are MR while their WBC or prednisone response is
unknown become provisional (the rule of biobank.patients.risk, written out here as it was at
this revision); their history entries stay as recorded.

Revision ID: a16c1a1e0001
Revises: 48b1893b1b55
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op


revision = 'a16c1a1e0001'
down_revision = '48b1893b1b55'
branch_labels = None
depends_on = None


def upgrade() -> None:
    trial = op.create_table(
        'trial',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('registry_id', sa.String(length=64), nullable=False),
        sa.Column('opened_on', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trial')),
        sa.UniqueConstraint('code', name=op.f('uq_trial_code')),
    )
    # ClinicalTrials.gov NCT05327894: Study Start Date 2022-12-15.
    op.bulk_insert(trial, [{"code": "INTERFANT-21",
                            "name": "Interfant-21: infants with KMT2A-rearranged ALL",
                            "registry_id": "NCT05327894", "opened_on": dt.date(2022, 12, 15)}])
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('day8_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('risk_provisional', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('risk_warning', sa.Text(), nullable=True))
    with op.batch_alter_table('risk_group_change', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provisional', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('override', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('warning', sa.Text(), nullable=True))
    op.execute("UPDATE patient SET risk_provisional = (age_at_diagnosis_days < 183 "
               "AND risk_group = 'MR' AND (wbc_at_diagnosis IS NULL "
               "OR prednisone_response <> 'good'))")
    # The defaults only filled existing rows: the models give the values from now on.
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.alter_column('risk_provisional', server_default=None)
    with op.batch_alter_table('risk_group_change', schema=None) as batch_op:
        batch_op.alter_column('provisional', server_default=None)
        batch_op.alter_column('override', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('risk_group_change', schema=None) as batch_op:
        batch_op.drop_column('warning')
        batch_op.drop_column('override')
        batch_op.drop_column('provisional')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_column('risk_warning')
        batch_op.drop_column('risk_provisional')
        batch_op.drop_column('day8_date')
    op.drop_table('trial')
