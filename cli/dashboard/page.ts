/**
 * The dashboard page: one HTML document with its style and script inline, no
 * framework and nothing fetched from elsewhere. Everything from the spool
 * (file names, task names, owners, hosts, errors) reaches the document only as
 * text nodes (textContent), never as markup; the Content-Security-Policy
 * allows this script and style alone (by hash), and requests to this server.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7385; --bg: #f6f7f9; --card: #fff; --line: #dde1e8; --accent: #2f6fdf; --bad: #c23b30; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7ee; --muted: #98a0b3; --bg: #14171d; --card: #1d2129; --line: #30353f; --accent: #6d9cff; --bad: #ff7a6e; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 18px; margin: 0; }
#mode, #updated { color: var(--muted); }
#problem { color: var(--bad); }
main { padding: 12px 20px; display: grid; gap: 20px; }
section.spool { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
section.spool h2 { font-size: 15px; margin: 0 0 10px; font-family: ui-monospace, monospace; word-break: break-all; }
h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.counts { display: flex; flex-wrap: wrap; gap: 10px; }
.count { min-width: 92px; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; }
.count .n { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.count .label { color: var(--muted); }
.count.bad .n { color: var(--bad); }
svg.chart { width: 100%; height: 100px; display: block; }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 1.5; }
svg.chart .area { fill: var(--accent); fill-opacity: .12; stroke: none; }
svg.chart .axis { stroke: var(--line); }
.axis-labels { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.mono { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
td.error { color: var(--bad); white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; max-width: 60ch; }
.tabs { display: flex; gap: 6px; flex-wrap: wrap; margin-bottom: 6px; }
button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); cursor: pointer; }
button[aria-pressed=true] { border-color: var(--accent); color: var(--accent); }
button.danger { color: var(--bad); }
button:disabled { opacity: .5; cursor: default; }
.pager { display: flex; gap: 10px; align-items: center; margin-top: 6px; color: var(--muted); }
.empty { color: var(--muted); padding: 4px 0; }
.stale { color: var(--muted); }
`;

/** The page's script, as a browser runs it (plain ES2020, no build step). */
const SCRIPT = `
'use strict';
const STATES = ['due', 'scheduled', 'active', 'dead', 'quarantined', 'invalid'];
// A token in the URL fragment (never sent to a server) enables the buttons; kept for this tab only, and taken out of the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has('token')) {
  sessionStorage.setItem('spool-dashboard-token', fragment.get('token'));
  history.replaceState(null, '', location.pathname + location.search);
}
const token = sessionStorage.getItem('spool-dashboard-token');
let writable = false;
const views = new Map(); // spool index -> { state, cursor, history of cursors, elements }

function el(tag, attrs, ...children) {
  const e = tag.startsWith('svg:') ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
}
const when = (ms) => new Date(ms).toLocaleString();
const rateText = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function setProblem(text) {
  document.getElementById('problem').textContent = text || '';
}

function viewFor(spool) {
  let v = views.get(spool.index);
  if (v) return v;
  const section = el('section', { class: 'spool', 'data-index': String(spool.index) });
  const counts = el('div', { class: 'counts' });
  const chart = el('svg:svg', { class: 'chart', viewBox: '0 0 600 120', preserveAspectRatio: 'none', role: 'img', 'aria-label': 'throughput' });
  const rate = el('div', { class: 'rate' });
  const axis = el('div', { class: 'axis-labels' });
  const daemons = el('div', { class: 'daemons' });
  const running = el('div', { class: 'running' });
  const tabs = el('div', { class: 'tabs' });
  const list = el('div', { class: 'list' });
  const pager = el('div', { class: 'pager' });
  section.append(el('h2', { text: spool.dir }), counts, el('h3', { text: 'Throughput (tasks/s)' }), chart, axis, rate,
    el('h3', { text: 'Daemons' }), daemons, el('h3', { text: 'Running' }), running, el('h3', { text: 'Tasks' }), tabs, list, pager);
  document.getElementById('spools').append(section);
  v = { index: spool.index, state: 'dead', cursor: null, previous: [], counts, chart, axis, rate, daemons, running, tabs, list, pager };
  for (const s of STATES) {
    tabs.append(el('button', { type: 'button', 'data-state': s, 'aria-pressed': String(s === v.state), text: s,
      onclick: () => { v.state = s; v.cursor = null; v.previous = []; for (const b of tabs.children) b.setAttribute('aria-pressed', String(b.dataset.state === s)); loadTasks(v); } }));
  }
  views.set(spool.index, v);
  loadTasks(v);
  return v;
}

function renderCounts(v, counts) {
  v.counts.replaceChildren(...STATES.map((s) =>
    el('div', { class: counts[s] > 0 && (s === 'dead' || s === 'quarantined' || s === 'invalid') ? 'count bad' : 'count', 'data-state': s }, el('span', { class: 'n', text: String(counts[s]) }), el('span', { class: 'label', text: s }))));
}

function renderChart(v, history, rate) {
  const W = 600, H = 120, top = 6, bottom = 2;
  const points = history.slice(-300);
  const max = Math.max(1, ...points.map((p) => p.rate));
  const parts = [el('svg:line', { class: 'axis', x1: '0', y1: String(H - bottom), x2: String(W), y2: String(H - bottom) })];
  let span = 0;
  if (points.length > 1) {
    const t0 = points[0].at;
    span = Math.max(1, points[points.length - 1].at - t0);
    const xy = points.map((p) => [((p.at - t0) / span) * W, H - bottom - (p.rate / max) * (H - bottom - top)]);
    const line = xy.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' ');
    parts.push(el('svg:polygon', { class: 'area', points: '0,' + (H - bottom) + ' ' + line + ' ' + W + ',' + (H - bottom) }));
    parts.push(el('svg:polyline', { class: 'line', points: line }));
  }
  v.chart.replaceChildren(...parts);
  // Labels are HTML beside the chart: the SVG stretches to the width, text in it would too.
  v.axis.replaceChildren(el('span', { text: 'peak ' + rateText(max) + '/s' }), el('span', { text: points.length > 1 ? ago(span) + ' ago … now' : '' }));
  v.rate.textContent = rate === null ? 'measuring…'
    : rateText(rate.rate) + ' tasks/s ' + (rate.source === 'daemons' ? "(the daemons' counters)" : '(estimated from counts: no daemon status files)');
}

function table(headers, rows, empty) {
  if (rows.length === 0) return el('div', { class: 'empty', text: empty });
  return el('table', {}, el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { text: h })))), el('tbody', {}, ...rows));
}

function renderDaemons(v, daemons, now) {
  v.daemons.replaceChildren(table(['owner', 'host', 'pid', 'slots', 'processed', 'dead', 'up', 'status'], daemons.map((d) =>
    el('tr', { class: d.stale ? 'stale' : '' },
      el('td', { class: 'mono', text: d.owner }), el('td', { text: d.host }), el('td', { text: String(d.pid) }),
      el('td', { text: String(d.concurrency) }), el('td', { text: String(d.totals.processed) }), el('td', { text: String(d.totals.dead) }),
      el('td', { text: ago(now - d.startedAt) }), el('td', { text: d.stale ? 'stale (' + ago(now - d.updatedAt) + ' silent)' : 'serving' }))),
    'no daemon status files (state/daemon-*.json)'));
}

function renderRunning(v, running, now) {
  v.running.replaceChildren(table(['id', 'task', 'attempt', 'on', 'running for'], running.map((r) =>
    el('tr', {}, el('td', { class: 'mono', text: r.id }), el('td', { text: r.name }), el('td', { text: String(r.attempt) }),
      el('td', { text: r.host + ' ' + r.owner }), el('td', { text: ago(now - r.startedAt) }))),
    'nothing running (as the daemons report it)'));
}

async function act(v, action, id, button) {
  button.disabled = true;
  try {
    const res = await fetch('/api/' + action, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token }, body: JSON.stringify({ spool: v.index, id }) });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    setProblem('');
  } catch (err) {
    setProblem(action + ' ' + id + ': ' + err.message);
  }
  await Promise.all([refresh(), loadTasks(v)]);
}

async function loadTasks(v) {
  const q = new URLSearchParams({ spool: String(v.index), state: v.state, limit: '50' });
  if (v.cursor) q.set('cursor', v.cursor);
  let page;
  try {
    page = await getJson('/api/tasks?' + q);
  } catch (err) {
    setProblem(err.message);
    return;
  }
  const buttons = writable && token;
  const rows = page.rows.map((r) => {
    const actions = el('td', {});
    if (buttons && r.id) {
      if (r.state === 'dead') actions.append(el('button', { type: 'button', class: 'retry', 'data-id': r.id, text: 'retry', onclick: (e) => act(v, 'retry', r.id, e.target) }), ' ');
      if (r.state !== 'active') actions.append(el('button', { type: 'button', class: 'remove danger', 'data-id': r.id, text: 'remove', onclick: (e) => act(v, 'remove', r.id, e.target) }));
    }
    const error = r.error ? (r.error.name ? r.error.name + ': ' : '') + r.error.message : '';
    return el('tr', { 'data-id': r.id || '', 'data-key': r.key },
      el('td', { class: 'mono', text: r.id || r.fileName }), el('td', { text: r.name || '' }), el('td', { text: r.attempts === undefined ? '' : String(r.attempts) }),
      el('td', { text: r.due === undefined ? '' : when(r.due) }), el('td', { class: 'error', text: error, title: r.error && r.error.stack ? r.error.stack : '' }), actions);
  });
  v.list.replaceChildren(table(['id', 'task', 'attempts', 'due', 'last error', ''], rows, 'no ' + v.state + ' tasks'));
  const first = v.previous.length * 50;
  const pageInfo = page.total === 0 ? '' : 'showing ' + (first + 1) + '–' + (first + page.rows.length) + ' of ' + page.total;
  v.pager.replaceChildren(
    el('button', { type: 'button', class: 'prev', text: '‹ previous', onclick: () => { v.cursor = v.previous.pop() || null; loadTasks(v); } }),
    el('button', { type: 'button', class: 'next', text: 'next ›', onclick: () => { v.previous.push(v.cursor); v.cursor = page.next; loadTasks(v); } }),
    el('span', { class: 'info', text: pageInfo }));
  v.pager.querySelector('.prev').disabled = v.previous.length === 0;
  v.pager.querySelector('.next').disabled = !page.next;
}

async function refresh() {
  let s;
  try {
    s = await getJson('/api/summary');
  } catch (err) {
    setProblem('cannot reach the dashboard: ' + err.message);
    return;
  }
  setProblem('');
  const wasWritable = writable;
  writable = s.writable;
  document.getElementById('mode').textContent = !writable ? 'read-only (start with --token to retry and remove)'
    : token ? 'retry and remove enabled' : 'read-only in this tab: open the address with #token=<token>';
  document.getElementById('updated').textContent = 'updated ' + new Date(s.now).toLocaleTimeString();
  for (const spool of s.spools) {
    const v = viewFor(spool);
    renderCounts(v, spool.counts);
    renderChart(v, spool.history, spool.rate);
    renderDaemons(v, spool.daemons, s.now);
    renderRunning(v, spool.running, s.now);
    if (wasWritable !== writable) loadTasks(v);
  }
}

let ticks = 0;
async function tick() {
  await refresh();
  // The task list is re-read every other second; a page the user moved to stays where it is.
  if (++ticks % 2 === 0) await Promise.all([...views.values()].map(loadTasks));
  setTimeout(tick, 1000);
}
tick();
`;

const HTML_HEAD = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spoolerd dashboard</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>spoolerd</h1><span id="mode">loading…</span><span id="updated"></span><span id="problem" role="alert"></span></header>
<main id="spools"></main>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page and the Content-Security-Policy that lets exactly its own script and style run. */
export function dashboardPage(): { html: string; csp: string } {
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: HTML_HEAD, csp };
}
