#!/usr/bin/env bash
# Resampling and loader timings of MedVlp next to scipy.ndimage.zoom(order=1) and torch F.interpolate (trilinear),
# in one session, interleaved (Python, .NET, Python) so drifting machine load shows. Needs the test data
# (scripts/fetch-test-data.sh) and Debian's python3-scipy, python3-nibabel, python3-torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${THREADS:-$(nproc)}"
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
/usr/bin/python3 benchmarks/reference/resample_reference.py --threads "$threads"
dotnet run -c Release --no-build --project benchmarks/MedVlp.Benchmarks -- side-by-side
/usr/bin/python3 benchmarks/reference/resample_reference.py --threads "$threads"
