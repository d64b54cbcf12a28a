#!/usr/bin/env bash
# Fuzz MedVlp's DICOM, NIfTI, MetaImage or NRRD reader, or model-package loading, with AFL++ through SharpFuzz for
# N minutes (default 10).
#   bash benchmarks/fuzz/run-fuzz.sh [dicom|nifti|metaimage|nrrd|package] [MINUTES]
# Needs: afl++ (apt-get install -y afl++), the .NET SDK, test data (scripts/fetch-test-data.sh).
# Findings land in benchmarks/fuzz/findings-TARGET/default/{crashes,hangs}; replay them with
#   dotnet benchmarks/fuzz/out-replay/MedVlp.Fuzz.dll TARGET --replay benchmarks/fuzz/findings-TARGET/default/crashes/id*
# and turn each real crash into a regression test next to the hostile-input tests.
set -euo pipefail
target="${1:-dicom}"
minutes="${2:-10}"
case "$target" in dicom|nifti|metaimage|nrrd|package|safetensors|torchzip|pickle) ;; *) echo "usage: run-fuzz.sh [dicom|nifti|metaimage|nrrd|package|safetensors|torchzip|pickle] [MINUTES]" >&2; exit 2 ;; esac
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
if [ "$target" = safetensors ] || [ "$target" = torchzip ] || [ "$target" = pickle ]; then "$tools/sharpfuzz" "$here/out/MedVlp.dll"; else "$tools/sharpfuzz" "$here/out/MedVlp.Volumes.dll"; fi
if [ "$target" = package ]; then
  "$tools/sharpfuzz" "$here/out/MedVlp.dll"
fi

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
# torch.save: torchzip takes whole archives (the reader's golden cases: dtypes and views, a nested training checkpoint,
# a pickle naming os.system); pickle takes data.pkl alone, put back into views.pt (MEDVLP_FUZZ_TORCH_BASE) by the harness.
if [ "$target" = torchzip ]; then
  cp "$root"/tests/golden/data/weights/views.pt "$root"/tests/golden/data/weights/training_checkpoint.pth \
     "$root"/tests/golden/data/weights/evil_global.pt "$corpus/"
fi
if [ "$target" = pickle ]; then
  for f in views.pt training_checkpoint.pth evil_global.pt; do
    /usr/bin/python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); n = [e for e in z.namelist() if e.endswith("/data.pkl")][0]; open(sys.argv[2], "wb").write(z.read(n))' \
      "$root/tests/golden/data/weights/$f" "$corpus/${f%.*}.pkl"
  done
  export MEDVLP_FUZZ_TORCH_BASE="$root/tests/golden/data/weights/views.pt"
fi
# DICOM: small seeds cover every syntax the parser handles: implicit/explicit LE, BE, deflated, RLE, no meta, sequences.
if [ "$target" = dicom ]; then
  for f in MR_small.dcm MR_small_implicit.dcm MR_small_bigendian.dcm MR_small_RLE.dcm image_dfl.dcm \
         ExplVR_BigEndNoMeta.dcm no_meta.dcm nested_priv_SQ.dcm rtdose_rle_1frame.dcm SC_rgb_small_odd.dcm \
         rtdose_1frame.dcm UN_sequence.dcm; do
    [ -f "$data/pydicom/$f" ] && cp "$data/pydicom/$f" "$corpus/"
  done
fi
# MetaImage / NRRD: small headers that read (attached, detached data.raw, LIST, %d patterns, zlib/gzip, ascii, skips),
# plus ITK's headers pointed at data.raw. The harness puts data.raw, s1.raw and s2.raw beside every input.
if [ "$target" = metaimage ] || [ "$target" = nrrd ]; then
  /usr/bin/python3 - "$target" "$corpus" <<'PY'
import sys, zlib, gzip, os
target, corpus = sys.argv[1], sys.argv[2]
def put(name, text, data=b""):
    open(os.path.join(corpus, name), "wb").write(text.encode() + data)
if target == "metaimage":
    h = "ObjectType = Image\nNDims = 3\nBinaryData = True\n"
    put("local.mha", h + "DimSize = 4 4 4\nElementType = MET_UCHAR\nElementSpacing = 1 2 3\nOffset = 1 2 3\nTransformMatrix = 0 1 0 1 0 0 0 0 1\nElementDataFile = LOCAL\n", bytes(range(64)))
    put("detached.mhd", h + "DimSize = 16 16 4\nElementType = MET_SHORT\nBinaryDataByteOrderMSB = True\nHeaderSize = 8\nElementDataFile = data.raw\n")
    put("list.mhd", h + "DimSize = 16 16 2\nElementType = MET_UCHAR\nElementDataFile = LIST\ns1.raw\ns2.raw\n")
    put("pattern.mhd", h + "DimSize = 16 16 2\nElementType = MET_UCHAR\nElementDataFile = s%d.raw 1 2 1\n")
    put("zlib.mha", h + "DimSize = 8 8 8\nElementType = MET_FLOAT\nCompressedData = True\nElementNumberOfChannels = 1\nElementDataFile = LOCAL\n", zlib.compress(bytes(2048)))
    put("ascii.mha", "NDims = 2\nDimSize = 3 2\nBinaryData = False\nElementType = MET_DOUBLE\nElementDataFile = LOCAL\n", b"1 2 3\n4.5 -6 7e3\n")
    put("4d.mhd", "NDims = 4\nDimSize = 4 4 4 2\nElementType = MET_UCHAR\nElementNumberOfChannels = 2\nHeaderSize = -1\nElementDataFile = data.raw\n")
else:
    h = "NRRD0004\n# comment\n"
    put("attached.nrrd", h + "type: short\ndimension: 3\nsizes: 4 4 2\nspace: left-posterior-superior\nspace directions: (1,0,0) (0,2,0) (0,0,3)\nspace origin: (1,2,3)\nendian: little\nencoding: raw\n\n", bytes(64))
    put("detached.nhdr", h + "type: uchar\ndimension: 3\nsizes: 16 16 4\nline skip: 1\nbyte skip: 4\nencoding: raw\ndata file: data.raw\n")
    put("list.nhdr", h + "type: uchar\ndimension: 3\nsizes: 16 16 2\nencoding: raw\ndata file: LIST\ns1.raw\ns2.raw\n")
    put("pattern.nhdr", h + "type: uchar\ndimension: 3\nsizes: 16 16 2\nencoding: raw\ndata file: s%d.raw 1 2 1 2\n")
    put("gzip.nrrd", h + "type: float\ndimension: 4\nsizes: 2 4 4 4\nkinds: vector domain domain domain\nspace: RAS\nspace directions: none (1,0,0) (0,1,0) (0,0,1)\nendian: big\nencoding: gzip\n\n", gzip.compress(bytes(512)))
    put("ascii.nrrd", h + "type: double\ndimension: 2\nsizes: 3 2\nspacings: 1.5 2\nencoding: ascii\n\n", b"1 2 3\n4.5 -6 7e3\n")
    put("skip-end.nhdr", h + "type: uchar\ndimension: 3\nsizes: 8 8 8\nbyte skip: -1\nencoding: raw\ndata file: data.raw\n")
PY
  ext=$([ "$target" = metaimage ] && echo mhd || echo nhdr)
  for f in "$data"/itk/*.$ext; do
    [ -f "$f" ] && sed -E 's/^(ElementDataFile = |data file: ).*/\1data.raw/' "$f" > "$corpus/itk-$(basename "$f")"
  done
fi
# Package: config.json + preprocessing.json + vocab.txt of a tiny package (1200-token vocabulary) as one input; the
# weights are made once, uninstrumented, and stay fixed. A virtual-memory cap keeps a config asking for huge layers
# from taking the shared machine down (it ends as a crash or hang finding instead).
if [ "$target" = package ]; then
  MEDVLP_TESTDATA="$data" dotnet "$here/out-replay/MedVlp.Fuzz.dll" package --make-seed "$here/package-seed"
  cp "$here/package-seed/seed.txt" "$corpus/"
  export MEDVLP_FUZZ_WEIGHTS="$here/package-seed/model.safetensors" DOTNET_GCHeapHardLimit=0x20000000
  memory_limit=(-m 8192)
elif [ "$target" = torchzip ] || [ "$target" = pickle ]; then
  # libtorch is loaded (tensors are built); the same cap and managed-heap limit as the package target.
  export DOTNET_GCHeapHardLimit=0x20000000
  memory_limit=(-m 8192)
else
  memory_limit=(-m none)
fi

export AFL_AUTORESUME=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1
afl-fuzz -i "$corpus" -o "$findings" -t 5000 "${memory_limit[@]}" -V $((minutes * 60)) -- dotnet "$here/out/MedVlp.Fuzz.dll" "$target" || true

crashes=("$findings"/default/crashes/id*)
if [ -e "${crashes[0]}" ]; then
  echo "Crashes found: ${#crashes[@]}; replaying:"
  dotnet "$here/out-replay/MedVlp.Fuzz.dll" "$target" --replay "${crashes[@]}" || true
else
  echo "No crashes in $minutes minute(s)."
fi
