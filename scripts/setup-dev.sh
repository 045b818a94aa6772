#!/usr/bin/env bash
# Packages for the reliability checks only (make fuzz: clang++ and its
# libFuzzer/sanitizer runtimes; fuzz/make_seeds.py: python3-pil), on top of
# scripts/setup.sh's. The normal build and `make test` never need them.
# Idempotent.
set -euo pipefail
exec bash "$(dirname "$0")/setup.sh" clang libclang-rt-14-dev python3-pil
