#!/usr/bin/env bash
# The aarch64 check without a board: edgeguard[runtime] on an arm64 userland under qemu user mode.
#
#   bash benchmarks/aarch64/check.sh [EXPORT ...]     # default: trains + exports the x86 and qnnpack runs
#
# 1. qemu-user 10 from Debian bookworm-backports, unpacked (bookworm's qemu 7.2 segfaults on
#    `import onnxruntime`); debootstrap --foreign arm64 bookworm with python3.11, every .deb unpacked
#    (no arm code runs to build it, no binfmt_misc, nothing installed on this machine);
# 2. aarch64 wheels of edgeguard[runtime,tflite]'s dependencies (pip download --platform; the tflite
#    extra is ai-edge-litert), installed with edgeguard's own wheel into a target folder;
# 3. benchmarks/aarch64/emulate.py: under -cpu cortex-a72 (Pi 4) and cortex-a76 (Pi 5), parity of every
#    model file with x86 (ONNX and TFLite) and `edgeguard serve` answering a real HTTP request as x86
#    does, from the int8 ONNX and the int8 TFLite file;
#    writes benchmarks/results/aarch64-parity.json.
# Needs root (debootstrap), apt and pip. Downloads ~320 MB once into .cache/aarch64/ (gitignored);
# a rerun reuses them and takes a few minutes. Not part of CI. Emulated timings are not Pi timings.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${EDGEGUARD_AARCH64_CACHE:-$ROOT/.cache/aarch64}
PY=${PYTHON:-$ROOT/.venv/bin/python}
MIRROR=http://deb.debian.org/debian
PLATFORMS=(--platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64)   # pip does not expand these: ai-edge-litert is 2_27 only
mkdir -p "$CACHE"

say() { echo "[aarch64] $*"; }
quiet() { "$@" > "$CACHE/last.log" 2>&1 || { cat "$CACHE/last.log"; exit 1; }; }   # output only on failure

# apt with its own source list and state in the cache: the machine's apt configuration is untouched
APT_OPTS=(-o "Dir::Etc::SourceList=$CACHE/apt/backports.list" -o Dir::Etc::SourceParts=/nonexistent
          -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache=$CACHE/apt/cache" -o APT::Sandbox::User=root)
if [ ! -x "$CACHE/qemu/usr/bin/qemu-aarch64" ]; then
  say "qemu-user from bookworm-backports"
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
  echo "deb $MIRROR bookworm-backports main" > "$CACHE/apt/backports.list"
  apt-get -qq "${APT_OPTS[@]}" update
  (cd "$CACHE/apt" && rm -f qemu-user_*.deb && apt-get -qq "${APT_OPTS[@]}" download qemu-user/bookworm-backports)
  dpkg -x "$CACHE"/apt/qemu-user_*.deb "$CACHE/qemu"
fi
QEMU=$CACHE/qemu/usr/bin/qemu-aarch64
"$QEMU" --version | head -1

if [ ! -x "$CACHE/rootfs/usr/bin/python3.11" ]; then
  say "arm64 bookworm userland (debootstrap --foreign, then dpkg -x of every .deb)"
  if [ ! -x "$CACHE/debootstrap/usr/sbin/debootstrap" ]; then
    (cd "$CACHE/apt" && rm -f debootstrap_*.deb && apt-get -qq -o APT::Sandbox::User=root download debootstrap)
    dpkg -x "$CACHE"/apt/debootstrap_*.deb "$CACHE/debootstrap"
  fi
  rm -rf "$CACHE/rootfs"
  DEBOOTSTRAP_DIR=$CACHE/debootstrap/usr/share/debootstrap "$CACHE/debootstrap/usr/sbin/debootstrap" \
    --foreign --arch=arm64 --variant=minbase --include=python3.11-minimal,libpython3.11-stdlib,libstdc++6 \
    bookworm "$CACHE/rootfs" "$MIRROR" > "$CACHE/debootstrap.log"
  for deb in "$CACHE"/rootfs/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$CACHE/rootfs"; done
fi

say "edgeguard[runtime,tflite] for aarch64 (cp311 wheels)"
rm -rf "$CACHE/src" "$CACHE/dist" "$CACHE/site"
mkdir -p "$CACHE/src" "$CACHE/wheels"
cp -r pyproject.toml README.md edgeguard "$CACHE/src/"   # built out of tree: no build/ in the checkout
quiet "$PY" -m pip wheel --no-deps --no-build-isolation -w "$CACHE/dist" "$CACHE/src"
WHEEL=$(ls "$CACHE"/dist/edgeguard-*.whl)
TARGET=(--only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 --implementation cp)
REQUIREMENT="edgeguard[runtime,tflite] @ file://$WHEEL"
quiet "$PY" -m pip download -d "$CACHE/wheels" "${TARGET[@]}" "$REQUIREMENT"
quiet "$PY" -m pip install --target "$CACHE/site" --no-index --find-links "$CACHE/wheels" "${TARGET[@]}" "$REQUIREMENT"
ls "$CACHE/site" | grep -o '^[a-z_]*-[0-9.]*\.dist-info' | sed 's/\.dist-info//' | tr '\n' ' '; echo
rm -rf "$CACHE/src"

"$PY" benchmarks/aarch64/emulate.py --qemu "$QEMU" --rootfs "$CACHE/rootfs" --site "$CACHE/site" --work "$CACHE" "$@"
