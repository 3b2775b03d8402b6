// Drives Debian's chromium (headless, through playwright-core; no browser is downloaded)
// against a voter's /ui on a running testnet: the page draws the tree, finalized blocks
// increase in the DOM, and after the primary proposer is killed the page shows the epoch
// change with its cause and the new epoch's timeout block. Saves a screenshot.
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
  } finally {
    await browser.close();
  }
}

main()
  .catch((e) => fail("browser run", e.message))
  .finally(() => process.exit(failed === 0 ? 0 : 1));
