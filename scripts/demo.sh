#!/usr/bin/env bash
# The README's main command: fetches the real data and runs MedVlp's main job on a built-in default.
# Today: `medvlp info` on the Colin27 T1 brain MRI (mricron's ch2.nii.gz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/fetch-test-data.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build samples/MedVlp.Cli -c Release -v quiet -nologo -clp:ErrorsOnly
dotnet samples/MedVlp.Cli/bin/Release/net10.0/MedVlp.Cli.dll info "${1:-.testdata/mricron/ch2.nii.gz}"
