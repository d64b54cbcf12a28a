#!/usr/bin/env bash
# One training step of the tiny and a mid-size clip3d model in MedVlp (TorchSharp on libtorch) and in PyTorch 1.13
# (Debian's, run against OpenBLAS as the brief asks: Debian's libopenblas0-pthread unpacked, never installed, and put
# first on LD_LIBRARY_PATH), interleaved Python, .NET, Python, .NET, ... for ROUNDS rounds so drifting load shows in
# both; then MedVlp's step rate with the VolumeDataLoader against cached batches.
#
# Honest both ways:
# - same threads: torch.set_num_threads / torch.set_num_threads(THREADS) and OPENBLAS_NUM_THREADS=THREADS;
# - Python's OpenBLAS picks its own kernel for this CPU: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which this machine
#   sets for old OpenBLAS builds (Haswell kernels), are unset for the Python command alone; the script prints the
#   kernel threadpoolctl reports;
# - both sides do 5 untimed warm-up steps; the .NET process runs with DOTNET_TieredCompilation=0 (every method
#   compiled fully optimised at its first call, which is what a long run reaches after its first steps) so the JIT's
#   background re-compilation does not land inside the few timed steps;
# - each side prints the median and minimum wall-clock time and the median process CPU time per step (every thread of
#   the process); on a shared, loaded machine the CPU time is the steadier of the two.
# Usage: bash benchmarks/reference/train_step_side_by_side.sh [THREADS] [REPEATS] [ROUNDS] [extra args, e.g. --breakdown]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-1}"
repeats="${2:-5}"
rounds="${3:-2}"
shift $(( $# < 3 ? $# : 3 ))
blas="${OPENBLAS_DIR:-/tmp/medvlp-openblas}"
if [ ! -e "$blas/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ]; then
  mkdir -p "$blas" && (cd "$blas" && apt-get download libopenblas0-pthread >/dev/null 2>&1 && dpkg-deb -x libopenblas0-pthread_*.deb .)
fi
py() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$threads" \
    LD_LIBRARY_PATH="$blas/usr/lib/x86_64-linux-gnu/openblas-pthread" \
    /usr/bin/python3 benchmarks/reference/train_step_torch.py --threads "$threads" --repeats "$repeats" "$@"
}
net() {
  DOTNET_TieredCompilation=0 dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll train-step "$threads" "$repeats" --no-loader "$@"
}
dotnet build -c Release benchmarks/MedVlp.Benchmarks >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "--- round $r ($(uptime | sed 's/.*load/load/'))"
  py "$@"
  net "$@"
done
if [ "${LOADER:-1}" = 1 ]; then
  dotnet benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll train-step "$threads" "$repeats" --model none
fi
