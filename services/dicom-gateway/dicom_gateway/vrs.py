"""The value representations of PS3.5 Table 7.1-1, as an explicit VR element spells them.

Both readers of received bytes (``part10``'s framing walk and ``header``'s InstanceStored
reader) tell an element's length field by its VR: ``LONG`` VRs have two reserved bytes and a
32-bit length (PS3.5 7.1.2), ``SHORT`` ones a 16-bit length. ``TEXT`` is each VR's ``str``
(what pydicom's dictionary uses), so the header reader does not decode it per element.
"""

from __future__ import annotations

LONG = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
                  b"UT", b"UV"})
SHORT = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO",
                   b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
TEXT = {vr: vr.decode("ascii") for vr in LONG | SHORT}
