#!/bin/sh
# Install (or upgrade, or remove) the AnonChat desktop app from this unpacked archive.
#
#   ./install.sh                 for you alone, under ~/.local
#   sudo ./install.sh --prefix /usr/local
#   ./install.sh --uninstall     removes the program, never your profiles
#
# The program goes to PREFIX/lib/anonchat (replaced whole on upgrade), the command to
# PREFIX/bin/anonchat, the menu entry and icons to PREFIX/share. Profiles live elsewhere
# (your data directory) and are left alone.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac

lib="$prefix/lib/anonchat"
bin="$prefix/bin/anonchat"
apps="$prefix/share/applications"
icons="$prefix/share/icons/hicolor"

refresh_caches() {
    if command -v gtk-update-icon-cache >/dev/null 2>&1; then
        gtk-update-icon-cache -q -t "$icons" 2>/dev/null || true
    fi
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$apps" 2>/dev/null || true
    fi
}

if [ "$action" = uninstall ]; then
    rm -rf "$lib"
    rm -f "$bin" "$apps/anonchat.desktop"
    find "$icons" -path '*/apps/anonchat.*' -delete 2>/dev/null || true
    refresh_caches
    echo "AnonChat removed from $prefix (profiles kept)."
    exit 0
fi

[ -x "$here/anonchat/anonchat" ] || { echo "install.sh: no anonchat/ next to me" >&2; exit 1; }
mkdir -p "$prefix/lib" "$prefix/bin" "$apps" "$icons"

# Copy beside the old version, then swap: a failed copy leaves the old one working.
rm -rf "$lib.new" "$lib.old"
cp -R "$here/anonchat" "$lib.new"
if [ -e "$lib" ]; then mv "$lib" "$lib.old"; fi
mv "$lib.new" "$lib"
rm -rf "$lib.old"

ln -sf "$lib/anonchat" "$bin"
sed -e "s|^Exec=anonchat|Exec=$bin|" -e "s|^TryExec=anonchat|TryExec=$bin|" \
    "$here/share/applications/anonchat.desktop" > "$apps/anonchat.desktop"
cp -R "$here/share/icons/hicolor/." "$icons/"
refresh_caches
echo "AnonChat $("$bin" --version | cut -d' ' -f2) installed: $bin"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" ;; esac
