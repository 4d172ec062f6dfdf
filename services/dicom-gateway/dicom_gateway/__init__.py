"""dicom-gateway: DIMSE (C-ECHO, C-STORE, C-FIND) into the cache tier and the event bus."""
