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
  samples      [[flat_index, value], ...] up to 256 voxels drawn with numpy
               RandomState(2) over the Fortran-order flat index (value null = NaN),
               so a failing test can name a voxel. The arrays themselves are
               third-party image data and are not committed.
"""
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


def load(path):
    img = nib.load(path)
    if isinstance(img, nib.Cifti2Image):
        img = nib.Nifti2Image.from_filename(path)
    return img


def main():
    info = json.load(open(INFO))
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
        # Only a hash of the whole array and sampled voxels: the images themselves are third-party data
        # and are never committed (the SHA-256 already checks every voxel; the samples name a bad one).
        flat = data.reshape(-1, order="F")
        idx = np.sort(np.random.RandomState(2).choice(flat.size, size=min(256, flat.size), replace=False))
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
