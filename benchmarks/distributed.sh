#!/usr/bin/env bash
# Data-parallel measures on this machine: all-reduce of 100 MB of gradients between 2 local ranks next to the
# memory-copy bandwidth, and the clip3d (demo size) training step with 1 rank and with 2 ranks at the same per-rank batch.
# Usage: bash benchmarks/distributed.sh [per-rank batch] [steps]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-mpi.sh
dotnet build benchmarks/MedVlp.Benchmarks -c Release -v q -nologo >/dev/null
dll=benchmarks/MedVlp.Benchmarks/bin/Release/net10.0/MedVlp.Benchmarks.dll
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # Open MPI refuses root otherwise
mpirun=(mpirun --oversubscribe --bind-to none)
batch=${1:-8}
steps=${2:-10}
echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), Open MPI $(mpirun --version | head -1 | awk '{print $NF}')"
"${mpirun[@]}" -np 2 dotnet "$dll" mpi-allreduce 100 10 </dev/null
dotnet "$dll" mpi-step "$batch" "$steps" </dev/null
"${mpirun[@]}" -np 2 dotnet "$dll" mpi-step "$batch" "$steps" </dev/null
