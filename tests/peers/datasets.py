"""Generated DICOM test data: studies of CT or small images, written as Part 10 files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

ROOT = "1.2.826.0.1.3680043.10.1234."  # a test root; generate_uid appends a random suffix


def make_instance(
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str | None = None,
    patient_id: str = "PAT001",
    patient_name: str = "DOE^JANE",
    modality: str = "CT",
    study_date: str = "20240105",
    study_time: str = "101500",
    accession: str = "ACC001",
    series_number: int = 1,
    instance_number: int = 1,
    size: int = 64,
    station: str = "CT01",
    description: str = "CHEST",
    seed: int = 0,
) -> Dataset:
    """One uncompressed image instance (CT Image Storage if modality CT, else SC)."""
    ds = Dataset()
    sop_class = CTImageStorage if modality == "CT" else SecondaryCaptureImageStorage
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or generate_uid(ROOT)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.SeriesDate = study_date
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.StudyDescription = description
    ds.ReferringPhysicianName = "WHO^DR"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.StationName = station
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.KVP = 120
        ds.ImagePositionPatient = [0, 0, float(instance_number)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1.0
    rng = np.random.default_rng(seed + instance_number)
    ds.PixelData = rng.integers(0, 4096, size=(size, size), dtype=np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


@dataclass
class Study:
    study_uid: str
    patient_id: str
    files: list[Path] = field(default_factory=list)
    series: dict[str, list[str]] = field(default_factory=dict)  # series uid -> sop uids

    @property
    def sop_uids(self) -> list[str]:
        return [s for sops in self.series.values() for s in sops]


def write_study(
    folder: Path,
    *,
    series: int = 2,
    per_series: int = 3,
    size: int = 64,
    patient_id: str = "PAT001",
    patient_name: str = "DOE^JANE",
    modalities: tuple[str, ...] = ("CT", "OT"),
    study_date: str = "20240105",
    accession: str = "ACC001",
    seed: int = 0,
) -> Study:
    """Write a study of ``series`` × ``per_series`` instances under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study = Study(study_uid=generate_uid(ROOT), patient_id=patient_id)
    n = 0
    for s in range(series):
        series_uid = generate_uid(ROOT)
        study.series[series_uid] = []
        for i in range(per_series):
            n += 1
            ds = make_instance(
                study_uid=study.study_uid, series_uid=series_uid, patient_id=patient_id,
                patient_name=patient_name, modality=modalities[s % len(modalities)],
                study_date=study_date, accession=accession, series_number=s + 1,
                instance_number=i + 1, size=size, seed=seed,
            )
            path = folder / f"{study.study_uid[-12:]}_{s}_{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            study.files.append(path)
            study.series[series_uid].append(ds.SOPInstanceUID)
    return study


def dataset_bytes(part10: bytes | Path) -> bytes:
    """The data set after the preamble and file meta group (what travels over DIMSE), of a
    Part 10 file's bytes or of the file itself."""
    if isinstance(part10, Path):
        part10 = part10.read_bytes()
    assert part10[128:132] == b"DICM"
    meta_len = int.from_bytes(part10[140:144], "little")
    return part10[144 + meta_len:]


def gdcm_transcode(src: Path, dst: Path, ts: str) -> None:
    """Write ``src`` re-encoded in transfer syntax ``ts`` by GDCM (the only encoder here of
    JPEG Lossless SV1)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(ts)))
    change.SetInput(reader.GetImage())
    assert change.Change(), f"GDCM cannot encode {ts}"
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
