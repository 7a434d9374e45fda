// Mirror Monitor: polls GET /mirror every second and redraws. No libraries, no network
// beyond the member that served the page. Text from the server is only ever set with
// textContent, never parsed as HTML.
//
// Logging in (a member with auth.require answers 401): the page shows its form and posts
// the user and password as JSON to "login"; the member answers with an HttpOnly cookie that
// this script cannot read. Nothing is kept here: no credentials in URLs, storage or variables
// beyond the one request.
"use strict";

const POLL_MS = 1000;
// Marks the page's own requests: a 401 then asks for this form, not the browser's dialog.
const PAGE = { "X-Litemirror-Page": "1" };
const COLORS = ["#1d6fd8", "#d9480f", "#7a3fc2", "#0b8a6b", "#c2255c", "#5c6f00"];
const SVG = "http://www.w3.org/2000/svg";
let lastOk = 0;
let timer = null;
let loggingIn = false;

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const kid of kids) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : String(kid));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmt = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en"));
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString("en-GB", { hour12: false });

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

function lagOf(row) {
  if (row.role === "primary") return null;
  if (row.lag_seconds !== null && row.lag_seconds !== undefined) return row.lag_seconds * 1000;
  return row.lag_ms;
}

function renderBanner(v) {
  const banner = document.getElementById("banner");
  const down = v.members.filter((r) => r.role === "down").map((r) => r.member);
  let level = "ok";
  let head;
  if (!v.primary) {
    level = "bad";
    head = "No primary — the mirror does not accept writes";
  } else if (!v.writable) {
    level = "bad";
    const p = v.members.find((r) => r.member === v.primary);
    head = `Primary ${v.primary} is ${p ? p.state : "?"} — writes are stopped`;
  } else {
    head = `Primary ${v.primary} accepts writes · epoch ${v.epoch}`;
  }
  const fo = v.failover;
  let mode;
  if (!fo) {
    mode = "No arbiter configured: automatic failover is off.";
  } else if (v.failover_mode) {
    // The member's verdict (failover/readiness.py, as `litemirror status`): every
    // member's own arbiter session and the arbiter's contacts, not the primary alone.
    mode = v.failover_mode.sentence;
    if (!v.failover_mode.ready && level === "ok") level = "warn";
  } else if (fo.backup_active) {
    mode = `Automatic failover ready: the backup is active and the arbiter ${fo.arbiter_up ? "in contact" : "LOST"}.`;
    if (!fo.arbiter_up && level === "ok") level = "warn";
  } else {
    mode = `Automatic failover NOT possible: no active backup (failover state: ${fo.state}).`;
    if (level === "ok") level = "warn";
  }
  if (down.length) {
    mode += `  Down: ${down.join(", ")}.`;
    if (level === "ok") level = "warn";
  }
  banner.dataset.level = level;
  document.getElementById("headline").textContent = head;
  document.getElementById("failover-mode").textContent = mode;
  document.getElementById("decision").textContent = v.decision ? `“${v.decision}”` : "";
}

function stateClass(row) {
  const s = String(row.state || "");
  if (row.role === "down" || /fenced|trouble|unreachable|disconnected/.test(s)) return "state-bad";
  if (/seeding|catching|connecting|waiting|rolling|taking/.test(s)) return "state-warn";
  return null;
}

function renderMembers(v) {
  const body = document.querySelector("#members tbody");
  const rows = v.members.map((r) => {
    const lag = lagOf(r);
    const lagClass = lag === null ? null : lag > 5000 ? "lag-bad" : lag > 1000 ? "lag-warn" : null;
    const lagText = r.role === "primary" || r.role === "down" ? "—" :
      `${fmt(r.lag_records)} rec · ${fmtMs(lag)}`;
    return el("tr", { "data-member": r.member, "data-role": r.role, class: r.role === "down" ? "down" : null },
      el("td", {}, el("span", { class: "member-name" }, r.member),
        r.member === v.via ? el("span", { class: "me" }, "this page") : null),
      el("td", {}, r.kind),
      el("td", { class: "role" }, el("span", { class: `pill ${r.role}` }, r.role)),
      el("td", { class: stateClass(r) }, r.state),
      el("td", { class: "num" }, fmt(r.epoch)),
      el("td", { class: "num" }, fmt(r.lsn)),
      el("td", { class: "num" }, fmt(r.applied_lsn)),
      el("td", { class: `num ${lagClass || ""}` }, lagText),
      el("td", { class: "num" }, r.last_contact_s === null || r.last_contact_s === undefined
        ? "—" : fmtMs(r.last_contact_s * 1000)),
      el("td", {}, r.address));
  });
  body.replaceChildren(...rows);
  const notes = v.members.filter((r) => r.error || r.reason).map((r) =>
    el("div", { class: r.error ? "err" : null }, el("b", {}, `${r.member}: `), r.error || r.reason));
  document.getElementById("member-notes").replaceChildren(...notes);
}

function renderArbiter(v) {
  const box = document.getElementById("arbiter");
  const a = v.arbiter;
  if (!a) {
    box.replaceChildren(el("div", { class: "muted" }, "No arbiter configured."));
    return;
  }
  if (a.state === "down") {
    box.replaceChildren(
      el("div", { class: "line state-bad" }, `${a.address}: unreachable`),
      el("div", { class: "muted" }, a.error || ""));
    return;
  }
  const rec = a.record || {};
  box.replaceChildren(
    el("div", { class: "line" }, el("b", {}, a.address), ` · epoch ${fmt(rec.epoch)} held by `,
      el("b", {}, rec.holder || "nobody")),
    el("div", { class: "muted" }, `in contact with ${(a.in_contact || []).join(", ") || "nobody"}` +
      ` · backup ${rec.backup_active ? "active" : "inactive"}`),
    el("div", { class: "muted" }, a.state || ""));
}

function renderDatabases(v) {
  const names = v.members.map((r) => r.member);
  const head = document.querySelector("#databases thead");
  head.replaceChildren(el("tr", {}, el("th", {}, "Database"), ...names.map((n) => el("th", {}, n))));
  const mark = { present: "✓ mirrored", missing: "✗ missing", importing: "importing…", unknown: "?" };
  const rows = v.databases.map((d) =>
    el("tr", { "data-database": d.name }, el("td", {}, el("b", {}, d.name)),
      ...names.map((n) => {
        const s = d.members[n] || "unknown";
        return el("td", { class: s }, mark[s] || s);
      })));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: names.length + 1 }, "No databases.")));
  document.querySelector("#databases tbody").replaceChildren(...rows);
}

function renderChart(v) {
  const hist = v.lag_history || { series: {} };
  const W = 640, H = 190, L = 56, R = 10, T = 10, B = 24;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "replication lag chart" });
  const names = Object.keys(hist.series).sort();
  const now = v.generated_at;
  // The window grows with the history, from one minute to five.
  let oldest = now;
  for (const n of names) if (hist.series[n].length) oldest = Math.min(oldest, hist.series[n][0][0]);
  const span = Math.min(300, Math.max(60, Math.ceil((now - oldest) / 60) * 60));
  document.getElementById("lag-seen-by").textContent =
    `as measured by ${hist.seen_by}, last ${span / 60} min`;
  let max = 10;
  for (const n of names) for (const p of hist.series[n]) if (now - p[0] <= span) max = Math.max(max, p[1]);
  const step = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000]
    .find((s) => s * 4 >= max) || Math.ceil(max / 4);
  const top = step * 4;
  const x = (ts) => L + (W - L - R) * (1 - (now - ts) / span);
  const y = (ms) => T + (H - T - B) * (1 - Math.min(ms, top) / top);
  for (let i = 0; i <= 4; i++) {
    const val = step * i;
    root.append(svg("line", { x1: L, x2: W - R, y1: y(val), y2: y(val), class: "axis" }));
    root.append(svg("text", { x: L - 6, y: y(val) + 4, "text-anchor": "end" }, fmtMs(val)));
  }
  for (let i = 5; i >= 0; i--) {
    const ago = (span * i) / 5;
    const label = ago === 0 ? "now" : ago % 60 === 0 ? `-${ago / 60}m` : `-${ago}s`;
    root.append(svg("text", { x: x(now - ago), y: H - 6, "text-anchor": i === 5 ? "start" : i === 0 ? "end" : "middle" }, label));
  }
  const legend = [];
  names.forEach((n, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = hist.series[n].filter((p) => now - p[0] <= span);
    if (pts.length > 1) {
      const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2,
        "vector-effect": "non-scaling-stroke" }));
    }
    const last = pts[pts.length - 1];
    legend.push(el("span", { "data-series": n }, el("i", { style: `background:${color}` }),
      `${n} ${last ? fmtMs(last[1]) : ""}`));
  });
  if (!names.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
      "no replicas connected to this member"));
  }
  document.getElementById("lag-chart").replaceChildren(root);
  document.getElementById("lag-legend").replaceChildren(...legend);
}

function renderEvents(v) {
  const items = v.events.slice().reverse().slice(0, 60).map((e) =>
    el("li", { "data-kind": e.kind },
      el("span", { class: "t" }, clock(e.ts)),
      el("span", { class: "who" }, e.member),
      el("span", { class: `sev ${e.severity}` }, e.severity),
      el("span", { class: "kind" }, e.kind),
      el("span", { class: "msg" }, e.message)));
  if (!items.length) items.push(el("li", {}, el("span", { class: "msg" }, "No events yet.")));
  document.getElementById("events").replaceChildren(...items);
}

function setLive(ok, text) {
  const live = document.getElementById("live");
  live.dataset.state = ok ? "live" : "stale";
  document.getElementById("live-text").textContent = text;
}

async function problem(resp) {
  try {
    const body = await resp.json();
    return body.message || `HTTP ${resp.status}`;
  } catch (err) {
    return `HTTP ${resp.status}`;
  }
}

function showLogin(message) {
  loggingIn = true;
  clearTimeout(timer);
  document.getElementById("dashboard").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  setLive(false, "log in to see the mirror");
  document.getElementById("login-user").focus();
}

function showDashboard(viewer) {
  loggingIn = false;
  document.getElementById("login").hidden = true;
  document.getElementById("dashboard").hidden = false;
  const who = document.getElementById("who");
  const named = viewer && viewer.user;
  who.hidden = !named;
  if (named) document.getElementById("who-text").textContent = `${viewer.user} (${viewer.role})`;
}

async function logIn(event) {
  event.preventDefault();
  const user = document.getElementById("login-user");
  const password = document.getElementById("login-password");
  const button = document.getElementById("login-submit");
  button.disabled = true;
  document.getElementById("login-error").textContent = "checking…";
  try {
    const resp = await fetch("login", {
      method: "POST",
      cache: "no-store",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...PAGE },
      body: JSON.stringify({ user: user.value, password: password.value }),
    });
    password.value = "";
    if (!resp.ok) {
      document.getElementById("login-error").textContent = await problem(resp);
      return;
    }
    document.getElementById("login-error").textContent = "";
    loggingIn = false;
    schedule(0);
  } catch (err) {
    document.getElementById("login-error").textContent = `cannot reach this member (${err.message || err})`;
  } finally {
    button.disabled = false;
  }
}

async function logOut() {
  try {
    await fetch("logout", { method: "POST", credentials: "same-origin", headers: PAGE });
  } finally {
    showLogin("Logged out.");
  }
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

async function tick() {
  const ctl = new AbortController();
  const abort = setTimeout(() => ctl.abort(), 4000);
  try {
    const resp = await fetch("mirror", {
      cache: "no-store", signal: ctl.signal, credentials: "same-origin", headers: PAGE,
    });
    if (resp.status === 401) {
      showLogin(lastOk ? "Your login has ended; log in again." : "");
      return;
    }
    if (!resp.ok) throw new Error(await problem(resp));
    const v = await resp.json();
    showDashboard(v.viewer);
    document.getElementById("mirror-name").textContent = `mirror ${v.mirror}`;
    document.title = `${v.primary ? "✓" : "✗"} ${v.mirror} · Mirror Monitor`;
    for (const render of [renderBanner, renderMembers, renderArbiter, renderDatabases, renderChart, renderEvents]) {
      try { render(v); } catch (err) { console.error(render.name, err); }
    }
    lastOk = Date.now();
    setLive(true, `live via ${v.via} · ${clock(v.generated_at)}`);
  } catch (err) {
    const ago = lastOk ? ` — last update ${Math.round((Date.now() - lastOk) / 1000)} s ago` : "";
    setLive(false, `cannot reach this member (${err.message || err})${ago}`);
  } finally {
    clearTimeout(abort);
    if (!loggingIn) schedule(POLL_MS);
  }
}

document.getElementById("login-form").addEventListener("submit", logIn);
document.getElementById("logout").addEventListener("click", logOut);
tick();
