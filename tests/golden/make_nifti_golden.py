#!/usr/bin/python3
"""Golden values for MedVlp's NIfTI reader, computed with nibabel (the reference).

Run with Debian's Python (it sees python3-nibabel), after fetching the data:

    bash scripts/fetch-test-data.sh
    /usr/bin/python3 tests/golden/make_nifti_golden.py

Reads every NIfTI file in the test-data folder ($MEDVLP_TESTDATA, default
<repo>/.testdata): mricron/*.nii.gz, nibabel/*.nii, nibabel/*.nii.gz, itk/*.nii.gz,
plus the header-only pairs nibabel/*.hdr (their .img is not shipped). Writes
tests/golden/data/nifti_info.json, keyed by the path relative to the data folder.

Per file:
  sha256        of the file, so a test can tell that the data changed
  format        "nifti1" / "nifti2" / "analyze"
  pair          true for a .hdr/.img pair; header_only: true when the .img is absent
  class         nibabel's image class (e.g. Nifti1Image, Nifti2Pair, Spm2AnalyzeImage)
  shape         the full header shape
  frames        product of the dims beyond the 3rd (1 for 3D)
  spacing       the first 3 zooms (pixdim[1:4])
  affine        img.affine (sform if sform_code > 0, else qform if qform_code > 0,
                else nibabel's fallback), 4x4
  orientation   ''.join(nib.aff2axcodes(img.affine)), e.g. "RAS", "LAS"
  datatype      numpy dtype name of the on-disk type ("uint8", "int16", "float32")
  endian        "little" / "big" (byte order of the file)
  qform_code, sform_code (null for Analyze)
  slope, inter  the scaling nibabel applies (scl_slope/scl_inter; 1 and 0 when unused)
  nan_count     NaN voxels in the first frame (min/max/mean ignore them; a NaN
                sample value is null)
  min, max, mean  float64 statistics of the scaled values of the FIRST 3D frame:
                img.get_fdata(dtype=np.float64)[:, :, :, 0, ...] (all dims > 3 at 0)
  samples       [[i, j, k, value], ...] scaled values of that frame at 8 voxels drawn
                with numpy RandomState(0) (i, j, k each uniform in the shape)
  samples_nonzero  up to 4 more, drawn with RandomState(1) among the non-zero voxels
                (label atlases are mostly zero)
  note          anything unusual
Files nibabel cannot load are listed under "_skipped" with the reason.
"""
import glob
import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import nibabel as nib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
OUT = os.path.join(HERE, "data", "nifti_info.json")

PATTERNS = ["mricron/*.nii.gz", "nibabel/*.nii", "nibabel/*.nii.gz", "itk/*.nii.gz",
            "nibabel/*.hdr"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def num(x):
    """A header number as a JSON value (NaN/inf -> null, integral floats stay floats)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def header_field(hdr, name):
    try:
        return hdr[name]
    except (KeyError, ValueError):
        return None


def describe(rel, path):
    img = nib.load(path)
    note = []
    if isinstance(img, nib.Cifti2Image):
        # CIFTI-2 is NIfTI-2 underneath; describe the NIfTI-2 view a plain reader sees.
        img = nib.Nifti2Image.from_filename(path)
        note.append("CIFTI-2 (NIfTI-2 with a CIFTI extension, intent %d); described as "
                    "plain NIfTI-2" % int(img.header["intent_code"]))
    hdr = img.header
    if isinstance(img, (nib.Nifti2Image, nib.Nifti2Pair)):
        fmt = "nifti2"
    elif isinstance(img, (nib.Nifti1Image, nib.Nifti1Pair)):
        fmt = "nifti1"
    else:
        fmt = "analyze"
    pair = path.endswith((".hdr", ".hdr.gz", ".img", ".img.gz"))
    shape = [int(d) for d in img.shape]
    frames = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    zooms = [float(z) for z in hdr.get_zooms()]
    dtype = img.get_data_dtype()
    qcode = header_field(hdr, "qform_code")
    scode = header_field(hdr, "sform_code")
    info = {
        "sha256": sha256(path),
        "format": fmt,
        "class": type(img).__name__,
        "pair": pair,
        "shape": shape,
        "frames": frames,
        "spacing": (zooms + [1.0, 1.0, 1.0])[:3],
        "affine": [[float(v) for v in row] for row in img.affine],
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "datatype": dtype.name,
        "endian": "big" if dtype.byteorder == ">" or (
            dtype.byteorder == "=" and sys.byteorder == "big") else "little",
        "qform_code": None if qcode is None else int(qcode),
        "sform_code": None if scode is None else int(scode),
        # nibabel moves the header's scaling into the data proxy on load (and sets the
        # header fields to NaN), so record the effective values: 1 / 0 when unscaled
        "slope": num(getattr(img.dataobj, "slope", 1.0)),
        "inter": num(getattr(img.dataobj, "inter", 0.0)),
    }
    if fmt == "analyze":
        note.append("Analyze 7.5 header read by nibabel as %s (SPM origin in the affine)"
                    % type(img).__name__)

    if pair:
        img_path = path[:-len(".hdr")] + ".img" if path.endswith(".hdr") else None
        if not img_path or not (os.path.exists(img_path) or os.path.exists(img_path + ".gz")):
            info["header_only"] = True
            note.append("header only: the matching .img is not shipped")
    if info.get("header_only"):
        info.update({"min": None, "max": None, "mean": None, "samples": [],
                     "samples_nonzero": []})
    else:
        data = img.get_fdata(dtype=np.float64)
        while data.ndim < 3:
            data = data[..., np.newaxis]
        frame = data[(slice(None),) * 3 + (0,) * (data.ndim - 3)]
        nan = int(np.isnan(frame).sum())
        info["nan_count"] = nan
        if nan:
            note.append("%d NaN voxels in the first frame: min/max/mean ignore them, "
                        "NaN samples are null" % nan)
        finite = frame[~np.isnan(frame)] if nan else frame
        info["min"] = float(finite.min()) if finite.size else None
        info["max"] = float(finite.max()) if finite.size else None
        info["mean"] = float(finite.mean(dtype=np.float64)) if finite.size else None
        rs = np.random.RandomState(0)
        idx = np.stack([rs.randint(0, frame.shape[a], size=8) for a in range(3)], axis=1)
        info["samples"] = [[int(i), int(j), int(k), num(frame[i, j, k])] for i, j, k in idx]
        nz = np.argwhere((frame != 0) & ~np.isnan(frame))
        if len(nz):
            pick = np.random.RandomState(1).choice(len(nz), size=min(4, len(nz)), replace=False)
            info["samples_nonzero"] = [[int(i), int(j), int(k), float(frame[i, j, k])]
                                       for i, j, k in nz[np.sort(pick)]]
        else:
            info["samples_nonzero"] = []
    if note:
        info["note"] = "; ".join(note)
    return info


def main():
    if not os.path.isdir(DATA):
        sys.exit("no test data in %s; run: bash scripts/fetch-test-data.sh" % DATA)
    files = sorted({os.path.relpath(p, DATA) for pat in PATTERNS
                    for p in glob.glob(os.path.join(DATA, pat))})
    if not files:
        sys.exit("no NIfTI files under %s; run: bash scripts/fetch-test-data.sh" % DATA)
    out, skipped = {}, {}
    for rel in files:
        try:
            out[rel] = describe(rel, os.path.join(DATA, rel))
        except Exception as e:  # noqa: BLE001 - list whatever nibabel refuses
            skipped[rel] = "%s: %s" % (type(e).__name__, e)
            print("skipped %s (%s)" % (rel, skipped[rel]), file=sys.stderr)
    out["_generator"] = {"script": "tests/golden/make_nifti_golden.py",
                         "nibabel": nib.__version__, "numpy": np.__version__}
    out["_skipped"] = skipped
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(out, indent=1, allow_nan=False)
    # keep each innermost list of numbers (shape, affine row, sample) on one line
    text = re.sub(r"\[\s*([-0-9.eE+,\snul]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
                  if m.group(1).strip() else "[]", text)
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print("wrote %s (%d files, %d skipped)" % (os.path.relpath(OUT, REPO),
                                              len(out) - 2, len(skipped)))


if __name__ == "__main__":
    main()
