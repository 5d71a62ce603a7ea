#!/usr/bin/env bash
# The README's first command, `cargo run --example web -- --demo`, as a
# newcomer runs it: it must print its URL and demo users, serve the
# sign-in page, let a demo user in, and show the mailbox list. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
jar=$(mktemp)
cargo build --quiet --example web
target/debug/examples/web --demo --listen 127.0.0.1:0 > "$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out" "$jar"' EXIT
for _ in $(seq 100); do grep -q '^smtp:' "$out" && break; sleep 0.2; done
url=$(sed -n 's/^url: //p' "$out")
read -r login password < <(sed -n 's/^user: //p' "$out" | head -1)
[ -n "$url" ] && [ -n "$login" ] || { echo "web-smoke: no url or user line:" >&2; cat "$out" >&2; exit 1; }
curl -fsS "${url}login" | grep -q 'name="login"'
curl -fsS -c "$jar" -b "$jar" -o /dev/null -d "login=$login&password=$password" "${url}login"
curl -fsS -b "$jar" "${url}settings/email/pop3" | grep -q 'id="new-account"'
echo "web-smoke: $url serves the sign-in page and lets $login in"
