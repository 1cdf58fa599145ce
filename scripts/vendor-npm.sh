#!/bin/sh
# Vendor the few browser files the hub serves and the browser tests use, from the npm registry (no CDN at run time):
#   leaflet   -> hub/web/static/vendor/leaflet/   (served at /static/vendor/leaflet/, shipped in the wheel)
#   axe-core  -> tests/vendor/axe-core/           (accessibility checks in the browser tests only)
# Exact versions are pinned below; each tarball is checked against the registry's dist.integrity (sha512) before a
# file is taken from it, and the provenance is written to the README.md beside the files. Run it from anywhere to
# update (change a version, run, review `git diff`, commit the result): the tests and `warnhub run` never run it.
# Needs curl, tar, sha256sum and python3; NPM_CONFIG_REGISTRY overrides the registry.
set -eu

LEAFLET=1.9.4
AXE_CORE=4.14.1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}
REGISTRY=${REGISTRY%/}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

# fetch NAME VERSION: download and verify the tarball, unpack it to $WORK/NAME/package, set TARBALL, INTEGRITY, LICENCE.
fetch() {
    curl -fsS --retry 2 -o "$WORK/$1.json" "$REGISTRY/$1/$2"
    eval "$(python3 - "$WORK/$1.json" "$1" "$2" <<'EOF'
import json, shlex, sys
meta = json.load(open(sys.argv[1]))
if (meta.get("name"), meta.get("version")) != (sys.argv[2], sys.argv[3]):
    sys.exit(f"registry answered {meta.get('name')}@{meta.get('version')} for {sys.argv[2]}@{sys.argv[3]}")
integrity = meta["dist"].get("integrity", "")
if not integrity.startswith("sha512-"):
    sys.exit(f"{sys.argv[2]}@{sys.argv[3]}: no sha512 integrity in the registry's metadata")
print(f"TARBALL={shlex.quote(meta['dist']['tarball'])}")
print(f"INTEGRITY={shlex.quote(integrity)}")
print(f"LICENCE={shlex.quote(str(meta.get('license', 'see LICENSE')))}")
EOF
)"
    curl -fsS --retry 2 -o "$WORK/$1.tgz" "$TARBALL"
    got=$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$WORK/$1.tgz")
    if [ "$got" != "$INTEGRITY" ]; then
        echo "$1@$2: integrity mismatch: registry says $INTEGRITY, tarball is $got" >&2
        exit 1
    fi
    mkdir -p "$WORK/$1"
    tar -xzf "$WORK/$1.tgz" -C "$WORK/$1"
}

# provenance NAME VERSION FILES...: one README.md section for a vendored package (run in the folder of FILES).
provenance() {
    name=$1 version=$2
    shift 2
    printf '\n## %s %s\n\n' "$name" "$version"
    printf -- '- tarball: `%s` on the npm registry\n- integrity (checked): `%s`\n' "${TARBALL#"$REGISTRY"/}" "$INTEGRITY"
    printf -- '- licence: %s (LICENSE beside the files)\n- files (sha256):\n' "$LICENCE"
    for f in "$@"; do
        printf '  - `%s` %s\n' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"
    done
}

# -- leaflet ------------------------------------------------------------------------------------------------------
fetch leaflet "$LEAFLET"
dest="$ROOT/hub/web/static/vendor/leaflet"
rm -rf "$dest"
mkdir -p "$dest/images"
src="$WORK/leaflet/package"
cp "$src/dist/leaflet.js" "$src/dist/leaflet.css" "$src/LICENSE" "$dest/"
cp "$src"/dist/images/*.png "$dest/images/"
(
    cd "$ROOT/hub/web/static/vendor"
    printf '# Vendored browser libraries\n\n'
    printf 'Written by `scripts/vendor-npm.sh` from the npm registry; do not edit by hand. Served at\n'
    printf '`/static/vendor/...` and shipped in the package (pyproject `package-data`).\n'
    provenance leaflet "$LEAFLET" leaflet/leaflet.js leaflet/leaflet.css leaflet/images/*.png leaflet/LICENSE
) >"$WORK/README.md"
mv "$WORK/README.md" "$ROOT/hub/web/static/vendor/README.md"

# -- axe-core (tests only) ----------------------------------------------------------------------------------------
fetch axe-core "$AXE_CORE"
dest="$ROOT/tests/vendor/axe-core"
rm -rf "$dest"
mkdir -p "$dest"
src="$WORK/axe-core/package"
cp "$src/axe.min.js" "$src/LICENSE" "$dest/"
extra=""
if [ -f "$src/LICENSE-3RD-PARTY.txt" ]; then
    cp "$src/LICENSE-3RD-PARTY.txt" "$dest/"
    extra=axe-core/LICENSE-3RD-PARTY.txt
fi
(
    cd "$ROOT/tests/vendor"
    printf '# Vendored test-only browser libraries\n\n'
    printf 'Written by `scripts/vendor-npm.sh` from the npm registry; do not edit by hand. Used by the browser tests\n'
    printf '(`tests/kits/browser.py`), never served by the hub.\n'
    # shellcheck disable=SC2086
    provenance axe-core "$AXE_CORE" axe-core/axe.min.js axe-core/LICENSE $extra
) >"$WORK/README.md"
mv "$WORK/README.md" "$ROOT/tests/vendor/README.md"

echo "vendored leaflet@$LEAFLET, axe-core@$AXE_CORE" >&2
