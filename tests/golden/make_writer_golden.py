#!/usr/bin/python3
"""Golden values for MedVlp's NIfTI writer: what nibabel writes, and what nibabel reads from OUR files.

    /usr/bin/python3 tests/golden/make_writer_golden.py

The check has two halves, both against nibabel:

1. "spec" + "nibabel_header": a deterministic synthetic volume (shape 7x6x5x2,
   value(i,j,k,t) = ((31 i + 17 j + 7 k + 3 t) mod 97) * 0.5 - 20, and an oblique,
   left-handed affine) given to nibabel, with set_qform(affine, code=1) and
   set_sform(affine, code=1). The header fields nibabel computes (quatern_b/c/d,
   qoffset, pixdim[0..3] with qfac, srow) are recorded; the C# test writes the same
   volume and compares its own header fields with them.

2. "readback": the files in data/writer/ were WRITTEN BY MEDVLP (NiftiWriter) from
   that synthetic volume. This script loads each with nibabel and records what
   nibabel sees (class, shape, datatype, scaling, codes, affine, qform/sform affines,
   xyzt_units, SHA-256 of get_fdata(float32)); it also asserts right here that
   nibabel's affine is the spec's within 1e-5 and the values are exact, and fails
   otherwise. The C# test checks that NiftiWriter still writes exactly those bytes
   (so the committed files are what the current writer produces) and that the
   recorded nibabel view matches the spec.

When the writer's output changes on purpose, regenerate in this order:
    MEDVLP_REGENERATE_WRITER_GOLDEN=1 dotnet test tests/MedVlp.Volumes.Tests --filter NiftiWriterGoldenTests
    /usr/bin/python3 tests/golden/make_writer_golden.py
"""
import glob
import hashlib
import json
import os

import numpy as np
import nibabel as nib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "data", "writer_golden.json")
WRITTEN = os.path.join(HERE, "data", "writer")

SHAPE = (7, 6, 5, 2)


def synthetic():
    i, j, k, t = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return (((31 * i + 17 * j + 7 * k + 3 * t) % 97) * 0.5 - 20).astype(np.float32)


def spec_affine():
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    angle = 0.4
    x, y, z = axis
    c, s, C = np.cos(angle), np.sin(angle), 1 - np.cos(angle)
    rot = np.array([[x * x * C + c, x * y * C - z * s, x * z * C + y * s],
                    [y * x * C + z * s, y * y * C + c, y * z * C - x * s],
                    [z * x * C - y * s, z * y * C + x * s, z * z * C + c]])
    zooms = np.array([-1.5, 2.0, 2.5])  # the x flip makes the affine left-handed (qfac -1)
    aff = np.eye(4)
    aff[:3, :3] = rot * zooms
    aff[:3, 3] = [-40.25, 12.5, 7.75]
    return aff


def sha(arr):
    return hashlib.sha256(np.asarray(arr, dtype="<f4").tobytes(order="F")).hexdigest()


def main():
    data = synthetic()
    aff = spec_affine()
    img = nib.Nifti1Image(data, aff)
    img.header.set_qform(aff, code=1)
    img.header.set_sform(aff, code=1)
    h = img.header
    out = {
        "spec": {"shape": list(SHAPE), "affine": aff.tolist(),
                 "value": "((31*i + 17*j + 7*k + 3*t) % 97) * 0.5 - 20",
                 "sha256_f32": sha(data)},
        "nibabel_header": {
            "quatern": [float(h["quatern_b"]), float(h["quatern_c"]), float(h["quatern_d"])],
            "qoffset": [float(h["qoffset_x"]), float(h["qoffset_y"]), float(h["qoffset_z"])],
            "pixdim": [float(v) for v in h["pixdim"][:4]],
            "srow": [float(v) for v in np.concatenate([h["srow_x"], h["srow_y"], h["srow_z"]])],
            "qform_affine": img.get_qform().tolist(),
        },
        "readback": {},
    }
    for path in sorted(glob.glob(os.path.join(WRITTEN, "*"))):
        name = os.path.basename(path)
        if name.endswith((".img", ".img.gz")):
            continue
        back = nib.load(path)
        got = back.get_fdata(dtype=np.float32)
        err = float(np.abs(back.affine - aff).max())
        assert err <= 1e-5, "%s: nibabel's affine differs from the spec by %g" % (name, err)
        assert got.shape == SHAPE, "%s: shape %s" % (name, got.shape)
        assert np.array_equal(got, data), "%s: values differ from the spec" % name
        bh = back.header
        out["readback"][name] = {
            "class": type(back).__name__,
            "shape": [int(s) for s in got.shape],
            "datatype": back.get_data_dtype().name,
            "slope": float(getattr(back.dataobj, "slope", 1.0)),
            "inter": float(getattr(back.dataobj, "inter", 0.0)),
            "qform_code": int(bh["qform_code"]), "sform_code": int(bh["sform_code"]),
            "xyzt_units": [str(u) for u in bh.get_xyzt_units()],
            "affine": back.affine.tolist(),
            "qform_affine": back.get_qform().tolist(),
            "sform_affine": back.get_sform().tolist(),
            "max_affine_error": err,
            "sha256_f32": sha(got),
        }
    out["_generator"] = {"script": "tests/golden/make_writer_golden.py",
                         "nibabel": nib.__version__, "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s (%d files read back)" % (os.path.relpath(OUT, REPO), len(out["readback"])))


if __name__ == "__main__":
    main()
