#!/usr/bin/env bash
# The README's main command: fetches the real data (the bert-base-uncased vocabulary, test volumes)
# and runs MedVlp's main job on its built-in default: `medvlp demo` — generate synthetic brain MRIs
# with reports, pre-train a small 3D vision-language model on the CPU, and classify held-out
# volumes zero-shot. Extra arguments go to `medvlp demo` (for example --seed 7 --out DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/fetch-test-data.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build samples/MedVlp.Cli -c Release -v quiet -nologo -clp:ErrorsOnly
samples/MedVlp.Cli/bin/Release/net10.0/medvlp demo "$@"   # writes out/demo (the default)
