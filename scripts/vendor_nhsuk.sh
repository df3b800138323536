#!/usr/bin/env bash
# Vendors the compiled NHS.UK frontend (CSS, JS, icons) into caseworker/static/nhsuk.
# The version must match the installed nhsuk-frontend-jinja macros (0.10.2 pairs with 10.6.1);
# the files are committed, so nothing is fetched when the pages are served.
set -euo pipefail
VERSION="${1:-10.6.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/caseworker/static/nhsuk"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "nhsuk-frontend@$VERSION" >/dev/null)
tar -xzf "$tmp/nhsuk-frontend-$VERSION.tgz" -C "$tmp"
dist="$tmp/package/dist/nhsuk"

rm -rf "$dest"
mkdir -p "$dest/images"
cp "$dist/nhsuk-frontend.min.css" "$dist/nhsuk-frontend.min.js" "$dest/"
# The stylesheet refers to /assets/images/*.svg; the favicons are used by the page template.
cp "$dist"/assets/images/*.svg "$dist/assets/images/favicon.ico" "$dest/images/"
printf 'nhsuk-frontend %s (MIT licence), from the npm registry by scripts/vendor_nhsuk.sh\n' \
    "$VERSION" > "$dest/VERSION"
echo "vendored nhsuk-frontend $VERSION into ${dest#"$root"/}"
