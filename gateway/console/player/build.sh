#!/usr/bin/env bash
# Rebuilds the console's embedded asciinema-player from npm, at the version
# package-lock.json pins: `make console-player`. Nothing is fetched at run
# time; the node serves the copies in ../assets.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
cp node_modules/asciinema-player/dist/bundle/asciinema-player.min.js ../assets/
cp node_modules/asciinema-player/dist/bundle/asciinema-player.css ../assets/
rm -rf node_modules
