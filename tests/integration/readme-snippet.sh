#!/bin/sh
# readme-snippet.sh README INCLUDE_DIR LIBRARY CC...
# The C example under "## Using the library" in README.md must compile
# warning-free as C11 and link against the built library, so the README
# cannot drift from chargan.h.  It is linked with a main() that does not call
# it (training is not the point here).
set -u
readme=$1 incdir=$2 lib=$3
shift 3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/chargan-readme.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

awk '/^## Using the library/ { section = 1; next }
     section && /^## / { exit }
     section && /^```c$/ { code = 1; next }
     code && /^```$/ { exit }
     code { print }' "$readme" >"$tmp/snippet.c"
if [ ! -s "$tmp/snippet.c" ]; then
    echo "no \`\`\`c block under '## Using the library' in $readme"
    exit 1
fi
cat >>"$tmp/snippet.c" <<'MAIN'

int main(int argc, char **argv)
{
    (void)argv;
    return argc > 1000 ? train("", 0) : 0;
}
MAIN
set -x
# shellcheck disable=SC2086
"$@" -std=c11 -pedantic -Werror -Wall -Wextra ${TEST_LINK_FLAGS:-} -I"$incdir" \
    "$tmp/snippet.c" "$lib" -o "$tmp/snippet" || exit 1
LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/snippet"
