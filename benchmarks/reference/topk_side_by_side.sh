#!/usr/bin/env bash
# Exact top-10 over 100,000 x 768 float32: MedVlp (ExactIndex / Similarity.TopKDotProducts) next to numpy on OpenBLAS,
# interleaved in one session (numpy, .NET, numpy). Debian's libopenblas0-pthread is downloaded and unpacked into
# benchmarks/.openblas (apt-get download + dpkg-deb -x; never installed) and put in front with LD_LIBRARY_PATH, so
# numpy's libblas.so.3 is OpenBLAS instead of the reference BLAS.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=benchmarks/.openblas
if [ ! -f "$cache/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$cache"
  (cd "$cache" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
blas="$PWD/$cache/usr/lib/x86_64-linux-gnu/openblas-pthread"
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
LD_LIBRARY_PATH="$blas" OPENBLAS_NUM_THREADS="$(nproc)" /usr/bin/python3 benchmarks/reference/topk_numpy.py
dotnet run -c Release --no-build --project benchmarks/MedVlp.Benchmarks -- retrieval
LD_LIBRARY_PATH="$blas" OPENBLAS_NUM_THREADS="$(nproc)" /usr/bin/python3 benchmarks/reference/topk_numpy.py
