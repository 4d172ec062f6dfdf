#!/usr/bin/env bash
# Install the prebuilt OHIF viewer (npm package @ohif/app, pinned) for the gateway's /viewer.
#   scripts/install-ohif.sh [DEST]   -> DEST/dist (default DEST: .ohif); idempotent.
# The build references its assets from "/" (index.html, webpack's public path): they are
# rewritten to "/viewer/", where the gateway serves it. The gateway writes app-config.js itself.
set -euo pipefail

VERSION=${OHIF_VERSION:-3.13.2}
DEST=${1:-.ohif}
MOUNT=/viewer/
STAMP="$VERSION patched-for-$MOUNT v2"  # bump when the rewriting below changes

if [[ -f $DEST/dist/.dicomvault-version && $(<"$DEST/dist/.dicomvault-version") == "$STAMP" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-ohif: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-ohif: fetching @ohif/app@$VERSION"
(cd "$tmp" && npm pack --silent "@ohif/app@$VERSION" >/dev/null)
tar -xzf "$tmp/ohif-app-$VERSION.tgz" -C "$tmp"
dist=$tmp/package/dist
[[ -f $dist/index.html ]] || { echo "install-ohif: the package has no dist/index.html" >&2; exit 1; }

# Absolute asset paths -> /viewer/: index.html, the web manifest, the stylesheets' fonts and
# webpack's runtime public path in every bundle (the app and its web workers).
sed -i -e "s#window.PUBLIC_URL=\"/\"#window.PUBLIC_URL=\"$MOUNT\"#" \
       -e "s# src=\"/# src=\"$MOUNT#g" -e "s# href=\"/# href=\"$MOUNT#g" "$dist/index.html"
sed -i "s#\"/assets/#\"${MOUNT}assets/#g" "$dist/manifest.json"
find "$dist" -maxdepth 1 -name '*.css' -exec sed -i "s#url(/#url($MOUNT#g" {} +
bundles=$(grep -l '__webpack_require__.p = "/";' "$dist"/*.js || true)
[[ -n $bundles ]] || { echo "install-ohif: webpack public path not found in the bundles" >&2; exit 1; }
sed -i "s#__webpack_require__.p = \"/\";#__webpack_require__.p = \"$MOUNT\";#" $bundles
rm -f "$dist/app-config.js"  # written by the gateway for this archive
echo "$STAMP" > "$dist/.dicomvault-version"

mkdir -p "$DEST"
rm -rf "$DEST/dist.old"
[[ -d $DEST/dist ]] && mv "$DEST/dist" "$DEST/dist.old"
mv "$dist" "$DEST/dist"
rm -rf "$DEST/dist.old"
echo "install-ohif: OHIF $VERSION in $DEST/dist"
