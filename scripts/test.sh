#!/usr/bin/env bash
# Runs every test of exportd. Installs what the tests need first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
# the browser test (tests/browser.rs) drives headless Chromium through chromedriver
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

export RUST_LOG=${RUST_LOG:-warn}
export CARGO_TERM_COLOR=never
# one optimized build serves every test: process and export tests move real data volumes
cargo test --release --locked --no-fail-fast --lib --bins --tests -- --test-threads=2
# the benchmarks must keep compiling (they run with scripts/bench.sh and cargo bench)
cargo bench --locked --no-run
