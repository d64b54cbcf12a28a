"""2D inputs of the 2D models (M-FLAG, LVM-Med, PRIOR): single-frame radiographs and PNG / JPEG images, written and read
back by the reference libraries, never by MedVlp:

  * cr.dcm  Computed Radiography (CR Image Storage), written by pydicom: 16-bit MONOCHROME2, 48 rows x 64 columns,
            ImagerPixelSpacing 0.15 \\ 0.2 (no PixelSpacing, no ImagePositionPatient / ImageOrientationPatient, as CR
            and DX files are), RescaleSlope 2 / RescaleIntercept -100, explicit VR little endian
  * dx.dcm  Digital X-Ray (DX Image Storage for Presentation), pydicom, 12 bits stored in 16, PixelSpacing 0.1 \\ 0.1,
            implicit VR little endian
  * grey.png, rgb.png, grey.jpg  written by Pillow from the same synthetic picture

For each, the values the reference decoder gives: pydicom's pixel_array * slope + intercept, Pillow's decoded array
(RGB as three planes), as float32: shape, the spacing pydicom reports, 16 sample values and the SHA-256 of all values
(row-major, i fastest, then j, then channel). Writes data/image2d/* and data/image2d.json.
Run: /usr/bin/python3 tests/golden/make_image2d_golden.py
"""
import hashlib
import json
import os

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
out = os.path.join(here, "image2d")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261202)
rows, cols = 48, 64
yy, xx = np.mgrid[0:rows, 0:cols]
picture = 600 + 300 * np.exp(-(((xx - 40) / 9.0) ** 2 + ((yy - 20) / 7.0) ** 2)) + 40 * rng.standard_normal((rows, cols))


def radiograph(name, sop_class, modality, bits_stored, spacing_tag, spacing, syntax, slope=None, intercept=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(os.path.join(out, name), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = modality, "Synthetic^Radiograph", "MEDVLP-2D"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    setattr(ds, spacing_tag, [f"{s:g}" for s in spacing])
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:g}", f"{intercept:g}", "US"
    stored = np.clip(np.round(picture), 0, 2 ** bits_stored - 1).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    ds.is_implicit_VR, ds.is_little_endian = syntax == ImplicitVRLittleEndian, True
    ds.save_as(os.path.join(out, name), write_like_original=False)
    back = pydicom.dcmread(os.path.join(out, name))
    values = back.pixel_array.astype(np.float64) * float(back.get("RescaleSlope", 1)) + float(back.get("RescaleIntercept", 0))
    sp = back.get("PixelSpacing") or back.get("ImagerPixelSpacing")
    return values[None].astype(np.float32), [float(sp[0]), float(sp[1])]


def record(values, extra):
    c, h, w = values.shape
    flat = values.reshape(-1)
    picks = rng.integers(0, flat.size, 16)
    return dict(extra, channels=c, rows=h, columns=w, sha256=hashlib.sha256(flat.astype("<f4").tobytes()).hexdigest(),
                samples=[[int(p), float(flat[p])] for p in picks])


result = {}
v, sp = radiograph("cr.dcm", "1.2.840.10008.5.1.4.1.1.1", "CR", 16, "ImagerPixelSpacing", (0.15, 0.2), ExplicitVRLittleEndian, 2, -100)
result["cr.dcm"] = record(v, {"row_spacing": sp[0], "column_spacing": sp[1]})
v, sp = radiograph("dx.dcm", "1.2.840.10008.5.1.4.1.1.1.1", "DX", 12, "PixelSpacing", (0.1, 0.1), ImplicitVRLittleEndian)
result["dx.dcm"] = record(v, {"row_spacing": sp[0], "column_spacing": sp[1]})

grey8 = np.clip((picture - 450) / 2.5, 0, 255).astype(np.uint8)
rgb8 = np.stack([grey8, 255 - grey8, (grey8 // 2 + 60).astype(np.uint8)], axis=-1)
Image.fromarray(grey8, mode="L").save(os.path.join(out, "grey.png"))
Image.fromarray(rgb8, mode="RGB").save(os.path.join(out, "rgb.png"))
Image.fromarray(grey8, mode="L").save(os.path.join(out, "grey.jpg"), quality=95)
for name in ("grey.png", "rgb.png", "grey.jpg"):
    a = np.asarray(Image.open(os.path.join(out, name)))
    planes = a[None] if a.ndim == 2 else np.moveaxis(a[..., :3], -1, 0)
    result[name] = record(planes.astype(np.float32), {})

with open(os.path.join(here, "image2d.json"), "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
print("wrote", sorted(result), "to", out)
