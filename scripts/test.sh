#!/usr/bin/env bash
# The README's test command: fetches the real test data (verified by SHA-256) and runs every test.
# Works on a fresh machine with the .NET 10 SDK; needs root (or sudo-less apt) only the first time,
# to download the Debian packages that carry the data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A full build, the tests and the consumer smoke take about 10 GB of disk (the last failure of this kind ended in
# "No space left on device" deep inside MSBuild): say so up front.
avail_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${avail_kb:-0}" -lt $((10 * 1024 * 1024)) ]; then
  echo "test.sh: warning: only $((avail_kb / 1024 / 1024)) GB free on $(pwd); a full build and test run needs about 10 GB" >&2
fi

bash scripts/fetch-test-data.sh
# Open MPI for the distributed tests (they start real jobs with mpirun).
bash scripts/install-mpi.sh

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A real PostgreSQL + pgvector for the retrieval tests: PGlite (WASM Postgres) on a loopback port, stopped on exit
# (and by itself after an hour at most). The tests fail without it; they never skip.
bash scripts/pglite/start.sh "$log.pg"
trap 'kill "$(cat "$log.pg.pid")" 2>/dev/null || true; rm -f "$log" "$log.pg" "$log.pg.pid" "$log.pg.out"' EXIT
export MEDVLP_TEST_POSTGRES="Host=127.0.0.1;Port=$(cat "$log.pg");Username=postgres;Password=postgres;Database=postgres;SSL Mode=Disable;Timeout=60;Command Timeout=300"
set +e
dotnet test MedVlp.Sdk.sln -c Release 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line for all test assemblies: "N passed, N failed, N skipped".
awk '/^(Passed|Failed)!/ {
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
     }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (p == 0) exit 1 }' "$log" || status=1

# What users get: the packed packages in a brand-new app running the README's quick start, and the medvlp tool.
bash scripts/consumer-smoke.sh || status=1
exit "$status"
