"""MONOCHROME1 radiographs and VOI windows, as pydicom computes them.

Inputs:
  * the three real MONOCHROME1 CR radiographs of pydicom's test files (dicomdirtests/77654033/CR1..CR3, from pcir.org,
    downsized to 16 x 16 by pydicom; 12 bits stored in 16, RescaleSlope 0.684, RescaleIntercept 200, window 1600 / 2800),
    fetched into $MEDVLP_TESTDATA/pydicom/CR/ by scripts/fetch-test-data.sh;
  * a MONOCHROME2 CT slice with a window (pydicom's CT5N/2062), for the window alone;
  * data/monochrome1/signed_sigmoid.dcm, written here by pydicom: a signed 16-bit (14 stored) MONOCHROME1 DX with two
    windows and VOILUTFunction SIGMOID, for the signed range, the window index and the sigmoid.

For each, pydicom 2.x's values (float64, row-major):
  * "modality": apply_modality_lut(pixel_array, ds) (stored * RescaleSlope + RescaleIntercept);
  * "windowed": apply_voi_lut(modality, ds, index) (apply_windowing: LINEAR / LINEAR_EXACT / SIGMOID into [y_min, y_max]);
  * for MONOCHROME1 "inverted" and "windowed_inverted": y_min + y_max - value, with [y_min, y_max] the output range
    pydicom's apply_windowing uses (0 .. 2^BitsStored - 1, or the signed range, through the rescale): the display
    inversion of PS3.3 C.7.6.3.1.2 (MONOCHROME1: the minimum is white), after the modality LUT and the VOI window.
Writes data/monochrome1.json (and data/monochrome1/signed_sigmoid.dcm).
Run: MEDVLP_TESTDATA=/path/to/.testdata /usr/bin/python3 tests/golden/make_monochrome1_golden.py
"""
import json
import os

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
testdata = os.environ.get("MEDVLP_TESTDATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".testdata")
out = os.path.join(here, "monochrome1")
os.makedirs(out, exist_ok=True)


def output_range(ds):
    """[y_min, y_max] exactly as pydicom 2.x's apply_windowing computes it."""
    if ds.PixelRepresentation == 0:
        y_min, y_max = 0, 2 ** ds.BitsStored - 1
    else:
        y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    if ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
        y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return float(y_min), float(y_max)


def signed_sigmoid(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.20261202.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "DX", "Synthetic^Monochrome1", "MEDVLP-M1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.20261202.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.20261202.3"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.Rows, ds.Columns = 8, 12
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 14, 13, 1
    ds.ImagerPixelSpacing = ["0.2", "0.2"]
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "0.5", "-30", "US"
    ds.WindowCenter, ds.WindowWidth = ["100", "-400"], ["800", "3000"]
    ds.VOILUTFunction = "SIGMOID"
    yy, xx = np.mgrid[0:8, 0:12]
    stored = np.clip(np.round(-6000 + 1100 * xx + 250 * yy), -(2 ** 13), 2 ** 13 - 1).astype(np.int16)
    ds.PixelData = stored.tobytes()
    ds.is_implicit_VR, ds.is_little_endian = False, True
    ds.save_as(path, write_like_original=False)


def record(path, index=0):
    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    windowed = apply_voi_lut(modality.copy(), ds, index=index).astype(np.float64)
    entry = {
        "photometric": str(ds.PhotometricInterpretation),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "window_index": index,
        "voi_function": str(ds.get("VOILUTFunction", "LINEAR")),
        "modality": [float(v) for v in modality.reshape(-1)],
        "windowed": [float(v) for v in windowed.reshape(-1)],
    }
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y_min, y_max = output_range(ds)
        entry["y_min"], entry["y_max"] = y_min, y_max
        entry["inverted"] = [float(y_min + y_max - v) for v in modality.reshape(-1)]
        entry["windowed_inverted"] = [float(y_min + y_max - v) for v in windowed.reshape(-1)]
    return entry


signed_sigmoid(os.path.join(out, "signed_sigmoid.dcm"))
result = {"pydicom": pydicom.__version__}
for rel in ("pydicom/CR/CR1/6154", "pydicom/CR/CR2/6247", "pydicom/CR/CR3/6278", "pydicom/CT5N/2062"):
    result[rel] = record(os.path.join(testdata, rel))
result["monochrome1/signed_sigmoid.dcm"] = record(os.path.join(out, "signed_sigmoid.dcm"), index=1)
with open(os.path.join(here, "monochrome1.json"), "w") as f:
    json.dump(result, f, indent=1)
print("wrote", os.path.join(here, "monochrome1.json"), {k: (v["photometric"], len(v["modality"])) for k, v in result.items() if k != "pydicom"})
