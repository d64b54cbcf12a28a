#!/usr/bin/python3
"""Golden values for MedVlp's MetaImage and NRRD readers.

    /usr/bin/python3 tests/golden/make_itk_golden.py

No trusted MetaImage/NRRD reader is packaged for Debian here (no SimpleITK, ITK
python or pynrrd), so this script is a second, independent implementation written
from the format specifications (MetaIO's MetaImage keys; teem's NRRD format page),
using only numpy and zlib/gzip, and kept deliberately simple. It reads every .mha,
.mhd and .nhdr in <testdata>/itk and records, keyed by the relative path:
  shape        [i, j, k] (a 2D image is one slice: k = 1)
  frames       number of 3D frames (channels / vector components and 4th dims)
  affine       voxel -> RAS+ mm: ITK's physical space is LPS, so the LPS affine
               [direction * spacing | origin] gets rows x and y negated
               (MetaImage: row n of TransformMatrix is the direction of axis n, as
               ITK reads it; NRRD: one space-directions vector per axis)
  datatype     numpy name of the stored element type
  sha256_f32   SHA-256 of all voxels as little-endian float32, i fastest, then j, k,
               then frame (components de-interleaved into frames)
  samples      [[i, j, k, frame, value]] 12 voxels, numpy RandomState(0)
Twins (the same image as .mhd and .nhdr) must agree; the C# tests check that too.
Writes tests/golden/data/itk_info.json.
"""
import glob
import gzip
import hashlib
import json
import os
import re
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("MEDVLP_TESTDATA") or os.path.join(REPO, ".testdata")
OUT = os.path.join(HERE, "data", "itk_info.json")

MET = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
       "MET_UINT": "u4", "MET_INT": "i4", "MET_ULONG": "u4", "MET_LONG": "i4",
       "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
NRRD_TYPES = {"unsigned char": "u1", "uchar": "u1", "uint8": "u1", "signed char": "i1", "int8": "i1",
              "short": "i2", "int16": "i2", "unsigned short": "u2", "ushort": "u2", "uint16": "u2",
              "int": "i4", "int32": "i4", "unsigned int": "u4", "uint": "u4", "uint32": "u4",
              "float": "f4", "double": "f8"}


def read_mha(path):
    raw = open(path, "rb").read()
    hdr, pos = {}, 0
    while True:
        end = raw.index(b"\n", pos)
        key, _, value = raw[pos:end].decode("latin1").partition("=")
        hdr[key.strip()] = value.strip()
        pos = end + 1
        if key.strip() == "ElementDataFile":
            break
    nd = int(hdr["NDims"])
    dims = [int(v) for v in hdr["DimSize"].split()]
    channels = int(hdr.get("ElementNumberOfChannels", "1"))
    msb = hdr.get("BinaryDataByteOrderMSB", hdr.get("ElementByteOrderMSB", "False")) == "True"
    dtype = np.dtype(MET[hdr["ElementType"]]).newbyteorder(">" if msb else "<")
    spacing = [float(v) for v in hdr.get("ElementSpacing", " ".join(["1"] * nd)).split()]
    origin = [float(v) for v in hdr.get("Offset", hdr.get("Position", " ".join(["0"] * nd))).split()]
    tm = hdr.get("TransformMatrix")
    direction = np.eye(nd) if tm is None else np.array([float(v) for v in tm.split()]).reshape(nd, nd).T
    if hdr["ElementDataFile"] == "LOCAL":
        payload = raw[pos:]
    else:
        payload = open(os.path.join(os.path.dirname(path), hdr["ElementDataFile"]), "rb").read()
    if hdr.get("CompressedData", "False") == "True":
        payload = zlib.decompress(payload)
    count = int(np.prod(dims)) * channels
    arr = np.frombuffer(payload, dtype=dtype, count=count)
    return finish(arr, dims, channels, direction, spacing, origin, nd, dtype)


def read_nhdr(path):
    text = open(path, "rb").read().decode("latin1")
    fields = {}
    for line in text.splitlines()[1:]:
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(": ")
        fields[key.strip()] = value.strip()
    nd = int(fields["dimension"])
    dims = [int(v) for v in fields["sizes"].split()]
    dtype = np.dtype(NRRD_TYPES[fields["type"]])
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if fields["endian"] == "big" else "<")
    vectors = [[float(x) for x in v.split(",")] for v in re.findall(r"\(([^)]*)\)", fields["space directions"])]
    direction_scaled = np.array(vectors).T            # column n = direction of axis n, scaled
    spacing = np.linalg.norm(direction_scaled, axis=0)
    direction = direction_scaled / spacing
    origin = [float(x) for x in re.findall(r"\(([^)]*)\)", fields["space origin"])[0].split(",")]
    payload = open(os.path.join(os.path.dirname(path), fields["data file"]), "rb").read()
    if fields["encoding"] in ("gzip", "gz"):
        payload = gzip.decompress(payload)
    space = fields.get("space", "")
    assert space in ("", "left-posterior-superior", "LPS"), "unhandled space " + space
    arr = np.frombuffer(payload, dtype=dtype, count=int(np.prod(dims)))
    return finish(arr, dims, 1, direction, list(spacing), origin, nd, dtype)


def finish(arr, dims, channels, direction, spacing, origin, nd, dtype):
    shape3 = (dims + [1, 1, 1])[:3]
    frames4 = dims[3] if nd == 4 else 1
    # channels interleaved fastest, then i, j, k, then the 4th dim
    a = arr.reshape([channels] + shape3 + [frames4], order="F").astype(np.float32)
    a = np.moveaxis(a, 0, 3).reshape(shape3 + [channels * frames4], order="F")
    lps = np.eye(4)
    n = min(nd, 3)
    lps[:n, :n] = np.asarray(direction)[:n, :n] * np.asarray(spacing[:n])
    lps[:n, 3] = origin[:n]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    ras[ras == 0] = 0.0  # no negative zeros in the JSON
    rs = np.random.RandomState(0)
    idx = np.stack([rs.randint(0, a.shape[x], size=12) for x in range(4)], axis=1)
    return {
        "shape": shape3,
        "frames": int(a.shape[3]),
        "affine": ras.tolist(),
        "datatype": np.dtype(dtype.str.lstrip("<>|=")).name,
        "sha256_f32": hashlib.sha256(a.astype("<f4").tobytes(order="F")).hexdigest(),
        "samples": [[int(i), int(j), int(k), int(t), float(a[i, j, k, t])] for i, j, k, t in idx],
    }


def main():
    out = {}
    for path in sorted(glob.glob(os.path.join(DATA, "itk", "*"))):
        rel = os.path.relpath(path, DATA)
        if path.endswith((".mha", ".mhd")):
            out[rel] = read_mha(path)
        elif path.endswith(".nhdr"):
            out[rel] = read_nhdr(path)
    out["_generator"] = {"script": "tests/golden/make_itk_golden.py", "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s (%d files)" % (os.path.relpath(OUT, REPO), len(out) - 1))


if __name__ == "__main__":
    main()
