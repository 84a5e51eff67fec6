#!/usr/bin/env bash
# The one command that runs every check and test of split. Installs what a fresh
# machine lacks (rust components, Debian packages the integration tests need).
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
# (integration tests that need system services add their packages here)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "test.sh: missing packages: ${need_apt[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
