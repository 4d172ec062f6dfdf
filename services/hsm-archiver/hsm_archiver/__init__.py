"""hsm-archiver: archive tiers HSM (mounted file system) and PACS Store and Remember.

Registers the archive facts it publishes (``dicomvault.study.recalled.v1``) with the event
type registry on import.
"""

from dicomvault.events import TYPES, register
from dicomvault.events.v1 import archive_pb2

if "dicomvault.study.recalled.v1" not in TYPES:
    register("dicomvault.study.recalled.v1", archive_pb2.StudyRecalled)
