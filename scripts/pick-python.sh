#!/usr/bin/env bash
# Prints the Python interpreter `make` builds the venv from (the Makefile's PYTHON; set
# PYTHON=... to choose another).
#
# The distribution's own CPython (/usr/bin/python3) comes first when it is 3.11 or newer and
# can make a venv with pip: distributions build it with profile-guided optimisation and LTO
# (Debian also links the interpreter statically), and so do the official python Docker images
# the archive's Dockerfile starts from. A plain source build, such as pyenv's default
# (--enable-shared, no --enable-optimizations), takes 1.2-1.5 times as long for the same
# code: measured on these machines, the gateway's CPU per small C-STORE 12-26 % higher
# (docs/performance.md, fifteenth run). Otherwise: python3 on PATH.
set -euo pipefail

usable() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

# DICOMVAULT_SYSTEM_PYTHON: where the distribution's interpreter is (tests point it elsewhere).
for candidate in "${DICOMVAULT_SYSTEM_PYTHON:-/usr/bin/python3}" "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && usable "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
echo python3  # none usable: `python3 -m venv` says why
