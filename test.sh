#!/usr/bin/env bash
# The one command that runs every check and test of split. Installs what a fresh
# machine lacks (rust components, Debian packages the integration tests need).
set -euo pipefail
cd "$(dirname "$0")"

# Services the integration tests start themselves (on free loopback ports, in temp dirs):
# redis-server (limit-count policy redis, ticket: redis), etcd (the etcd store), and
# protoc, which the etcd-client crate needs at build time for `--features etcd`.
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
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
# The etcd store is behind a cargo feature (protoc at build time, installed above).
# Clippy sees both builds: the default one (above) and the one with etcd. The tests run
# once, on the build with etcd: it is the default build plus the etcd store (the only
# code the feature removes is the refusal to open etcd), so every test, the multi-gateway
# ones against a real etcd included, runs in one build instead of three. The Python
# client below drives the default build.
echo "== cargo clippy --features etcd"
cargo clippy -p split-admin -p split-proxy --features split-admin/etcd,split-proxy/etcd --all-targets --locked -- -D warnings
echo "== cargo test (with the etcd feature)"
cargo test --workspace --locked --features split-admin/etcd,split-proxy/etcd

# The official openai Python client against the debug binaries (a separate step: the
# Rust suite never needs Python). The venv lives under the target dir, ignored by git.
echo "== openai python client (tests/py)"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build -p split-proxy -p split-sim --locked
pyenv="$target_dir/pyenv"
if ! "$pyenv/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install --quiet "openai==1.55.3"
fi
for t in tests/py/test_*.py; do
  SPLIT_BIN="$target_dir/debug" "$pyenv/bin/python" "$t"
done
