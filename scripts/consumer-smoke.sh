#!/usr/bin/env bash
# Consumer smoke test: what a user does, with the packages this checkout packs (run by scripts/test.sh).
#
#  1. packs MedVlp, MedVlp.Losses, MedVlp.Volumes and the MedVlp.Cli tool into a local folder;
#  2. in a fresh temporary folder (outside the repository: no Directory.Build.props/Packages.props to inherit) with
#     its own nuget.config (that folder + the repository's package sources), runs the shell lines of the README's
#     quick start (`dotnet new console`, `dotnet add package ...`) and puts the README's quick-start C# block in
#     Program.cs, so a README change that breaks users fails CI;
#  3. installs the tool with `dotnet tool install --tool-path`, runs `medvlp info` on a NIfTI file in a clean
#     environment (env -i) and `medvlp demo` on a tiny setting to make a model package;
#  4. runs the quick start (dotnet run, and the dotnet publish output) on the test data and that model, and checks
#     its output;
#  5. checks that a build without libtorch fails with MEDVLP001 (and, built anyway, fails at run time with
#     MedVlp's message), and one with another version with MEDVLP002, each naming the package and version to add.
#
# NuGet: MedVlp packages are extracted into a temporary global packages folder; everything else (TorchSharp,
# libtorch, ...) comes from your normal one, used as a read-only fallback folder, so nothing is downloaded twice.
# KEEP=1 keeps the temporary folder.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
data=${MEDVLP_TESTDATA:-$repo/.testdata}
volume=$data/mricron/ch2.nii.gz
vocab=$data/bert/vocab.txt
for f in "$volume" "$vocab"; do
  [ -f "$f" ] || { echo "consumer-smoke: $f is missing; run scripts/fetch-test-data.sh" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/medvlp-consumer.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "consumer-smoke: kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
fail() { echo "consumer-smoke: FAILED: $*" >&2; exit 1; }
step() { echo "consumer-smoke: $*"; }

# The app must see none of the repository's (or anyone's) Directory.Build.* / Directory.Packages.props.
for d in "$work" $(dirname "$work") /; do
  for f in Directory.Build.props Directory.Build.targets Directory.Packages.props; do
    [ ! -e "$d/$f" ] || fail "$d/$f would be imported by the test app; set TMPDIR to a clean folder"
  done
done

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props" | head -1)
libtorch_version=$(sed -n 's:.*<MedVlpLibTorchVersion>\(.*\)</MedVlpLibTorchVersion>.*:\1:p' "$repo/build/TorchSharp.Native.targets" | head -1)
fallback=$(dotnet nuget locals global-packages --list | sed 's/^global-packages: //')
fallback=${fallback%/}
for id in medvlp medvlp.losses medvlp.volumes medvlp.cli; do
  [ ! -e "$fallback/$id/$version" ] || fail "$fallback/$id/$version exists and would shadow the packed package; remove it"
done

# 1. Pack.
feed=$work/feed
step "packing $version into $feed"
dotnet pack "$repo/src/MedVlp" -c Release -o "$feed" -v q -nologo -clp:ErrorsOnly
dotnet pack "$repo/src/MedVlp.Losses" -c Release --no-build -o "$feed" -v q -nologo -clp:ErrorsOnly
dotnet pack "$repo/src/MedVlp.Volumes" -c Release --no-build -o "$feed" -v q -nologo -clp:ErrorsOnly
dotnet pack "$repo/samples/MedVlp.Cli" -c Release -p:IsPackable=true -o "$feed" -v q -nologo -clp:ErrorsOnly
for p in MedVlp MedVlp.Losses MedVlp.Volumes MedVlp.Cli; do
  [ -f "$feed/$p.$version.nupkg" ] || fail "$p.$version.nupkg was not packed"
done
tool_size=$(stat -c %s "$feed/MedVlp.Cli.$version.nupkg")
[ "$tool_size" -lt 100000000 ] || fail "the tool package is $tool_size bytes; libtorch must not be in it"

# 2. A brand-new app, set up by the README's own quick-start lines.
export NUGET_PACKAGES=$work/nuget-packages
sources=$(sed -n 's:.*\(<add key=.*/>\).*:    \1:p' "$repo/nuget.config")
cat > "$work/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="medvlp-local" value="$feed" />
$sources
  </packageSources>
  <fallbackPackageFolders>
    <add key="user" value="$fallback" />
  </fallbackPackageFolders>
</configuration>
EOF

readme_block() { # $1 = fence language; prints the first such block after the "## Quick start" heading
  awk -v lang="$1" '/^## Quick start/ { on = 1; next } on && /^## / { exit }
    on && !inb && $0 == "```" lang { inb = 1; next } inb && /^```/ { exit } inb { print }' "$repo/README.md"
}
readme_block sh > "$work/quickstart.sh"
readme_block csharp > "$work/Program.cs"
[ -s "$work/quickstart.sh" ] && [ -s "$work/Program.cs" ] || fail "README.md has no quick start (sh and csharp blocks after '## Quick start')"
grep -q '^dotnet new console' "$work/quickstart.sh" || fail "the README's quick start does not start with dotnet new console"
step "README quick start: $(grep -c . "$work/quickstart.sh") shell lines, $(grep -c . "$work/Program.cs") lines of C#"
(cd "$work" && set -e && source ./quickstart.sh) > "$work/quickstart.log" 2>&1 || { cat "$work/quickstart.log"; fail "the README's quick-start commands"; }
app=$(dirname "$(find "$work" -maxdepth 2 -name '*.csproj' | head -1)")
[ -d "$app" ] || fail "the quick start created no project"
cp "$work/Program.cs" "$app/Program.cs"

# 3. The tool, in a clean environment.
step "dotnet tool install MedVlp.Cli"
dotnet tool install --tool-path "$work/tools" --add-source "$feed" MedVlp.Cli --version "$version" > "$work/tool.log" 2>&1 || { cat "$work/tool.log"; fail "dotnet tool install"; }
dotnet_path="PATH=$(dirname "$(readlink -f "$(command -v dotnet)")"):/usr/local/bin:/usr/bin:/bin"
# A fresh login environment; TERM claims colours, which redirected output must not get.
clean_env=(env -i "HOME=$HOME" "$dotnet_path" "TERM=xterm-256color")
info=$("${clean_env[@]}" "$work/tools/medvlp" info "$volume" --json) || fail "medvlp info"
echo "$info" | grep -q '"shape":\[181,217,181\]' || fail "medvlp info printed $info"
help=$("${clean_env[@]}" "$work/tools/medvlp" --help)
echo "$help" | grep -q '^  medvlp \[command\]' || fail "medvlp --help does not say medvlp: $help"
step "medvlp info: ok; medvlp demo (tiny) for a model"
"${clean_env[@]}" "$work/tools/medvlp" demo --train 64 --test 3 --epochs 1 --vocab "$vocab" --out "$work/demo" > "$work/demo.log" 2>&1 \
  || { cat "$work/demo.log"; fail "medvlp demo"; }
! grep -q $'\e' "$work/demo.log" || fail "medvlp demo wrote colour/escape codes to redirected output"
[ -f "$work/demo/model/config.json" ] || fail "medvlp demo wrote no model package"
# With libtorch nowhere (an empty NuGet folder), a TorchSharp command says what to install and touches nothing.
mkdir -p "$work/empty-home"
set +e
nolib=$(env -i "HOME=$work/empty-home" "$dotnet_path" "$work/tools/medvlp" zeroshot --model "$work/demo/model" --label "a=x" --label "b=y" "$volume" 2>&1)
rc=$?
set -e
[ "$rc" -eq 2 ] && echo "$nolib" | grep -q "^medvlp: error: .*dotnet add libtorch-restore package libtorch-cpu-linux-x64 --version $libtorch_version" \
  || fail "medvlp zeroshot without libtorch: exit $rc, $nolib"

# 4. The quick start itself: build + run, and the publish output.
check_output() { # $1 = log
  grep -q '^181x217x181 RAS$' "$1" && grep -Eq '^embedding: [0-9]+ floats; zero-shot: (CN|AD) \(p = [01]\.[0-9]{3}\)$' "$1" \
    || { cat "$1"; fail "unexpected quick-start output"; }
}
step "dotnet run (quick start)"
(cd "$app" && dotnet run -c Release -- "$volume" "$work/demo/model") > "$work/run.log" 2>&1 || { cat "$work/run.log"; fail "dotnet run"; }
check_output "$work/run.log"
step "dotnet publish (quick start)"
(cd "$app" && dotnet publish -c Release -o "$work/publish" -v q -nologo -clp:ErrorsOnly) > "$work/publish.log" 2>&1 || { cat "$work/publish.log"; fail "dotnet publish"; }
"${clean_env[@]}" dotnet "$work/publish/$(basename "$app").dll" "$volume" "$work/demo/model" > "$work/published.log" 2>&1 || { cat "$work/published.log"; fail "published app"; }
check_output "$work/published.log"

# 5. Without libtorch the build says what to add.
step "a build without libtorch"
(cd "$work" && dotnet new console -o NoTorch && cd NoTorch && dotnet add package MedVlp) > "$work/notorch.log" 2>&1 || { cat "$work/notorch.log"; fail "setting up NoTorch"; }
if (cd "$work/NoTorch" && dotnet build -c Release -nologo) > "$work/notorch-build.log" 2>&1; then
  fail "a build without libtorch succeeded"
fi
grep -q "MEDVLP001.*libtorch-cpu-linux-x64 --version $libtorch_version" "$work/notorch-build.log" || { cat "$work/notorch-build.log"; fail "no MEDVLP001 naming libtorch-cpu-linux-x64 $libtorch_version"; }

# Built anyway (MedVlpCheckLibTorch=false), the first MedVlp call that needs TorchSharp says the same at run time.
echo 'using var model = MedVlp.VisionLanguageModel.Load(args[0]);' > "$work/NoTorch/Program.cs"
if (cd "$work/NoTorch" && dotnet run -c Release -p:MedVlpCheckLibTorch=false -- "$work/demo/model") > "$work/notorch-run.log" 2>&1; then
  fail "an app without libtorch ran"
fi
grep -q "InvalidOperationException: MedVlp: TorchSharp .* needs libtorch $libtorch_version.*dotnet add package libtorch-cpu-linux-x64 --version $libtorch_version" "$work/notorch-run.log" \
  || { cat "$work/notorch-run.log"; fail "no MedVlp runtime error naming libtorch-cpu-linux-x64 $libtorch_version"; }

# ... and with another libtorch version (a stand-in package 2.9.0 holding one empty native file) it names the right one.
mkdir -p "$work/fake/pkg/runtimes/linux-x64/native" "$work/fake/feed"
: > "$work/fake/pkg/runtimes/linux-x64/native/libtorch_stand_in.so"
cat > "$work/fake/pkg/libtorch-cpu-linux-x64.nuspec" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata><id>libtorch-cpu-linux-x64</id><version>2.9.0</version><authors>medvlp-smoke</authors><description>stand-in</description></metadata>
</package>
EOF
(cd "$work/fake/pkg" && python3 -c 'import shutil; shutil.make_archive("../feed/libtorch-cpu-linux-x64.2.9.0", "zip", ".")' && mv ../feed/libtorch-cpu-linux-x64.2.9.0.zip ../feed/libtorch-cpu-linux-x64.2.9.0.nupkg)
(cd "$work/NoTorch" && dotnet add package libtorch-cpu-linux-x64 --version 2.9.0 --source "$work/fake/feed") >> "$work/notorch.log" 2>&1 || { cat "$work/notorch.log"; fail "adding the stand-in libtorch"; }
if (cd "$work/NoTorch" && dotnet build -c Release -nologo) > "$work/wrongtorch-build.log" 2>&1; then
  fail "a build with libtorch 2.9.0 succeeded"
fi
grep -q "MEDVLP002.*restores libtorch-cpu-linux-x64 2.9.0.*libtorch-cpu-linux-x64 --version $libtorch_version" "$work/wrongtorch-build.log" || { cat "$work/wrongtorch-build.log"; fail "no MEDVLP002 naming libtorch-cpu-linux-x64 $libtorch_version"; }

step "passed ($(grep '^embedding' "$work/run.log"))"
