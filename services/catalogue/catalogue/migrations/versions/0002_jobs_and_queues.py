"""jobs and queues projections

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'jobs',
        sa.Column('job_id', sa.String(length=128), nullable=False),
        sa.Column('queue', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=256), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('sop_instance_uids', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('max_retries', sa.Integer(), nullable=False),
        sa.Column('not_before', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('completed', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('remaining', sa.Integer(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('worker', sa.String(length=128), nullable=False),
        sa.Column('created_by', sa.String(length=256), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('last_command', sa.String(length=32), nullable=False),
        sa.Column('last_command_by', sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_jobs')),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_study_instance_uid'), ['study_instance_uid'],
                              unique=False)
        batch_op.create_index('ix_jobs_queue_state', ['queue', 'state'], unique=False)
        batch_op.create_index('ix_jobs_state', ['state'], unique=False)

    op.create_table(
        'queues',
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_queues')),
    )


def downgrade() -> None:
    op.drop_table('queues')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state')
        batch_op.drop_index('ix_jobs_queue_state')
        batch_op.drop_index(batch_op.f('ix_jobs_study_instance_uid'))
    op.drop_table('jobs')
