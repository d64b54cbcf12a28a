#!/usr/bin/env bash
# Fuzz MedVlp's DICOM or NIfTI parser with AFL++ through SharpFuzz for N minutes (default 10).
#   bash benchmarks/fuzz/run-fuzz.sh [dicom|nifti] [MINUTES]
# Needs: afl++ (apt-get install -y afl++), the .NET SDK, test data (scripts/fetch-test-data.sh).
# Findings land in benchmarks/fuzz/findings-TARGET/default/{crashes,hangs}; replay them with
#   dotnet benchmarks/fuzz/out-replay/MedVlp.Fuzz.dll TARGET --replay benchmarks/fuzz/findings-TARGET/default/crashes/id*
# and turn each real crash into a regression test next to the hostile-input tests.
set -euo pipefail
target="${1:-dicom}"
minutes="${2:-10}"
case "$target" in dicom|nifti|safetensors) ;; *) echo "usage: run-fuzz.sh [dicom|nifti|safetensors] [MINUTES]" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${MEDVLP_TESTDATA:-$root/.testdata}"

command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install -y afl++" >&2; exit 1; }
tools="$here/.tools"
if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools"
fi

# A fresh instrumented copy for AFL (instrumenting twice breaks it) and a plain copy for replaying findings.
rm -rf "$here/out" "$here/out-replay"
dotnet publish "$here/MedVlp.Fuzz/MedVlp.Fuzz.csproj" -c Release -o "$here/out" --nologo -v q
cp -r "$here/out" "$here/out-replay"
if [ "$target" = safetensors ]; then "$tools/sharpfuzz" "$here/out/MedVlp.dll"; else "$tools/sharpfuzz" "$here/out/MedVlp.Volumes.dll"; fi

corpus="$here/corpus-$target"
findings="$here/findings-$target"
mkdir -p "$corpus"
if [ "$target" = nifti ]; then
  # Small seeds: NIfTI-1 LE/BE, NIfTI-2, gzip, 4D with scaling, and the writer's tiny golden files.
  for f in nibabel/standard.nii.gz nibabel/example_nifti2.nii.gz nibabel/reoriented_anat_moved.nii nibabel/functional.nii; do
    [ -f "$data/$f" ] && cp "$data/$f" "$corpus/"
  done
  cp "$root"/tests/golden/data/writer/synthetic_f32.nii "$root"/tests/golden/data/writer/synthetic_int16.nii.gz \
     "$root"/tests/golden/data/writer/synthetic_nifti2.nii "$corpus/"
fi
if [ "$target" = safetensors ]; then
  # Seeds: the golden BERT checkpoint (F32) and a 3-tensor file with F16/BF16/I64.
  cp "$root"/tests/golden/data/weights/bert_tiny.safetensors "$corpus/"
  printf '\xa3\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]},"c":{"dtype":"I64","shape":[],"data_offsets":[6,14]}}\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' > "$corpus/small.safetensors"
fi
# DICOM: small seeds cover every syntax the parser handles: implicit/explicit LE, BE, deflated, RLE, no meta, sequences.
if [ "$target" = dicom ]; then
  for f in MR_small.dcm MR_small_implicit.dcm MR_small_bigendian.dcm MR_small_RLE.dcm image_dfl.dcm \
         ExplVR_BigEndNoMeta.dcm no_meta.dcm nested_priv_SQ.dcm rtdose_rle_1frame.dcm SC_rgb_small_odd.dcm \
         rtdose_1frame.dcm UN_sequence.dcm; do
    [ -f "$data/pydicom/$f" ] && cp "$data/pydicom/$f" "$corpus/"
  done
fi

export AFL_AUTORESUME=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1
afl-fuzz -i "$corpus" -o "$findings" -t 5000 -m none -V $((minutes * 60)) -- dotnet "$here/out/MedVlp.Fuzz.dll" "$target" || true

crashes=("$findings"/default/crashes/id*)
if [ -e "${crashes[0]}" ]; then
  echo "Crashes found: ${#crashes[@]}; replaying:"
  dotnet "$here/out-replay/MedVlp.Fuzz.dll" "$target" --replay "${crashes[@]}" || true
else
  echo "No crashes in $minutes minute(s)."
fi
