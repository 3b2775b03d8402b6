// Drives Debian's chromium (headless, through playwright-core; no browser is downloaded)
// against a voter's /ui on a running testnet: the page draws the tree, finalized blocks
// increase in the DOM, and after the primary proposer is killed the page shows the epoch
// change with its cause and the new epoch's timeout block. Saves a screenshot. Then the
// same page, answered a hand-made view of a session change (which the testnet does not
// reach), must mark the stop block, the new session's branch and the K window, and show
// markup from JSON as text.
//
// Environment (set by tools/ui-browser-test.sh):
//   UI_URL      the voter's base URL, e.g. http://127.0.0.1:8102
//   PROPOSERS   pid@base-url of every proposer, comma separated
//   CHROMIUM    the chromium executable
//   SCREENSHOT  where to save the screenshot (PNG)
//
// Prints one line per check, `ui: ok <check>` or `ui: FAIL <check>: why`, and exits 1 if
// any check failed.
"use strict";

const { chromium } = require("playwright-core");

const UI_URL = process.env.UI_URL;
const PROPOSERS = (process.env.PROPOSERS || "").split(",").filter(Boolean).map((p) => {
  const [pid, url] = p.split("@");
  return { pid: Number(pid), url };
});
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.SCREENSHOT;

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

let failed = 0;

function ok(check) {
  console.log(`ui: ok ${check}`);
}

function fail(check, why) {
  failed += 1;
  console.log(`ui: FAIL ${check}: ${why}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `probe` (an async function returning a value or null) until it returns a value,
// or `secs` seconds have passed (then null).
async function until(secs, probe) {
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    await sleep(200);
  }
  return null;
}

// What the page shows, read from the DOM (not from /chain).
function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => (document.getElementById(id) || {}).textContent || "";
    const blocks = [...document.querySelectorAll("#tree g.block")].map((g) => ({
      sn: g.dataset.sn.split(",").map(Number),
      classes: [...g.classList],
    }));
    const changes = [...document.querySelectorAll("#epoch-changes li.epoch-change")].map((li) => ({
      cause: li.dataset.cause,
      epoch: li.dataset.epoch.split(",").map(Number),
      text: li.textContent,
    }));
    return {
      name: text("node-name"),
      epoch: text("local-epoch"),
      finalizedHeight: Number(text("finalized-height")),
      blocks,
      finalizedBlocks: blocks.filter((b) => b.classes.includes("finalized")).length,
      proposersUp: [...document.querySelectorAll("#peers tr.up")]
        .filter((tr) => tr.textContent.startsWith("proposer")).length,
      peersDown: document.querySelectorAll("#peers tr.down").length,
      changes,
      stale: document.getElementById("updated").classList.contains("stale"),
    };
  });
}

async function status(url) {
  try {
    const r = await fetch(url + "/status");
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

// A view of a session change, which the 2+4 testnet does not go through: the stop block
// of session 1 at (1,1,5), an epoch (1,2) that timed out on it, session 2 opening with
// (2,1,1) on (1,1,7), two proposals in the K window, and a peer whose name carries
// markup. The page comes from the node; only /chain is answered with this view.
function sessionChangeView() {
  const block = (sn, height, parent, marks) => Object.assign({
    sn, height, parent, hash: "0123abcd", txs: 0, notarized: true, finalized: false,
    freshest: false, timeout: false, stop: false, session_start: false, k_window: false,
  }, marks);
  const now = Date.now();
  return {
    id: "ab".repeat(20), name: "voter 2", role: "voter", epoch: [2, 1], k: 2, stop_offset: 5,
    producing: false,
    head: { sn: [2, 1, 2], height: 9 }, finalized: { sn: [1, 1, 5], height: 5 },
    root: { sn: [1, 1, 5], height: 5 },
    blocks: [
      block([1, 1, 4], 4, [1, 1, 3], { finalized: true, freshest: true }),
      block([1, 1, 5], 5, [1, 1, 4], { finalized: true, freshest: true, stop: true }),
      block([1, 1, 6], 6, [1, 1, 5], { freshest: true }),
      block([1, 1, 7], 7, [1, 1, 6], { freshest: true }),
      block([1, 2, 1], 6, [1, 1, 5], { timeout: true, notarized: false }),
      block([2, 1, 1], 8, [1, 1, 7], { freshest: true, timeout: true, session_start: true }),
      block([2, 1, 2], 9, [2, 1, 1], { freshest: true }),
      block([2, 1, 3], 10, [2, 1, 2], { notarized: false, k_window: true }),
      block([2, 1, 4], 11, [2, 1, 3], { notarized: false, k_window: true }),
    ],
    blocks_left_out: 0,
    peers: [{ id: "cd".repeat(20), name: "<img src=x onerror=alert(1)>", connected: true }],
    epoch_changes: [
      { epoch: [2, 1], from: [1, 2], cause: "new_session", at_unix_ms: now - 3000 },
      { epoch: [1, 1], cause: "start", at_unix_ms: now - 60000 },
    ],
    now_unix_ms: now,
  };
}

async function checkSessionChange(browser) {
  const page = await browser.newPage({ viewport: { width: 1480, height: 450 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.route(UI_URL + "/chain", (r) =>
    r.fulfill({ contentType: "application/json", body: JSON.stringify(sessionChangeView()) }));
  await page.goto(UI_URL + "/ui", { waitUntil: "load" });
  const s = await until(20, () => page.evaluate(() => {
    const q = (sel) => [...document.querySelectorAll(sel)];
    if (q("#tree g.block").length === 0) return null;
    return {
      stop: q("#tree g.block.stop").map((g) => g.dataset.sn),
      sessionStart: q("#tree g.block.session-start").map((g) => g.dataset.sn),
      sessionLines: q("#tree .session-line").length,
      timeouts: q("#tree g.block.timeout").map((g) => g.dataset.sn),
      kwin: q("#tree g.block.k-window").length,
      kwinFrame: q("#tree g.kwin").length,
      peerName: (q("#peers tr td")[0] || {}).textContent,
      injected: q("#peers img").length + q("script").length - 1,
      cause: (q("#epoch-changes li")[0] || { dataset: {} }).dataset.cause,
    };
  }));
  await page.close();
  const want = (cond, check, got) => (cond ? ok(check) : fail(check, JSON.stringify(got)));
  if (!s) return fail("page draws a session change", "no blocks drawn");
  want(s.stop.length === 1 && s.stop[0] === "1,1,5", "page marks the stop block", s);
  want(s.sessionStart.length === 1 && s.sessionStart[0] === "2,1,1" && s.sessionLines === 1,
    "page marks the first block of the new session", s);
  want(s.timeouts.includes("1,2,1") && s.timeouts.includes("2,1,1"),
    "page marks the timeout blocks of both branches", s);
  want(s.kwin === 2 && s.kwinFrame === 1, "page frames the K window", s);
  want(s.cause === "new_session", "page shows the new-session epoch change", s);
  want(s.peerName === "<img src=x onerror=alert(1)>" && s.injected === 0 && errors.length === 0,
    "page shows markup from JSON as text", { ...s, errors });
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1480, height: 450 } });
    page.on("pageerror", (e) => errors.push("page error: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push("console: " + m.text());
    });
    await page.goto(UI_URL + "/ui", { waitUntil: "load" });

    const drawn = await until(30, async () => {
      const s = await readPage(page);
      return s.blocks.length > 0 && s.epoch !== "" && s.name !== "" ? s : null;
    });
    if (!drawn) return fail("page draws the tree", "no blocks in the DOM after 30 s");
    ok(`page draws the tree (${drawn.name}, ${drawn.blocks.length} blocks, L = ${drawn.epoch})`);

    const h0 = drawn.finalizedHeight;
    const grown = await until(30, async () => {
      const s = await readPage(page);
      return s.finalizedHeight >= h0 + 3 && s.finalizedBlocks > 1 ? s : null;
    });
    if (grown) {
      ok(`finalized blocks increase on the page (height ${h0} -> ${grown.finalizedHeight}, ${grown.finalizedBlocks} finalized boxes)`);
    } else {
      fail("finalized blocks increase on the page", `height stayed at ${h0}`);
    }

    // A voter connects to the proposers only (they relay between voters).
    const peers = await until(20, async () => {
      const s = await readPage(page);
      return s.proposersUp === PROPOSERS.length ? s : null;
    });
    if (peers) ok(`page lists the ${PROPOSERS.length} proposers connected`);
    else fail("page lists the proposers connected", `expected ${PROPOSERS.length} up`);

    // The primary proposer of the current epoch is the one producing.
    let primary = null;
    for (const p of PROPOSERS) {
      const st = await status(p.url);
      if (st && st.producing) primary = p;
    }
    if (!primary) return fail("kill the primary proposer", "no proposer is producing");
    const before = await readPage(page);
    const e = Number(before.epoch.replace(/[()]/g, "").split(",")[1]);
    process.kill(primary.pid, "SIGKILL");
    ok(`killed the primary proposer (pid ${primary.pid}) in epoch ${before.epoch}`);

    const moved = await until(40, async () => {
      const s = await readPage(page);
      const c = s.changes[0];
      return c && c.epoch[1] > e && c.cause === "clock_notarization_received" &&
        s.epoch === `(${c.epoch.join(",")})` ? s : null;
    });
    if (moved) {
      ok(`page shows the epoch change: ${moved.changes[0].text.trim()}`);
    } else {
      const s = await readPage(page);
      fail("page shows the epoch change", `L = ${s.epoch}, last change ${JSON.stringify(s.changes[0])}`);
    }

    const timeout = await until(30, async () => {
      const s = await readPage(page);
      const t = s.blocks.find((b) => b.classes.includes("timeout") && b.sn[1] > e && b.sn[2] === 1);
      return t ? { s, t } : null;
    });
    if (timeout) {
      ok(`page shows the timeout block (${timeout.t.sn.join(",")})`);
      if (SCREENSHOT) {
        // A moment for its notarization to arrive, so the picture shows it settled.
        await sleep(700);
        await page.screenshot({ path: SCREENSHOT });
        ok(`screenshot saved to ${SCREENSHOT}`);
      }
    } else {
      fail("page shows the timeout block", "no (e,1) timeout block of the new epoch in the DOM");
    }

    const resumed = await until(30, async () => {
      const s = await readPage(page);
      return s.finalizedHeight > before.finalizedHeight + 2 && s.peersDown >= 1 ? s : null;
    });
    if (resumed) {
      ok(`page shows finality resuming (height ${resumed.finalizedHeight}) and the killed proposer disconnected`);
    } else {
      fail("page shows finality resuming and the killed proposer disconnected", "not within 30 s");
    }

    if (errors.length === 0) ok("no script errors or policy violations in the page");
    else fail("no script errors or policy violations in the page", errors.join("; "));

    await checkSessionChange(browser);
  } finally {
    await browser.close();
  }
}

main()
  .catch((e) => fail("browser run", e.message))
  .finally(() => process.exit(failed === 0 ? 0 : 1));
