#!/usr/bin/env bash
# Build every AnonChat bundle into dist/ from a clean clone, with the project's venv:
#
#   dist/anonchat/                              the desktop app, one folder
#   dist/anonchat-VERSION-linux-ARCH            the desktop app, one file
#   dist/anonchat-relay/                        the relay, one folder
#   dist/anonchat-VERSION-linux-ARCH.tar.gz     the app folder, menu entry, icons, install.sh
#   dist/anonchat-relay-VERSION-linux-ARCH.tar.gz   the relay folder and its systemd unit
#
# Then run packaging/check.sh to try them outside the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-$root/.venv/bin/python}

if [ ! -x "$py" ]; then
    make venv
fi
if ! "$py" -m PyInstaller --version >/dev/null 2>&1; then
    echo "build.sh: PyInstaller is missing from the venv: $py -m pip install -e '.[dev]'" >&2
    exit 2
fi
version=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(uname -m)
app_tar="anonchat-$version-linux-$arch"
relay_tar="anonchat-relay-$version-linux-$arch"
export QT_QPA_PLATFORM=offscreen
started=$SECONDS

step() { printf '== %s (%ds)\n' "$1" $((SECONDS - started)); }

step "desktop app: folder and one file"
rm -rf dist/anonchat "dist/$app_tar" dist/anonchat-relay build/stage
"$py" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/anonchat.spec

step "relay: folder"
"$py" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/anonchat-relay.spec
cp packaging/anonchat-relay.service dist/anonchat-relay/

step "icons"
stage="build/stage/anonchat-$version"
mkdir -p "$stage/share/applications" "$stage/share/icons"
"$py" packaging/icons.py "$stage/share/icons" >/dev/null
cp packaging/anonchat.desktop "$stage/share/applications/"
cp packaging/install.sh "$stage/"
cp -al dist/anonchat "$stage/anonchat"

step "archives"
tar -C build/stage --owner=0 --group=0 -czf "dist/$app_tar.tar.gz" "anonchat-$version"
tar -C dist --owner=0 --group=0 -czf "dist/$relay_tar.tar.gz" anonchat-relay

step "done"
for f in dist/anonchat dist/anonchat-relay "dist/$app_tar" "dist/$app_tar.tar.gz" \
    "dist/$relay_tar.tar.gz"; do
    printf '%8s  %s\n' "$(du -sh "$f" | cut -f1)" "$f"
done
