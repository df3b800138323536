#!/usr/bin/env bash
# Vendors axe-core's axe.min.js into tests/vendor for the accessibility checks of the
# browser tests; committed, so the tests never fetch it.
set -euo pipefail
VERSION="${1:-4.14.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "axe-core@$VERSION" >/dev/null)
tar -xzf "$tmp/axe-core-$VERSION.tgz" -C "$tmp"
mkdir -p "$root/tests/vendor"
cp "$tmp/package/axe.min.js" "$root/tests/vendor/axe.min.js"
printf 'axe-core %s (MPL-2.0 licence), from the npm registry by scripts/vendor_axe.sh\n' \
    "$VERSION" > "$root/tests/vendor/VERSION"
echo "vendored axe-core $VERSION into tests/vendor"
