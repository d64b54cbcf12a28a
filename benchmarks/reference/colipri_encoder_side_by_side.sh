#!/usr/bin/env bash
# COLIPRI's image encoder at the `full` width and depth (Primus-M 864 x 16, patch 8, projector, attention pooling), one
# forward of a 192^3 volume (13,824 tokens) in inference mode, in MedVlp (TorchSharp on libtorch) and in PyTorch 1.13
# (Debian's, against Debian's OpenBLAS unpacked from libopenblas0-pthread and put first on LD_LIBRARY_PATH, with this
# machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the Python command alone, as in train_step_side_by_side.sh),
# same threads, interleaved Python, .NET, Python, .NET for ROUNDS rounds. Each side does one untimed forward on a
# WARMUP^3 crop, then REPEATS timed forwards; it prints wall and process CPU seconds per forward and the resident set
# before the forward and its peak (VmHWM). A forward takes minutes on one core: check free memory first (the PyTorch
# side peaks near 2.2 GB, MedVlp's near 1.6 GB).
# Usage: bash benchmarks/reference/colipri_encoder_side_by_side.sh [THREADS] [REPEATS] [ROUNDS] [SIZE] [WARMUP]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-1}"
repeats="${2:-1}"
rounds="${3:-1}"
size="${4:-192}"
warmup="${5:-96}"
blas="${OPENBLAS_DIR:-/tmp/medvlp-openblas}"
if [ ! -e "$blas/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$blas" && (cd "$blas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "--- round $r ($(date -u +%T), $(uptime | sed 's/.*load/load/'))"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$threads" \
    LD_LIBRARY_PATH="$blas/usr/lib/x86_64-linux-gnu/openblas-pthread" \
    /usr/bin/python3 benchmarks/reference/colipri_encoder_torch.py --threads "$threads" --repeats "$repeats" --size "$size" --warmup-size "$warmup"
  echo "    ($(date -u +%T), $(uptime | sed 's/.*load/load/'))"
  DOTNET_TieredCompilation=0 dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll colipri-encoder "$threads" "$repeats" "$size" "$warmup"
done
echo "--- done ($(date -u +%T), $(uptime | sed 's/.*load/load/'))"
