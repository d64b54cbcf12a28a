#!/usr/bin/env bash
# Fuzz MedVlp's DICOM parser with AFL++ through SharpFuzz for N minutes (default 10).
#   bash benchmarks/fuzz/run-fuzz.sh [MINUTES]
# Needs: afl++ (apt-get install -y afl++), the .NET SDK, test data (scripts/fetch-test-data.sh).
# Findings land in benchmarks/fuzz/findings/default/{crashes,hangs}; replay them with
#   dotnet benchmarks/fuzz/out/MedVlp.Fuzz.dll --replay benchmarks/fuzz/findings/default/crashes/id*
# and turn each real crash into a regression test (tests/MedVlp.Volumes.Tests/Dicom/DicomFuzzRegressionTests.cs).
set -euo pipefail
minutes="${1:-10}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${MEDVLP_TESTDATA:-$root/.testdata}"

command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install -y afl++" >&2; exit 1; }
tools="$here/.tools"
if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools"
fi

dotnet publish "$here/MedVlp.Fuzz/MedVlp.Fuzz.csproj" -c Release -o "$here/out" --nologo -v q
"$tools/sharpfuzz" "$here/out/MedVlp.Volumes.dll"

corpus="$here/corpus"
mkdir -p "$corpus"
# Small seeds cover every syntax the parser handles: implicit/explicit LE, BE, deflated, RLE, no meta, sequences.
for f in MR_small.dcm MR_small_implicit.dcm MR_small_bigendian.dcm MR_small_RLE.dcm image_dfl.dcm \
         ExplVR_BigEndNoMeta.dcm no_meta.dcm nested_priv_SQ.dcm rtdose_rle_1frame.dcm SC_rgb_small_odd.dcm \
         rtdose_1frame.dcm UN_sequence.dcm; do
  [ -f "$data/pydicom/$f" ] && cp "$data/pydicom/$f" "$corpus/"
done

export AFL_AUTORESUME=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1
afl-fuzz -i "$corpus" -o "$here/findings" -t 5000 -m none -V $((minutes * 60)) -- dotnet "$here/out/MedVlp.Fuzz.dll" || true

crashes=("$here"/findings/default/crashes/id*)
if [ -e "${crashes[0]}" ]; then
  echo "Crashes found: ${#crashes[@]}; replaying:"
  dotnet "$here/out/MedVlp.Fuzz.dll" --replay "${crashes[@]}" || true
else
  echo "No crashes in $minutes minute(s)."
fi
