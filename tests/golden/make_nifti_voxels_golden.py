#!/usr/bin/python3
"""Full-volume voxel goldens for MedVlp's NIfTI reader, computed with nibabel.

    /usr/bin/python3 tests/golden/make_nifti_voxels_golden.py

For every readable file in data/nifti_info.json (made by make_nifti_golden.py; the
header-only .hdr files are left out), takes nibabel's
img.get_fdata(dtype=np.float32) (the whole N-D array, every frame, scaling applied;
CIFTI-2 files are read as plain NIfTI-2 like in nifti_info.json) and records in
data/nifti_voxels.json, keyed by the same relative path:
  shape        the array's shape
  sha256_f32   SHA-256 of the array as little-endian float32 in Fortran order
               (i fastest, then j, k, then the frame dims), i.e. MedVlp's Volume.Data
               bytes; NaNs hash as numpy stores them
  nan_count    NaN voxels in the whole array
  raw          for arrays under 2 MB as float32: the file name under
               data/nifti_voxels/ holding that exact array, gzip-compressed raw
               little-endian float32 in the same order (so a failing test can say
               which voxel differs)
  samples      otherwise: [[flat_index, value], ...] 256 voxels drawn with numpy
               RandomState(2) over the Fortran-order flat index (value null = NaN)
"""
import gzip
import hashlib
import json
import math
import os
import sys

import numpy as np
import nibabel as nib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
INFO = os.path.join(HERE, "data", "nifti_info.json")
OUT = os.path.join(HERE, "data", "nifti_voxels.json")
RAW_DIR = os.path.join(HERE, "data", "nifti_voxels")
RAW_LIMIT = 2 * 1024 * 1024


def load(path):
    img = nib.load(path)
    if isinstance(img, nib.Cifti2Image):
        img = nib.Nifti2Image.from_filename(path)
    return img


def main():
    info = json.load(open(INFO))
    os.makedirs(RAW_DIR, exist_ok=True)
    for old in os.listdir(RAW_DIR):
        os.remove(os.path.join(RAW_DIR, old))
    out = {}
    for rel, entry in sorted(info.items()):
        if rel.startswith("_") or entry.get("header_only"):
            continue
        path = os.path.join(DATA, rel)
        if not os.path.exists(path):
            sys.exit("missing %s; run: bash scripts/fetch-test-data.sh" % path)
        data = load(path).get_fdata(dtype=np.float32)
        raw = np.asarray(data, dtype="<f4").tobytes(order="F")
        rec = {"shape": [int(s) for s in data.shape],
               "sha256_f32": hashlib.sha256(raw).hexdigest(),
               "nan_count": int(np.isnan(data).sum())}
        if len(raw) < RAW_LIMIT:
            name = rel.replace("/", "__") + ".f32.gz"
            with open(os.path.join(RAW_DIR, name), "wb") as f:
                # mtime=0 keeps the output byte-identical across runs
                with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
                    gz.write(raw)
            rec["raw"] = name
        else:
            flat = data.reshape(-1, order="F")
            idx = np.sort(np.random.RandomState(2).choice(flat.size, size=256, replace=False))
            rec["samples"] = [[int(n), None if math.isnan(flat[n]) else float(flat[n])]
                              for n in idx]
        out[rel] = rec
    out["_generator"] = {"script": "tests/golden/make_nifti_voxels_golden.py",
                         "nibabel": nib.__version__, "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote %s (%d files)" % (os.path.relpath(OUT, REPO), len(out) - 1))


if __name__ == "__main__":
    main()
