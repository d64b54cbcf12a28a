#!/usr/bin/env bash
# Installs Open MPI from Debian's packages where it is missing: mpirun (openmpi-bin) and libmpi.so.40
# (libopenmpi3, pulled in by libopenmpi-dev), which MedVlp.Distributed binds to and the distributed tests launch.
# Needs root (or password-less sudo) only when something is missing.
set -euo pipefail

have_mpi() {
  local libs
  libs=$(ldconfig -p 2>/dev/null || true)
  command -v mpirun >/dev/null 2>&1 && [[ $libs == *"libmpi.so.40 "* ]]
}

if have_mpi; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install-mpi: Open MPI is missing and this is not root: run 'apt-get install openmpi-bin libopenmpi-dev' as root." >&2
    exit 1
  fi
fi

echo "install-mpi: installing Debian's openmpi-bin and libopenmpi-dev" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null 2>&1 \
  || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev >/dev/null; }
have_mpi || { echo "install-mpi: mpirun or libmpi.so.40 still missing after apt-get" >&2; exit 1; }
