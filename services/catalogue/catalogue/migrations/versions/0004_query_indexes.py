"""indexes for C-FIND / QIDO-RS at a million instances

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 23:50:00

- studies (study_date, study_time, study_instance_uid): StudyDate ranges, and the order every
  study-level page is returned in, so a page is read in order instead of sorting all matches.
- studies (accession_number): a RIS looks a study up by its accession number.
- series (modality, study_instance_uid): ModalitiesInStudy matching of a rare modality starts
  from the series that have it.
- PostgreSQL only, patients (lower(patient_name) text_pattern_ops): PatientName matching,
  case-insensitive by default, exact or with a prefix wildcard (``DOE*``), under any database
  collation. Not on SQLite, whose lower() the catalogue replaces per connection (Unicode
  folding): an index on it would not match the lower() of another SQLite client.

The instances table gets no new index: study and series counts are index-only scans of the
existing ix_instances_study_instance_uid / ix_instances_series_instance_uid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_studies_date', 'studies',
                    ['study_date', 'study_time', 'study_instance_uid'], unique=False)
    op.create_index('ix_studies_accession_number', 'studies', ['accession_number'], unique=False)
    op.create_index('ix_series_modality', 'series', ['modality', 'study_instance_uid'],
                    unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_patients_name_lower', 'patients',
                        [sa.text('lower(patient_name) text_pattern_ops')], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_patients_name_lower', table_name='patients')
    op.drop_index('ix_series_modality', table_name='series')
    op.drop_index('ix_studies_accession_number', table_name='studies')
    op.drop_index('ix_studies_date', table_name='studies')
