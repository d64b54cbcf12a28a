#!/usr/bin/python3
"""Golden values for MedVlp's reorientation (Reorientation.Reorient / ToCanonical), computed with nibabel.

    /usr/bin/python3 tests/golden/make_orientation_golden.py

For each file below and each target axis code, reorients the image as nibabel does
(as_closest_canonical for "RAS"; otherwise
img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(code))))
and records, keyed "<file>|<code>":
  shape        the reoriented array's shape
  orientation  ''.join(aff2axcodes(new affine)) (equals the code)
  affine       the new 4x4 affine
  samples      [[i, j, k, t, value], ...] 16 voxels of the reoriented float32 data
               (numpy RandomState(0); t is a random frame for 4D files)
  sha256_f32   SHA-256 of the whole reoriented get_fdata(dtype=float32) array as
               little-endian float32 in Fortran order (i fastest, then j, k, t),
               which is exactly MedVlp's Volume.Data layout
Writes tests/golden/data/orientation.json.
"""
import hashlib
import json
import os
import sys

import numpy as np
import nibabel as nib
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
OUT = os.path.join(HERE, "data", "orientation.json")

FILES = ["nibabel/anatomical.nii", "nibabel/example4d.nii.gz",
         "itk/KmeansTest_T1RawSkullStrip.nii.gz", "nibabel/reoriented_anat_moved.nii"]
CODES = ["RAS", "LPS", "SAR", "PIR", "ILA", "LAS"]


def f32_sha(arr):
    return hashlib.sha256(np.asarray(arr, dtype="<f4").tobytes(order="F")).hexdigest()


def main():
    out = {}
    for rel in FILES:
        path = os.path.join(DATA, rel)
        if not os.path.exists(path):
            sys.exit("missing %s; run: bash scripts/fetch-test-data.sh" % path)
        img = nib.load(path)
        for code in CODES:
            if code == "RAS":
                new = nib.as_closest_canonical(img)
            else:
                ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(tuple(code)))
                new = img.as_reoriented(ornt)
            data = new.get_fdata(dtype=np.float32)
            d4 = data if data.ndim == 4 else data[..., np.newaxis]
            rs = np.random.RandomState(0)
            idx = np.stack([rs.randint(0, d4.shape[a], size=16) for a in range(4)], axis=1)
            out[rel + "|" + code] = {
                "shape": [int(s) for s in new.shape],
                "orientation": "".join(nib.aff2axcodes(new.affine)),
                "affine": [[float(v) for v in row] for row in new.affine],
                "samples": [[int(i), int(j), int(k), int(t), float(d4[i, j, k, t])]
                            for i, j, k, t in idx],
                "sha256_f32": f32_sha(data),
            }
    out["_generator"] = {"script": "tests/golden/make_orientation_golden.py",
                         "nibabel": nib.__version__, "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s (%d entries)" % (os.path.relpath(OUT, REPO), len(out) - 1))


if __name__ == "__main__":
    main()
