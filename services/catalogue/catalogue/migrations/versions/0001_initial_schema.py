"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 08:09:45.114234
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('instances',
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('instance_number', sa.String(length=16), nullable=False),
    sa.Column('content_date', sa.String(length=16), nullable=False),
    sa.Column('content_time', sa.String(length=32), nullable=False),
    sa.Column('number_of_frames', sa.Integer(), nullable=False),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('specific_character_set', sa.String(length=128), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('calling_ae', sa.String(length=16), nullable=False),
    sa.Column('called_ae', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_time', sa.DateTime(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sop_instance_uid', name=op.f('pk_instances'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instances_series_instance_uid'), ['series_instance_uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_study_instance_uid'), ['study_instance_uid'], unique=False)

    op.create_table('journal',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ce_id', sa.String(length=200), nullable=False),
    sa.Column('ce_type', sa.String(length=200), nullable=False),
    sa.Column('ce_source', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('ce_time', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_journal')),
    sa.UniqueConstraint('ce_id', name=op.f('uq_journal_ce_id'))
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_subject'), ['subject'], unique=False)

    op.create_table('locations',
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('storage_key', sa.String(length=512), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('stored_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sop_instance_uid', 'tier', name=op.f('pk_locations'))
    )
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_locations_study_instance_uid'), ['study_instance_uid'], unique=False)

    op.create_table('patients',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('issuer_of_patient_id', sa.String(length=64), nullable=False),
    sa.Column('patient_name', sa.String(length=324), nullable=False),
    sa.Column('patient_birth_date', sa.String(length=16), nullable=False),
    sa.Column('patient_sex', sa.String(length=16), nullable=False),
    sa.Column('updated_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', 'issuer_of_patient_id', name=op.f('pk_patients'))
    )
    op.create_table('series',
    sa.Column('series_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('series_number', sa.String(length=16), nullable=False),
    sa.Column('series_description', sa.String(length=256), nullable=False),
    sa.Column('series_date', sa.String(length=16), nullable=False),
    sa.Column('series_time', sa.String(length=32), nullable=False),
    sa.Column('body_part_examined', sa.String(length=64), nullable=False),
    sa.Column('station_name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('series_instance_uid', name=op.f('pk_series'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_study_instance_uid'), ['study_instance_uid'], unique=False)

    op.create_table('studies',
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('issuer_of_patient_id', sa.String(length=64), nullable=False),
    sa.Column('study_date', sa.String(length=16), nullable=False),
    sa.Column('study_time', sa.String(length=32), nullable=False),
    sa.Column('accession_number', sa.String(length=64), nullable=False),
    sa.Column('study_id', sa.String(length=64), nullable=False),
    sa.Column('study_description', sa.String(length=256), nullable=False),
    sa.Column('referring_physician_name', sa.String(length=324), nullable=False),
    sa.Column('institution_name', sa.String(length=128), nullable=False),
    sa.Column('first_received', sa.DateTime(), nullable=False),
    sa.Column('last_received', sa.DateTime(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('stable_revision', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('study_instance_uid', name=op.f('pk_studies'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index('ix_studies_patient', ['patient_id', 'issuer_of_patient_id'], unique=False)
        batch_op.create_index('ix_studies_pending', ['stable_revision', 'revision'], unique=False)

    op.create_table('study_locations',
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=False),
    sa.Column('archive_id', sa.String(length=128), nullable=False),
    sa.Column('location', sa.String(length=1024), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('number_of_instances', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('archived_at', sa.DateTime(), nullable=False),
    sa.Column('job_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('study_instance_uid', 'tier', 'archive_id', name=op.f('pk_study_locations'))
    )



def downgrade() -> None:

    op.drop_table('study_locations')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index('ix_studies_pending')
        batch_op.drop_index('ix_studies_patient')

    op.drop_table('studies')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_study_instance_uid'))

    op.drop_table('series')
    op.drop_table('patients')
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_locations_study_instance_uid'))

    op.drop_table('locations')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_subject'))

    op.drop_table('journal')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_study_instance_uid'))
        batch_op.drop_index(batch_op.f('ix_instances_series_instance_uid'))

    op.drop_table('instances')

