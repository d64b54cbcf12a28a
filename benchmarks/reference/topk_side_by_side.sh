#!/usr/bin/env bash
# Exact top-10 over 100,000 x 768 float32: MedVlp (ExactIndex / Similarity.TopKDotProducts) next to numpy on OpenBLAS,
# interleaved in one session: ROUNDS (default 3) rounds of numpy then .NET, every timing pooled by topk_summary.py.
# Debian's libopenblas0-pthread is downloaded and unpacked into benchmarks/.openblas (apt-get download + dpkg-deb -x;
# never installed) and put in front with LD_LIBRARY_PATH, so numpy's libblas.so.3 is OpenBLAS instead of the reference
# BLAS (with this machine's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides removed, so OpenBLAS picks its best kernels). Usage: bash benchmarks/reference/topk_side_by_side.sh [ROUNDS] [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
repeat="${2:-15}"
cache=benchmarks/.openblas
if [ ! -f "$cache/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$cache"
  (cd "$cache" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
blas="$PWD/$cache/usr/lib/x86_64-linux-gnu/openblas-pthread"
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
times="$(mktemp /tmp/topk-times.XXXXXX.jsonl)"
trap 'rm -f "$times"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH="$blas" OPENBLAS_NUM_THREADS="$(nproc)" /usr/bin/python3 benchmarks/reference/topk_numpy.py --repeat "$repeat" --times "$times"
  dotnet run -c Release --no-build --project benchmarks/MedVlp.Benchmarks -- retrieval "$repeat" "$times"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 benchmarks/reference/topk_summary.py "$times"
