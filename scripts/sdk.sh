#!/usr/bin/env bash
# Installs the official clients the compatibility suite (tests/it/sdk.rs) drives, pinned:
# auth0-python in a virtual environment under target/sdk/venv, the `auth0` and
# `openid-client` npm packages under sdk/node_modules (from sdk/package-lock.json). Needs
# python3 with venv, node and npm, and openssl for the TLS proxy's certificate; installs
# Debian's packages for any that are missing. Safe to run again: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v openssl >/dev/null || missing+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    echo "sdk.sh: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv=target/sdk/venv
if ! "$venv/bin/python" -c 'import auth0' 2>/dev/null ||
    ! cmp -s sdk/requirements.txt "$venv/requirements.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r sdk/requirements.txt
    cp sdk/requirements.txt "$venv/requirements.txt"
fi

if ! cmp -s sdk/package-lock.json sdk/node_modules/.installed-lock.json 2>/dev/null; then
    npm ci --prefix sdk --no-audit --no-fund --loglevel=error
    cp sdk/package-lock.json sdk/node_modules/.installed-lock.json
fi
echo "sdk.sh: auth0-python $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("auth0-python"))'), auth0 $(node -p 'require("./sdk/node_modules/auth0/package.json").version'), openid-client $(node -p 'require("./sdk/node_modules/openid-client/package.json").version')"
