"""optical volumes projection (catalogue.volumes_projection)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'optical_volumes',
        sa.Column('archive_id', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=32), nullable=False),
        sa.Column('media_type', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('capacity_bytes', sa.BigInteger(), nullable=False),
        sa.Column('used_bytes', sa.BigInteger(), nullable=False),
        sa.Column('image_bytes', sa.BigInteger(), nullable=False),
        sa.Column('image_sha256', sa.String(length=64), nullable=False),
        sa.Column('number_of_studies', sa.Integer(), nullable=False),
        sa.Column('number_of_instances', sa.Integer(), nullable=False),
        sa.Column('study_instance_uids', sa.JSON(), nullable=False),
        sa.Column('close_reason', sa.String(length=16), nullable=False),
        sa.Column('copies', sa.JSON(), nullable=False),
        sa.Column('copies_verified', sa.Integer(), nullable=False),
        sa.Column('burn_failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('media_requested', sa.Boolean(), nullable=False),
        sa.Column('media_request', sa.Text(), nullable=False),
        sa.Column('media_request_studies', sa.JSON(), nullable=False),
        sa.Column('media_mount_path', sa.Text(), nullable=False),
        sa.Column('media_requested_at', sa.DateTime(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('verified_at', sa.DateTime(), nullable=True),
        sa.Column('deleted_at', sa.DateTime(), nullable=True),
        sa.Column('deleted_by', sa.String(length=256), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('archive_id', 'label', name=op.f('pk_optical_volumes')),
    )
    with op.batch_alter_table('optical_volumes', schema=None) as batch_op:
        batch_op.create_index('ix_optical_volumes_state', ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('optical_volumes', schema=None) as batch_op:
        batch_op.drop_index('ix_optical_volumes_state')
    op.drop_table('optical_volumes')
