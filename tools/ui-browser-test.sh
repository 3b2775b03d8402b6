#!/usr/bin/env bash
# The live chain page in a real browser: starts a 2-proposer, 4-voter `--fast` testnet on
# loopback (tools/lib/pair.sh), opens a voter's /ui in Debian's headless chromium driven
# by playwright-core (tools/ui/browser-test.js), checks from the DOM that finalized
# blocks increase, kills the primary proposer and checks that the page shows the epoch
# change with its cause and the new epoch's timeout block; saves a screenshot. Then the
# same page, given a hand-made view of a session change through /chain (the testnet does
# not reconfigure), must mark the stop block, the new session's branch and the K window,
# and show markup from JSON as text.
#
#   tools/ui-browser-test.sh
#
# Prints `ui: ok <check>` / `ui: FAIL <check>` lines (counted by .ci/run) and exits
# non-zero if a check failed. Installs what is missing, idempotently: Debian's chromium,
# nodejs and npm with apt-get, playwright-core (pinned by tools/ui/package-lock.json)
# with npm into tools/ui/node_modules. No browser is ever downloaded: playwright-core
# drives /usr/bin/chromium. Environment: PALA (the binary; default target/debug/pala,
# built if missing), P2P_PORT / HTTP_PORT (default 17600 / 18600), UI_SCREENSHOT
# (default docs/ui.png). Everything it starts is stopped on exit; the testnet directory
# is kept when a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "ui: FAIL install ${missing[*]}"
    exit 1
  fi
fi
want=$(node -p 'require("./tools/ui/package.json").dependencies["playwright-core"]')
have=$(node -p 'try { require("./tools/ui/node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
  if ! (cd tools/ui && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
    --loglevel=error >/dev/null); then
    echo "ui: FAIL install playwright-core $want"
    exit 1
  fi
fi

if [ -z "${PALA:-}" ] && [ ! -x target/release/pala ]; then
  cargo build -q --bin pala
fi
# shellcheck source=tools/lib/pair.sh
source tools/lib/pair.sh
# An idle block every 400 ms (the keep-alive; --fast's is 500 ms): the page moves at a
# steady, readable pace and the timeout block stays in view long enough to be seen.
export PALA_BLOCK_MAX_WAIT_MS=400
testnet_start ui 17600 18600 2 4
browser=""
stop_all() {
  local rc=$?
  [ -z "$browser" ] || kill -- "-$browser" 2>/dev/null || true
  pair_stop
  if [ "$rc" -eq 0 ]; then rm -rf "$DIR"; else echo "(testnet logs kept in $DIR)"; fi
}
trap stop_all EXIT

voter=http://127.0.0.1:$((HTTP + 2))
# Node's fetch rather than curl, which a fresh Debian may not have.
if ! node -e '
  const until = Date.now() + 60000;
  (async () => {
    while (Date.now() < until) {
      try {
        const s = await (await fetch(process.argv[1] + "/status")).json();
        if (s.finalized_height >= 1) process.exit(0);
      } catch {}
      await new Promise((r) => setTimeout(r, 200));
    }
    process.exit(1);
  })();' "$voter"; then
  echo "ui: FAIL the testnet finalizes a block within 60 s"
  exit 1
fi
echo "ui: ok the testnet finalizes blocks"

proposers="${PIDS[0]}@http://127.0.0.1:$HTTP,${PIDS[1]}@http://127.0.0.1:$((HTTP + 1))"
shot=${UI_SCREENSHOT:-$root/docs/ui.png}
# Its own process group, so that the browser it starts goes with it whatever happens.
UI_URL=$voter PROPOSERS=$proposers CHROMIUM=$(command -v chromium) SCREENSHOT=$shot \
  setsid node tools/ui/browser-test.js &
browser=$!
# (Quietly: bash would report the proposer the test killed when it reaps it.)
{ wait "$browser"; } 2>/dev/null
