#!/usr/bin/env bash
# install-deps.sh — install every build, test and demo dependency of Covey from
# the distribution's package archive (Debian 12 / Ubuntu 22.04 or later).
#
# Usage: deploy/install-deps.sh [--bench] [--check]
#   --bench   also install the peers the benchmarks compare against (python3-torch)
#   --check   only report what is missing; install nothing (exit 1 if anything is)
#
# Idempotent: when every package is already present it returns at once without
# touching apt. Must run as root (or via sudo) when something has to be installed.
set -euo pipefail

PKGS=(
    build-essential pkg-config
    libzmq3-dev libsodium-dev libopenblas-dev libmsgpack-dev libsqlite3-dev
    zlib1g-dev libjansson-dev libinih-dev libcmocka-dev
    dataset-fashion-mnist
    sqlite3 python3 valgrind
)
BENCH_PKGS=(python3-torch)

want=("${PKGS[@]}")
check_only=0
for arg in "$@"; do
    case "$arg" in
        --bench) want+=("${BENCH_PKGS[@]}") ;;
        --check) check_only=1 ;;
        -h|--help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0 ;;
        *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" = 1 ]; then
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: must run as root to install packages (or install sudo):" >&2
        echo "    apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
