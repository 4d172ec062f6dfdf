"""Who may associate and do what: the modalities table plus the older allowlist.

- An AE in ``modalities`` may associate; its ``may_*`` flags say which operations it may do,
  and with host and port it is a C-MOVE destination.
- An AE only in ``allowed_calling_aes`` (the setting from before the table) may associate,
  store and query, as before; it may not retrieve and is no C-MOVE destination.
- ``accept_any_calling_ae``: every other AE is treated like an ``allowed_calling_aes`` one,
  and may also request storage commitment (the embedded archive). Without a table entry
  there is no host/port for the report's association: list the AE with host and port.
- An AE in ``recall_aes`` (a remote PACS sending our own studies back) may associate and
  store, whatever its table entry says about storing; its other rights come from its table
  entry, and without one it may do nothing else.
"""

from __future__ import annotations

from enum import StrEnum

from dicom_gateway.settings import GatewaySection, Modality


class Operation(StrEnum):
    STORE = "store"
    QUERY = "query"
    RETRIEVE = "retrieve"
    COMMITMENT = "commitment"


LEGACY = Modality(may_retrieve=False, may_request_commitment=False)
ANY = LEGACY.model_copy(update={"may_request_commitment": True})
RECALL_ONLY = Modality(may_store=True, may_query=False, may_retrieve=False,
                       may_request_commitment=False)


class Modalities:
    def __init__(self, cfg: GatewaySection) -> None:
        self.table = {ae.strip(): m for ae, m in cfg.modalities.items() if ae.strip()}
        self.legacy = {ae.strip() for ae in cfg.allowed_calling_aes if ae.strip()}
        self.accept_any = cfg.accept_any_calling_ae
        self.recall = {ae.strip() for ae in cfg.recall_aes if ae.strip()}

    def calling_aes(self) -> list[str] | None:
        """The AE titles that may associate; None = anyone."""
        if self.accept_any:
            return None
        return sorted(self.legacy | set(self.table) | self.recall)

    def entry(self, ae_title: str) -> Modality | None:
        ae = ae_title.strip()
        if ae in self.table:
            m = self.table[ae]
            return m.model_copy(update={"may_store": True}) if ae in self.recall else m
        if ae in self.recall:
            return RECALL_ONLY
        if self.accept_any:
            return ANY
        if ae in self.legacy:
            return LEGACY
        return None

    def permitted(self, ae_title: str, operation: Operation) -> bool:
        m = self.entry(ae_title)
        if m is None:
            return False
        return {Operation.STORE: m.may_store, Operation.QUERY: m.may_query,
                Operation.RETRIEVE: m.may_retrieve,
                Operation.COMMITMENT: m.may_request_commitment}[operation]

    def is_recall(self, ae_title: str) -> bool:
        """Does this AE send our own studies back (InstanceStored source 'recall')?"""
        return ae_title.strip() in self.recall

    def destination(self, ae_title: str) -> Modality | None:
        """The table entry of a C-MOVE destination, if it has somewhere to send to."""
        m = self.table.get(ae_title.strip())
        return m if m is not None and m.host and m.port else None
