#!/usr/bin/env bash
# ResNet-50 forward + backward, 2D and 3D, in MedVlp (TorchSharp on libtorch) and torchvision 0.14 / PyTorch 1.13
# (Debian's, against Debian's OpenBLAS unpacked and put first on LD_LIBRARY_PATH, with this machine's
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the Python command alone, as in train_step_side_by_side.sh),
# same threads, interleaved for ROUNDS rounds.
# Usage: bash benchmarks/reference/resnet_side_by_side.sh [THREADS] [REPEATS] [ROUNDS] [2d|3d|all] [BATCH]
# (BATCH replaces the default 8 images / 2 volumes.)
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-1}"
repeats="${2:-3}"
rounds="${3:-2}"
case="${4:-all}"
batch="${5:-}"
blas="${OPENBLAS_DIR:-/tmp/medvlp-openblas}"
if [ ! -e "$blas/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$blas" && (cd "$blas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "--- round $r ($(uptime | sed 's/.*load/load/'))"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$threads" \
    LD_LIBRARY_PATH="$blas/usr/lib/x86_64-linux-gnu/openblas-pthread" \
    /usr/bin/python3 benchmarks/reference/resnet_torch.py --threads "$threads" --repeats "$repeats" --case "$case" ${batch:+--batch "$batch"}
  DOTNET_TieredCompilation=0 dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll resnet "$threads" "$repeats" "$case" $batch
done
