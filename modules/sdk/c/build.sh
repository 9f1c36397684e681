#!/usr/bin/env bash
# Rebuilds the prebuilt C guests in prebuilt/ from their sources in
# examples/, with the recipe of hyperverse.h (Debian's clang and lld, no
# wasm32 libc). Run it after changing hyperverse.h, counter.c or
# counter_v2.c, and commit the .wasm files with the change:
#
#   modules/sdk/c/build.sh
#
# The prebuilt files are what hyperverse_modules::guests::C_COUNTER_V1 and
# C_COUNTER_V2 embed, so that `hyperverse demo` and examples/hot_reload.rs
# run on a machine without clang. modules/tests/c_prebuilt.rs checks, where
# clang is installed, that they are what these sources compile to (byte for
# byte when the clang version is the one that built them).
#
# CLANG=/path/to/clang picks another compiler.
set -euo pipefail
cd "$(dirname "$0")"
clang="${CLANG:-clang}"

# build SOURCE OUTPUT: examples/SOURCE.c -> prebuilt/OUTPUT.wasm
build() {
    "$clang" --target=wasm32 -mcpu=mvp -O2 -nostdlib -ffreestanding -Wall -Werror \
        -Wl,--no-entry -Wl,-z,stack-size=65536 \
        -I . -o "prebuilt/$2.wasm" "examples/$1.c"
    chmod 644 "prebuilt/$2.wasm"
    echo "prebuilt/$2.wasm: $(wc -c <"prebuilt/$2.wasm") bytes from examples/$1.c"
}

mkdir -p prebuilt
build counter counter_v1
build counter_v2 counter_v2
echo "built with $("$clang" --version | head -n 1)"
