// The live chain page: polls GET /chain and draws the block tree as the slides draw
// PaLa. Boxes are labelled (session, epoch, s) and placed left to right by height, one
// row per epoch (the blocks of one epoch form one branch, D-4); finalized, notarized and
// unnotarized blocks differ by fill and border, the freshest notarized chain is blue,
// timeout blocks carry a T, stop blocks a STOP, the first block of a session a dashed
// line, and the K window frames the local epoch's unnotarized proposals.
//
// Everything from JSON is set with textContent or setAttribute, never parsed as markup.
"use strict";

const POLL_MS = 500;
const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 66, BOX_H = 36, COL = 86, ROW = 56;
const LEFT = 132, TOP = 46, BOTTOM = 22;

const $ = (id) => document.getElementById(id);
const sn = (v) => "(" + v.join(",") + ")";
const epochKey = (v) => v[0] + "," + v[1];

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function html(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setText(id, text) {
  const e = $(id);
  if (e.textContent !== String(text)) e.textContent = String(text);
}

// Newest heights that fit the drawing's width; older ones are cut at the left.
function visibleBlocks(blocks, width) {
  const cols = Math.max(4, Math.floor((width - LEFT - 8) / COL));
  const maxH = blocks.reduce((m, b) => Math.max(m, b.height), 0);
  const minH = Math.max(0, maxH - cols + 1);
  return { minH, shown: blocks.filter((b) => b.height >= minH) };
}

function drawTree(view) {
  const svg = $("tree");
  const width = svg.clientWidth || 900;
  const { minH, shown } = visibleBlocks(view.blocks, width);
  const rows = [...new Set(shown.map((b) => epochKey(b.sn)))]
    .map((k) => k.split(",").map(Number))
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const rowOf = new Map(rows.map((e, i) => [epochKey(e), i]));
  const x = (h) => LEFT + (h - minH) * COL;
  const y = (b) => TOP + rowOf.get(epochKey(b.sn)) * ROW;
  const bySn = new Map(shown.map((b) => [sn(b.sn), b]));
  const height = TOP + Math.max(1, rows.length) * ROW + BOTTOM;

  const frag = document.createDocumentFragment();
  rows.forEach((e, i) => {
    const ry = TOP + i * ROW + BOX_H / 2;
    frag.append(el("line", { class: "row-line", x1: LEFT - 6, x2: width, y1: ry, y2: ry }));
    const local = e[0] === view.epoch[0] && e[1] === view.epoch[1];
    frag.append(el("text", { class: "row-label", x: 6, y: ry + 4 },
      "epoch " + sn(e) + (local ? " ◀ L" : "")));
  });
  const heights = [...new Set(shown.map((b) => b.height))];
  for (const h of heights) {
    frag.append(el("text", { class: "height-label", x: x(h) + BOX_W / 2, y: TOP - 22, "text-anchor": "middle" }, h));
  }
  // The K window: a frame around the unnotarized proposals of the local epoch.
  const kwin = shown.filter((b) => b.k_window);
  if (kwin.length > 0) {
    const x0 = Math.min(...kwin.map((b) => x(b.height))) - 6;
    const x1 = Math.max(...kwin.map((b) => x(b.height))) + BOX_W + 6;
    const y0 = Math.min(...kwin.map(y)) - 6;
    const y1 = Math.max(...kwin.map(y)) + BOX_H + 6;
    const g = el("g", { class: "kwin" });
    g.append(el("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 6 }));
    // Anchored at the frame's right edge, which always lies inside the drawing.
    g.append(el("text", { x: x1, y: y1 + 13, "text-anchor": "end" },
      "K window: " + kwin.length + " of K=" + view.k));
    frag.append(g);
  }
  // Edges first, so that the boxes cover their ends.
  for (const b of shown) {
    const p = bySn.get(sn(b.parent));
    const cy = y(b) + BOX_H / 2;
    let d;
    if (p) {
      const px = x(p.height) + BOX_W, py = y(p) + BOX_H / 2;
      const mx = (px + x(b.height)) / 2;
      d = `M${px},${py} C${mx},${py} ${mx},${cy} ${x(b.height)},${cy}`;
    } else if (b.height > 0) {
      d = `M${x(b.height) - 12},${cy} L${x(b.height)},${cy}`;
    } else {
      continue;
    }
    const fresh = b.freshest && (!p || p.freshest);
    frag.append(el("path", { class: "edge" + (fresh ? " freshest" : ""), d }));
  }
  for (const b of shown) {
    if (!b.session_start) continue;
    const lx = x(b.height) - (COL - BOX_W) / 2;
    frag.append(el("line", { class: "session-line", x1: lx, x2: lx, y1: TOP - 14, y2: height - 4 }));
    frag.append(el("text", { class: "session-label", x: lx + 4, y: TOP - 6 }, "session " + b.sn[0]));
  }
  for (const b of shown) frag.append(drawBlock(b, x(b.height), y(b)));
  if (view.blocks_left_out > 0) {
    frag.append(el("text", { class: "left-out", x: 6, y: height - 6 },
      view.blocks_left_out + " older blocks of the tree not shown"));
  }
  svg.setAttribute("height", height);
  svg.replaceChildren(frag);
}

function drawBlock(b, bx, by) {
  const state = b.finalized ? "finalized" : b.notarized ? "notarized" : "unnotarized";
  const classes = ["block", state];
  for (const k of ["freshest", "timeout", "stop", "session_start", "k_window"]) {
    if (b[k]) classes.push(k.replace("_", "-"));
  }
  const g = el("g", {
    class: classes.join(" "),
    "data-sn": b.sn.join(","),
    "data-height": b.height,
  });
  g.append(el("title", {}, sn(b.sn) + " height " + b.height + " hash " + b.hash +
    " · " + state + (b.txs ? " · " + b.txs + " txs" : "")));
  g.append(el("rect", { class: "box", x: bx, y: by, width: BOX_W, height: BOX_H, rx: 4 }));
  g.append(el("text", { class: "label", x: bx + BOX_W / 2, y: by + 15, "text-anchor": "middle" }, sn(b.sn)));
  g.append(el("text", { class: "hash", x: bx + BOX_W / 2, y: by + 29, "text-anchor": "middle" }, b.hash.slice(0, 6)));
  if (b.timeout && b.sn[0] > 0) g.append(mark("timeout", "T", bx - 5, by - 7, 14));
  if (b.stop) g.append(mark("stop", "STOP", bx + BOX_W - 28, by - 8, 32));
  return g;
}

function mark(kind, text, mx, my, w) {
  const g = el("g", { class: "mark " + kind });
  g.append(el("rect", { x: mx, y: my, width: w, height: 13, rx: 3 }));
  g.append(el("text", { x: mx + w / 2, y: my + 10, "text-anchor": "middle" }, text));
  return g;
}

function drawFacts(view) {
  setText("node-name", view.name + " · " + view.id.slice(0, 8));
  setText("role", view.role);
  setText("local-epoch", sn(view.epoch));
  setText("k", view.k);
  setText("head", sn(view.head.sn) + " at height " + view.head.height);
  setText("finalized-height", view.finalized.height);
  setText("finalized", sn(view.finalized.sn));
  setText("producing", view.producing ? "yes (primary of L)" : "no");
}

function drawPeers(view) {
  const rows = view.peers.map((p) => {
    const tr = html("tr", p.connected ? "up" : "down");
    tr.dataset.peer = p.id;
    const name = html("td");
    name.append(html("span", "dot"), document.createTextNode(p.name));
    name.title = p.id;
    tr.append(name);
    const s = p.status;
    const cells = s
      ? [sn(s.epoch), sn(s.head), s.head_height, sn(s.finalized)]
      : [p.connected ? "no status yet" : "disconnected", "", "", ""];
    for (const c of cells) tr.append(html("td", "", c));
    return tr;
  });
  $("peers").replaceChildren(...rows);
}

const CAUSES = {
  start: "node started (recovered or new)",
  clock_notarization_formed: "voters timed out; clock notarization formed here",
  clock_notarization_received: "voters timed out; clock notarization received",
  new_session: "stop block final: new session",
};

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
}

function drawChanges(view) {
  const items = view.epoch_changes.map((c) => {
    const li = html("li", "epoch-change");
    li.dataset.cause = c.cause;
    li.dataset.epoch = c.epoch.join(",");
    li.append(html("strong", "", sn(c.epoch)));
    if (c.from) li.append(document.createTextNode(" from " + sn(c.from)));
    let cause = " · " + (CAUSES[c.cause] || c.cause);
    if (c.formed_by) cause += " (" + c.formed_by + ", " + c.signers + " voters)";
    li.append(html("span", "cause", cause));
    li.append(html("span", "ago", " · " + ago(view.now_unix_ms - c.at_unix_ms)));
    return li;
  });
  $("epoch-changes").replaceChildren(...items);
}

let failures = 0;

async function poll() {
  try {
    const r = await fetch("/chain", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const view = await r.json();
    drawFacts(view);
    drawTree(view);
    drawPeers(view);
    drawChanges(view);
    failures = 0;
    document.querySelector(".tree").classList.remove("stale");
    const u = $("updated");
    u.classList.remove("stale");
    u.textContent = "updated " + new Date(view.now_unix_ms).toLocaleTimeString();
  } catch (e) {
    failures += 1;
    if (failures >= 2) {
      document.querySelector(".tree").classList.add("stale");
      const u = $("updated");
      u.classList.add("stale");
      u.textContent = "no answer from the node (" + e.message + ")";
    }
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
