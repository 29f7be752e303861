#!/bin/sh
# Build the libFuzzer + AddressSanitizer + UBSan harness of the C speed-ups.
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev) and a Python with
# its shared library (python3-config --embed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
config="$("$python" -c 'import sys, sysconfig; print(sysconfig.get_config_var("BINDIR"))')/python3-config"
mkdir -p "$here/build"
# shellcheck disable=SC2046
${CC:-clang} -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    $("$config" --includes) "$here/fuzz_speedups.c" -o "$here/build/fuzz_speedups" \
    $("$config" --ldflags --embed) -Wl,-rpath,"$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
echo "$here/build/fuzz_speedups"
