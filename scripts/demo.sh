#!/bin/sh
# demo.sh - build libchargan and its CLI, train a character-level generator on
# Shakespeare's sonnets (data/sonnets.txt) for about two minutes on two
# cores, then print the model (with the vocabulary it learned) and a few
# samples.
#
# On Debian 12 (as root, or with sudo) it first installs whatever is missing.
# Environment:
#   BUILD_DIR    build directory (default: build)
#   MESON_OPTS   extra `meson setup` options
#   DEMO_TIME    training budget in seconds (default 110)
#   DEMO_THREADS compute threads (default 2)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/deps.sh
. "$here/deps.sh"

build_dir=${BUILD_DIR:-build}
case $build_dir in
/*) ;;
*) build_dir="$root/$build_dir" ;;
esac

# shellcheck disable=SC2086 # package lists are space separated on purpose
chargan_need_packages $CHARGAN_BUILD_PACKAGES

# shellcheck disable=SC2086 # MESON_OPTS holds several options
if [ -f "$build_dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure -Dcli=true ${MESON_OPTS:-} "$build_dir" "$root" >/dev/null
else
    meson setup -Dcli=true ${MESON_OPTS:-} "$build_dir" "$root" >/dev/null
fi
ninja -C "$build_dir"

chargan=$build_dir/cli/chargan
corpus=$root/data/sonnets.txt
model=$build_dir/demo/sonnets.chargan
mkdir -p "$build_dir/demo"

echo
echo "== training on $(basename "$corpus") for ${DEMO_TIME:-110} s on ${DEMO_THREADS:-2} threads"
# A one-layer LSTM of 256 units learns the sonnets' spelling, line lengths
# and punctuation within a couple of minutes.
"$chargan" train "$corpus" -o "$model" \
    --time "${DEMO_TIME:-110}" --threads "${DEMO_THREADS:-2}" \
    --hidden 256 --embed 64 --layers 1 --batch 32 --seq 64 --lr 0.002 --seed 1

echo
echo "== the model: configuration, the sonnets' vocabulary, parameters"
"$chargan" info "$model"

for prime in "Shall I compare thee" "My love is" "When"; do
    echo
    echo "== sample (temperature 0.7, prime \"$prime\")"
    "$chargan" sample "$model" -n 400 --temperature 0.7 --prime "$prime" --seed 7
done
echo
echo "== sample (temperature 1.0, no prime)"
"$chargan" sample "$model" -n 400 --temperature 1.0 --seed 11
echo
