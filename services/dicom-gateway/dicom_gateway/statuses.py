"""Every DIMSE status the gateway answers, by name (see docs/gateway.md).

C-STORE (PS3.4 B.2.3, PS3.7 Annex C):
- SUCCESS 0x0000: the Part 10 file is durable in the cache tier *and* InstanceStored is on
  the broker. Also a resend of identical bytes, and different bytes under policy keep/replace.
- DUPLICATE_SOP_INSTANCE 0x0111: different bytes for a stored SOP Instance UID under policy
  reject; the first copy stays.
- OUT_OF_RESOURCES 0xA700: the file could not be written (disk full, permissions, I/O error);
  also a data set over ``gateway.max_dataset_bytes`` (dropped as it arrived).
- BUS_UNAVAILABLE 0xA701: the broker did not take InstanceStored within store_timeout_s; the
  file written for this request is removed (or the replaced copy restored). Send again later.
- DATASET_DOES_NOT_MATCH 0xA900: a UID is missing or invalid (SOP Class/Instance, Study,
  Series: e.g. ``../../x``), or the dataset's SOP Class/Instance UID differs from the
  request's Affected SOP Class/Instance UID. Nothing is stored.
- CANNOT_UNDERSTAND 0xC000: the dataset cannot be parsed (truncated, bad element framing,
  undecodable deflate stream). Nothing is stored.
- PROCESSING_FAILURE 0xC001: an unexpected error in the gateway. Nothing is stored.

C-FIND (PS3.4 C.4.1.1.4):
- PENDING 0xFF00 per match; PENDING_WARNING 0xFF01 when the identifier held matching keys the
  archive does not support (ignored for matching, returned empty).
- SUCCESS 0x0000 after the last match; CANCEL 0xFE00 after a C-CANCEL.
- IDENTIFIER_DOES_NOT_MATCH 0xA900: no or an unknown Query/Retrieve Level, PATIENT level in
  the Study Root model, or a key/value the catalogue refuses (e.g. a matching key of a lower
  level, a malformed date range).
- OUT_OF_RESOURCES 0xA700: the catalogue API is unreachable or failing; ask again later.
- UNABLE_TO_PROCESS 0xC000: the identifier cannot be decoded, or an unexpected error.

Every DIMSE service (PS3.7 C.5 "Refused: Not Authorized" 0x0124 mapped into the services'
Cxxx "unable to process" range, since C-STORE/C-FIND/C-MOVE/C-GET define no such status):
- NOT_PERMITTED 0xC124: the calling AE is known but the modalities table does not allow it
  this operation (may_store, may_query, may_retrieve). ErrorComment says which.

C-MOVE / C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4):
- PENDING 0xFF00 after every sub-operation and every second while waiting for a recall,
  with remaining/completed/failed/warning counts.
- SUCCESS 0x0000: every sub-operation completed (also: nothing matched, counts 0).
- SUBOPS_WARNING 0xB000: sub-operations complete, one or more failed or warned, at least one
  completed; FailedSOPInstanceUIDList names the failed ones.
- SUBOPS_FAILED 0xA702: no sub-operation completed and at least one failed (e.g. the whole
  study is off the cache and was not recalled in time, or the destination refused all).
- MATCHES_UNKNOWN 0xA701: the catalogue is unreachable, or more than 65535 instances match.
- MOVE_DESTINATION_UNKNOWN 0xA801: the Move Destination is not in the modalities table
  (with host and port), or no association with it could be established.
- IDENTIFIER_DOES_NOT_MATCH 0xA900: no/unknown level, missing or wildcard unique key.
- CANCEL 0xFE00: a C-CANCEL arrived (checked before each sub-operation and while waiting).
"""

SUCCESS = 0x0000

# C-STORE
DUPLICATE_SOP_INSTANCE = 0x0111
OUT_OF_RESOURCES = 0xA700
BUS_UNAVAILABLE = 0xA701
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0xC001

# C-FIND
PENDING = 0xFF00
PENDING_WARNING = 0xFF01
CANCEL = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


# Any service: the calling AE may not do this (modalities table)
NOT_PERMITTED = 0xC124
# Any service (PS3.7 C.5): the command names a SOP class its presentation context is not for;
# a command field the association's service does not know
SOP_CLASS_NOT_SUPPORTED = 0x0122
UNRECOGNIZED_OPERATION = 0x0211
# DIMSE-N services (PS3.7 C.4): a required parameter of the request is missing or invalid
INVALID_ARGUMENT = 0x0115

# C-MOVE / C-GET
SUBOPS_WARNING = 0xB000
SUBOPS_FAILED = 0xA702
MATCHES_UNKNOWN = 0xA701
MOVE_DESTINATION_UNKNOWN = 0xA801


def label(status: int) -> str:
    """The metrics label of a status: fixed hex text, low cardinality."""
    return f"0x{status:04X}"
