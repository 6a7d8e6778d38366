#!/usr/bin/env bash
# The bell page's browser test needs a headless Chromium: Debian's `chromium` package,
# installed here when missing (as root, or through sudo). Exits non-zero if none is found.
set -u

have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }

if ! have_chromium && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test (once)..."
  as_root=""
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && as_root="sudo"; }
  install() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
  # A fresh machine may have no package lists yet: fetch them once and try again.
  install || { $as_root apt-get update -q && install; }
fi
have_chromium || { echo "no chromium: install Debian's chromium package (apt-get install chromium)" >&2; exit 1; }
