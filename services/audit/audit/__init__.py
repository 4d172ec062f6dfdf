"""The audit service: DICOM audit messages (PS3.15 A.5) built from the archive's events, sent
as RFC 5424 syslog (IHE ATNA) and kept queryable."""
