#!/usr/bin/env bash
# The tiny MedBLIP in MedVlp (TorchSharp on libtorch) and in PyTorch 1.13 (the reference modules of
# tests/golden/make_medblip_golden.py; Debian's torch run against OpenBLAS as the brief asks: Debian's
# libopenblas0-pthread unpacked, never installed, first on LD_LIBRARY_PATH): a training step at batch 24 and greedy
# tokens per second with and without the key/value cache, interleaved Python, .NET, Python so drifting load shows.
# Usage: bash benchmarks/reference/medblip_side_by_side.sh [THREADS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-1}"
repeats="${2:-5}"
blas="${OPENBLAS_DIR:-/tmp/medvlp-openblas}"
if [ ! -e "$blas/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$blas" && (cd "$blas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
export OPENBLAS_NUM_THREADS="$threads"
py() { LD_LIBRARY_PATH="$blas/usr/lib/x86_64-linux-gnu/openblas-pthread" /usr/bin/python3 benchmarks/reference/medblip_torch.py --threads "$threads" --repeats "$repeats"; }
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
py
dotnet run -c Release --no-build --project benchmarks/MedVlp.Benchmarks -- medblip "$threads" "$repeats"
py
