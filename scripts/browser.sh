#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the web application's browser
# tests (examples/tests/web_browser.rs).
#
#   scripts/browser.sh install   apt-get install chromium chromium-driver
#
# The tests start chromedriver themselves (headless Chromium, on
# 127.0.0.1, each run its own port) and stop it when they end. Without
# chromedriver on the PATH they say they were skipped, unless
# POP3_REQUIRE_BROWSER=1 (CI), which makes that a failure.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

install() {
    if command -v chromedriver >/dev/null && command -v chromium >/dev/null; then
        return 0
    fi
    apt_install chromium chromium-driver
}

case "${1:-}" in
    install) install; echo "browser: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)" ;;
    *) echo "usage: $0 install" >&2; exit 2 ;;
esac
