#!/usr/bin/env bash
# The README's test command: fetches the real test data (verified by SHA-256) and runs every test.
# Works on a fresh machine with the .NET 10 SDK; needs root (or sudo-less apt) only the first time,
# to download the Debian packages that carry the data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/fetch-test-data.sh

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
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
