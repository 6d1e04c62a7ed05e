// lumen dashboard - vanilla ES2020, no dependencies.
// All API text is inserted with textContent / text nodes, never as HTML.
'use strict';

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) if (k != null && k !== '') e.append(k);
  return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

const short = (id, n = 12) => (id ? String(id).slice(0, n) : '');
const enc = encodeURIComponent;

function fmtNum(v) {
  if (v == null || v === '' || Number.isNaN(+v)) return '';
  const n = +v;
  if (Number.isInteger(n)) return String(n);
  return String(Math.round(n * 100) / 100);
}

function fmtBytes(v) {
  if (v == null || Number.isNaN(+v)) return '';
  let n = +v;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
}

const pad2 = (n) => String(n).padStart(2, '0');
function fmtClock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
function fmtTime(ms) {
  if (!ms || +ms <= 0) return '';
  const d = new Date(+ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return fmtClock(+ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${fmtClock(+ms)}`;
}
function fmtDuration(start, end) {
  if (!start || +start <= 0) return '';
  const ms = (end && +end > 0 ? +end : Date.now()) - +start;
  if (ms < 0) return '';
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

const isByteKey = (k) => /memory|bytes/i.test(k);
function fmtRes(res) {
  return Object.entries(res || {})
    .map(([k, v]) => `${k}: ${isByteKey(k) ? fmtBytes(v) : fmtNum(v)}`)
    .join(', ');
}

function stateClass(s) {
  switch (String(s || '').toUpperCase()) {
    case 'ALIVE': case 'RUNNING': case 'SUCCEEDED': case 'HEALTHY': case 'FINISHED': case 'CREATED':
      return 'ok';
    case 'DEAD': case 'FAILED': case 'UNHEALTHY': case 'DEPLOY_FAILED': case 'ERROR': case 'REMOVED':
      return 'bad';
    case 'PENDING': case 'RESTARTING': case 'STARTING': case 'DEPLOYING': case 'UPDATING':
    case 'RESCHEDULING': case 'PENDING_CREATION': case 'DEPENDENCIES_UNREADY': case 'SUBMITTED_TO_WORKER':
      return 'warn';
    default:
      return 'neutral';
  }
}
const badge = (s, extra) => el('span', { class: 'badge ' + stateClass(s), 'data-state': s }, String(s), extra);

// Render {STATE: count} as a list of badges.
function badgeList(container, counts) {
  const entries = Object.entries(counts || {}).filter(([, n]) => n != null);
  if (!entries.length) { container.replaceChildren(el('span', { class: 'muted' }, 'none')); return; }
  container.replaceChildren(...entries.map(([s, n]) => badge(s, el('b', {}, ' ' + fmtNum(n)))));
}

// ---------------------------------------------------------------- API

// The session's CSRF value: the server writes it into the page's
// <meta name="lumen-csrf"> (the session cookie itself is HttpOnly).
function csrfToken() {
  const meta = document.querySelector('meta[name="lumen-csrf"]');
  return meta ? meta.getAttribute('content') || '' : '';
}

class ApiError extends Error {
  constructor(msg, status, silent) { super(msg); this.status = status; this.silent = !!silent; }
}

let reloading = false;
async function api(path, opts = {}) {
  const method = opts.method || 'GET';
  const headers = {};
  if (method !== 'GET') headers['X-Lumen-CSRF'] = csrfToken();
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 15000);
  let res, text;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin', signal: ctl.signal,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    text = await res.text();
  } catch (e) {
    throw new ApiError(e.name === 'AbortError' ? `Request timed out: ${path}` : `Cannot reach server: ${e.message}`, 0);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* handled below */ }
  // 401: the session ended; 403 for the CSRF value: this page holds an old
  // session's (a login from another tab replaced it). Both: load it again.
  const staleCsrf = res.status === 403 && data && /X-Lumen-CSRF/.test(String(data.error || ''));
  if (res.status === 401 || staleCsrf) {
    if (!reloading) { reloading = true; location.reload(); }
    throw new ApiError('Session expired', res.status, true);
  }
  if (!res.ok) {
    const msg = data && data.error ? String(data.error) : `HTTP ${res.status} ${res.statusText || ''}`.trim();
    throw new ApiError(msg, res.status);
  }
  if (data === null && text) throw new ApiError(`Invalid JSON from ${path}`, res.status);
  return data;
}

// Build a /api/v0 list URL. Filters are "key=value" pairs; the inner '=' is kept literal.
function listUrl(kind, limit, filters = {}) {
  let q = `/api/v0/${kind}?limit=${limit}`;
  for (const [k, v] of Object.entries(filters)) q += `&filter=${enc(k)}=${enc(v)}`;
  return q;
}
const rowsOf = (resp) => (resp && Array.isArray(resp.rows) ? resp.rows : Array.isArray(resp) ? resp : []);
function setNote(id, resp) { const n = $(id); if (n) n.textContent = (resp && resp.note) || ''; }

// ---------------------------------------------------------------- error banner

let errorSticky = 0;
function showError(e, sticky) {
  if (e && e.silent) return;
  const b = $('error');
  b.textContent = e && e.message ? e.message : String(e);
  b.hidden = false;
  if (sticky) errorSticky = Date.now() + 6000;
}
function clearError() {
  if (Date.now() < errorSticky) return;
  const b = $('error');
  b.hidden = true;
  b.textContent = '';
}

// ---------------------------------------------------------------- tables

// Reconcile a table's rows in place (keyed), so selections, focus and
// buttons survive the periodic refresh.
// o: {cols:[{col,label,get?,badge?,render?,sig?,title?,cls?}], key(r), attrs?(r),
//     selected?, empty?, expanded?(key), detail?(r), detailSig?(r)}
function syncTable(table, rows, o) {
  const colsig = o.cols.map((c) => c.col + ':' + c.label).join('|');
  const tbody = table.tBodies[0] || table.createTBody();
  if (table._colsig !== colsig) {
    table._colsig = colsig;
    const thead = table.tHead || table.createTHead();
    thead.replaceChildren(el('tr', {}, ...o.cols.map((c) => el('th', { 'data-col': c.col, class: c.cls }, c.label))));
    tbody.replaceChildren();
  }
  const old = new Map();
  const oldDetail = new Map();
  for (const tr of [...tbody.rows]) {
    if (tr._detailFor != null) oldDetail.set(tr._detailFor, tr);
    else if (tr._key != null) old.set(tr._key, tr);
    else tr.remove();
  }
  const ordered = [];
  const seen = new Set();
  for (const r of rows) {
    const k = String(o.key(r));
    if (seen.has(k)) continue;
    seen.add(k);
    let tr = old.get(k);
    old.delete(k);
    if (!tr) {
      tr = document.createElement('tr');
      tr._key = k;
      for (const [a, v] of Object.entries(o.attrs ? o.attrs(r) : { 'data-id': k })) tr.setAttribute(a, v);
      for (const c of o.cols) tr.append(el('td', { 'data-col': c.col, class: c.cls }));
    }
    tr._row = r;
    tr.classList.toggle('selected', o.selected != null && o.selected === k);
    o.cols.forEach((c, i) => updateCell(tr.cells[i], c, r));
    ordered.push(tr);
    if (o.detail) {
      let d = oldDetail.get(k);
      oldDetail.delete(k);
      if (o.expanded(k)) {
        if (!d) {
          d = el('tr', { class: 'detail-row', 'data-detail-for': k }, el('td', { colspan: o.cols.length }));
          d._detailFor = k;
        }
        const s = o.detailSig(r);
        if (d._sig !== s) { d._sig = s; d.cells[0].replaceChildren(o.detail(r)); }
        ordered.push(d);
      }
    }
  }
  for (const tr of old.values()) tr.remove();
  for (const tr of oldDetail.values()) tr.remove();
  if (!ordered.length) {
    ordered.push(el('tr', { class: 'empty' }, el('td', { colspan: o.cols.length }, o.empty || 'Nothing to show')));
  }
  let ref = tbody.firstChild;
  for (const tr of ordered) {
    if (tr === ref) ref = ref.nextSibling;
    else tbody.insertBefore(tr, ref);
  }
}

function updateCell(td, c, r) {
  const v = c.get ? c.get(r) : r[c.col];
  const text = v == null ? '' : String(v);
  const title = c.title ? String(c.title(r) || '') : '';
  const sig = (c.sig ? c.sig(r) : text) + '\u0001' + title;
  if (td._sig === sig) return;
  td._sig = sig;
  if (c.render) td.replaceChildren(c.render(r) || '');
  else if (c.badge) td.replaceChildren(text ? badge(text) : '');
  else td.textContent = text;
  if (title) td.title = title; else td.removeAttribute('title');
}

// Row click (ignoring clicks on buttons/links and text selections).
function onRowClick(table, fn) {
  table.addEventListener('click', (e) => {
    if (e.target.closest('button, a, input, select, label, .detail-row')) return;
    const sel = window.getSelection && window.getSelection();
    if (sel && !sel.isCollapsed && table.contains(sel.anchorNode)) return;
    const tr = e.target.closest('tr');
    if (!tr || tr._key == null || tr.parentNode !== table.tBodies[0]) return;
    fn(tr._key, tr._row);
  });
}
function onButton(root, cls, fn) {
  root.addEventListener('click', (e) => {
    const b = e.target.closest('button.' + cls);
    if (b && root.contains(b) && !b.disabled) fn(b.dataset.id, b, e);
  });
}

async function postAction(btn, path, busyText) {
  const orig = btn.textContent;
  btn.disabled = true;
  btn.textContent = busyText;
  try {
    await api(path, { method: 'POST' });
    setTimeout(() => { btn.disabled = false; btn.textContent = orig; }, 8000);
  } catch (e) {
    btn.disabled = false;
    btn.textContent = orig;
    showError(e, true);
  }
  refreshNow();
}

// Common columns.
const idCol = (col, label, n = 12) => ({ col, label, get: (r) => short(r[col], n), title: (r) => r[col] || '' });
const timeCol = (col, label) => ({ col, label, get: (r) => fmtTime(r[col]), title: (r) => (r[col] > 0 ? new Date(+r[col]).toISOString() : '') });

// ---------------------------------------------------------------- log pane

// A log viewer: header (title, follow, stderr, refresh, close) + <pre id=preId>.
// It only re-renders when the text changes, and only polls while following a
// running source, so a user's scroll position and text selection survive.
class LogPane {
  constructor(host, preId) {
    this.host = host;
    host.classList.add('logpane');
    host.hidden = true;
    this.title = el('span', { class: 'log-title' });
    this.status = el('span', { class: 'log-status muted' });
    this.follow = el('input', { type: 'checkbox', class: 'log-follow' });
    this.follow.checked = true;
    this.err = el('input', { type: 'checkbox', class: 'log-err' });
    this.errLabel = el('label', {}, this.err, ' stderr');
    const refreshBtn = el('button', { type: 'button', class: 'log-refresh secondary' }, 'Refresh');
    const closeBtn = el('button', { type: 'button', class: 'log-close secondary' }, 'Close');
    this.pre = el('pre', { id: preId, class: 'log' });
    host.append(el('div', { class: 'log-head' }, this.title, this.status, el('span', { class: 'spacer' }),
      el('label', {}, this.follow, ' Follow'), this.errLabel, refreshBtn, closeBtn), this.pre);
    refreshBtn.addEventListener('click', () => this.load(true));
    closeBtn.addEventListener('click', () => this.close());
    this.err.addEventListener('change', () => this.load(true, true));
    this.follow.addEventListener('change', () => { if (this.follow.checked) this.load(true, true); });
    this.src = null;
    this.seq = 0;
    this.busy = false;
    this.running = false;
  }
  get key() { return this.src ? this.src.key : null; }
  // src: {key, title, hasErr, fetch(err) -> {text, running?, path?}, live?() -> bool}
  open(src) {
    this.host.hidden = false;
    if (this.src && this.src.key === src.key) return;
    this.src = src;
    this.title.textContent = src.title;
    this.errLabel.hidden = !src.hasErr;
    this.err.checked = false;
    this.status.textContent = '';
    this.pre.textContent = 'Loading…';
    this.load(true, true);
  }
  close() {
    this.src = null;
    this.seq++;
    this.busy = false;
    this.host.hidden = true;
    this.pre.textContent = '';
    if (this.onClose) this.onClose();
  }
  // Called on every view refresh; only polls while following a live log.
  tick() { if (this.src && this.follow.checked && this.running) this.load(false); }
  async load(force, jump) {
    const src = this.src;
    if (!src || (this.busy && !force)) return;
    const seq = ++this.seq;
    this.busy = true;
    try {
      const r = await src.fetch(this.err.checked);
      if (seq !== this.seq) return;
      this.running = src.live ? !!src.live(r) : !!r.running;
      this.status.textContent = [this.running ? 'live' : 'ended', r.path || ''].filter(Boolean).join(' · ');
      this.setText(r.text || '', jump);
      if (!r.text) this.setText('(empty log)', jump);
    } catch (e) {
      if (seq !== this.seq) return;
      // Keep polling a missing log (it may appear once the process starts).
      this.running = e.status === 404;
      this.status.textContent = '';
      this.setText(`(${e.message})`, true);
    } finally {
      if (seq === this.seq) this.busy = false;
    }
  }
  setText(text, jump) {
    const pre = this.pre;
    if (pre.textContent === text) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.textContent = text;
    if (jump || atBottom) pre.scrollTop = pre.scrollHeight;
  }
}

// Source for /api/v0/logs?<what>=<id>.
function logSource(what, id, title, tail = 500) {
  return {
    key: `${what}:${id}`, title, hasErr: what !== 'node',
    fetch: async (err) => {
      const r = await api(`/api/v0/logs?${what}=${enc(id)}&tail=${tail}${err ? '&err=1' : ''}`);
      return { text: r && r.data != null ? String(r.data) : '', running: !!(r && r.running), path: r && r.path };
    },
  };
}

// ---------------------------------------------------------------- charts

const COLORS = ['#2563eb', '#9aa5b1', '#16a34a', '#d97706', '#dc2626'];

// series: [{name, get(h) -> number}]; fmt formats axis values.
function drawChart(svg, hist, series, fmt) {
  const W = 460, H = 180, L = 62, R = 10, T = 24, B = 22;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  const out = [];
  // legend
  let lx = L;
  series.forEach((s, i) => {
    out.push(svgEl('rect', { x: lx, y: 6, width: 10, height: 10, rx: 2, fill: COLORS[i % COLORS.length] }));
    const label = svgEl('text', { x: lx + 14, y: 15, class: 'legend' }, s.name);
    out.push(label);
    lx += 24 + s.name.length * 7;
  });
  const pts = (hist || []).filter((h) => h && h.t != null);
  const plotW = W - L - R, plotH = H - T - B;
  out.push(svgEl('rect', { x: L, y: T, width: plotW, height: plotH, class: 'plot' }));
  if (!pts.length) {
    out.push(svgEl('text', { x: L + plotW / 2, y: T + plotH / 2, 'text-anchor': 'middle', class: 'axis' }, 'no data yet'));
    svg.replaceChildren(...out);
    return;
  }
  let max = 0;
  for (const s of series) for (const h of pts) max = Math.max(max, +s.get(h) || 0);
  if (max <= 0) max = 1;
  const t0 = +pts[0].t, t1 = +pts[pts.length - 1].t, span = t1 - t0 || 1;
  const x = (h) => L + (pts.length === 1 ? plotW : ((+h.t - t0) / span) * plotW);
  const y = (v) => T + (1 - Math.max(0, +v || 0) / max) * plotH;
  out.push(svgEl('line', { x1: L, x2: L + plotW, y1: T + plotH / 2, y2: T + plotH / 2, class: 'grid' }));
  out.push(svgEl('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'axis' }, fmt(max)));
  out.push(svgEl('text', { x: L - 6, y: T + plotH, 'text-anchor': 'end', class: 'axis' }, fmt(0)));
  out.push(svgEl('text', { x: L, y: H - 6, 'text-anchor': 'start', class: 'axis' }, fmtClock(t0)));
  out.push(svgEl('text', { x: L + plotW, y: H - 6, 'text-anchor': 'end', class: 'axis' }, fmtClock(t1)));
  series.forEach((s, i) => {
    const points = pts.map((h) => `${x(h).toFixed(1)},${y(s.get(h)).toFixed(1)}`).join(' ');
    out.push(svgEl('polyline', {
      points, fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 2,
      'stroke-linejoin': 'round', 'data-series': s.name,
    }));
  });
  svg.replaceChildren(...out);
}

// ---------------------------------------------------------------- overview

function resourceCard(id, r, fmt) {
  const used = r ? +r.used || 0 : 0;
  const total = r ? +r.total || 0 : 0;
  $(id).textContent = r ? `${fmt(used)} / ${fmt(total)}` : 'n/a';
  $(id + '-bar').style.width = total > 0 ? `${Math.min(100, (used / total) * 100).toFixed(1)}%` : '0%';
}

const overview = {
  async refresh() {
    const c = await api('/api/cluster');
    $('gcs-address').textContent = c.gcs ? `GCS ${c.gcs}` : '';
    $('nodes-alive').textContent = fmtNum(c.nodes?.alive ?? 0);
    $('nodes-dead').textContent = fmtNum(c.nodes?.dead ?? 0);
    const res = c.resources || {};
    resourceCard('cpu', res.CPU, fmtNum);
    resourceCard('gpu', res.GPU, fmtNum);
    const host = c.host || {};
    resourceCard('memory', host.mem_total ? { used: host.mem_used, total: host.mem_total } : null, fmtBytes);
    $('cpu-busy').textContent = host.cpus ? `${(+host.cpu_percent || 0).toFixed(0)}% of ${fmtNum(host.cpus)} cores` : 'n/a';
    $('store-bytes').textContent = fmtBytes(c.object_store?.bytes ?? 0);
    $('store-objects').textContent = fmtNum(c.object_store?.objects ?? 0);
    const cap = c.object_store?.capacity;
    $('store-capacity').textContent = cap ? ` · capacity ${fmtBytes(cap)}` : '';
    $('tasks-per-s').textContent = (+(c.tasks?.per_s) || 0).toFixed(1);
    badgeList($('tasks-by-state'), c.tasks?.by_state);
    badgeList($('actors-by-state'), c.actors?.by_state);
    badgeList($('jobs-by-status'), c.jobs?.by_status);
    const h = Array.isArray(c.history) ? c.history : [];
    drawChart($('chart-cpu'), h, [{ name: 'reserved', get: (s) => s.cpu_used }, { name: 'total', get: (s) => s.cpu_total }, { name: 'busy', get: (s) => s.cpu_busy }], fmtNum);
    drawChart($('chart-gpu'), h, [{ name: 'used', get: (s) => s.gpu_used }, { name: 'total', get: (s) => s.gpu_total }], fmtNum);
    drawChart($('chart-memory'), h, [{ name: 'used', get: (s) => s.mem_used }, { name: 'total', get: (s) => s.mem_total }], fmtBytes);
    drawChart($('chart-store'), h, [{ name: 'used', get: (s) => s.store_bytes }, { name: 'capacity', get: (s) => s.store_capacity }], fmtBytes);
    drawChart($('chart-tasks'), h, [{ name: 'tasks/s', get: (s) => s.tasks_per_s }], (v) => (+v).toFixed(1));
  },
};

// ---------------------------------------------------------------- nodes

function usedOf(r, key, fmt) {
  const total = r.resources_total ? r.resources_total[key] : undefined;
  if (total == null) return '';
  const avail = r.resources_available ? r.resources_available[key] : undefined;
  const used = avail == null ? 0 : Math.max(0, +total - +avail);
  return `${fmt(used)} / ${fmt(total)}`;
}

const nodes = {
  selected: null,
  init() {
    this.pane = new LogPane($('node-log-pane'), 'node-logs');
    onRowClick($('nodes-table'), (id) => this.select(id));
    $('node-detail-close').addEventListener('click', () => this.select(null));
    $('node-log-button').addEventListener('click', () => {
      if (this.selected) this.pane.open(logSource('node', this.selected, `Node manager log · ${short(this.selected)}`, 200));
    });
    const wt = $('node-workers');
    onButton(wt, 'worker-log', (id) => this.openWorker(id, false));
    onButton(wt, 'worker-err', (id) => this.openWorker(id, true));
  },
  openWorker(id, err) {
    this.pane.open(logSource('worker', id, `Worker log · ${short(id)}`));
    if (this.pane.err.checked !== err) { this.pane.err.checked = err; this.pane.load(true, true); }
  },
  select(id) {
    if (id === this.selected) return;
    this.selected = id;
    this.pane.close();
    $('node-detail').hidden = !id;
    $('node-workers').tBodies[0]?.replaceChildren();
    $('node-detail-title').textContent = id ? `Node ${short(id)}` : '';
    refreshNow();
  },
  async refresh() {
    const sel = this.selected;
    const [resp, workers] = await Promise.all([
      api(listUrl('nodes', 1000)),
      sel ? api(listUrl('workers', 1000, { node: sel })) : null,
    ]);
    setNote('nodes-note', resp);
    const rows = rowsOf(resp);
    syncTable($('nodes-table'), rows, {
      key: (r) => r.node_id, selected: this.selected, empty: 'No nodes',
      cols: [
        idCol('node_id', 'Node'),
        { col: 'address', label: 'Address' },
        { col: 'state', label: 'State', badge: true },
        { col: 'is_head', label: 'Head', get: (r) => (r.is_head ? 'head' : '') },
        { col: 'cpu', label: 'CPU used / total', get: (r) => usedOf(r, 'CPU', fmtNum) },
        { col: 'memory', label: 'Memory used / total', get: (r) => usedOf(r, 'memory', fmtBytes) },
        { col: 'gpu', label: 'GPU used / total', get: (r) => usedOf(r, 'GPU', fmtNum) },
        { col: 'resources', label: 'Other resources', cls: 'wrap', get: (r) => fmtRes(Object.fromEntries(Object.entries(r.resources_total || {}).filter(([k]) => !['CPU', 'GPU', 'memory'].includes(k)))) },
        { col: 'death_reason', label: 'Death reason', cls: 'wrap' },
      ],
    });
    if (sel && sel === this.selected) {
      const node = rows.find((r) => r.node_id === sel);
      $('node-detail-title').textContent = `Node ${short(sel)}${node ? ' · ' + (node.address || '') + ' · ' + (node.state || '') : ''}`;
      syncTable($('node-workers'), rowsOf(workers), {
        key: (r) => r.worker_id, empty: 'No workers on this node', selected: this.pane.key ? this.pane.key.replace(/^worker:/, '') : null,
        cols: [
          idCol('worker_id', 'Worker'),
          { col: 'pid', label: 'PID' },
          { col: 'job_id', label: 'Job' },
          { col: 'state', label: 'State', badge: true },
          idCol('actor_id', 'Actor'),
          timeCol('start_time_ms', 'Started'),
          {
            col: 'logs', label: 'Logs', sig: (r) => r.worker_id,
            render: (r) => el('span', { class: 'actions' },
              el('button', { type: 'button', class: 'worker-log small', 'data-id': r.worker_id, title: r.stdout || '' }, 'stdout'),
              el('button', { type: 'button', class: 'worker-err small', 'data-id': r.worker_id, title: r.stderr || '' }, 'stderr')),
          },
        ],
      });
    }
    this.pane.tick();
  },
};

// ---------------------------------------------------------------- jobs

const ACTIVE_JOB = new Set(['PENDING', 'RUNNING']);
const jobKey = (r) => r.submission_id || r.job_id;

const jobs = {
  rows: [],
  init() {
    this.pane = new LogPane($('job-log-pane'), 'job-logs');
    const t = $('jobs-table');
    onRowClick(t, (id) => this.open(id));
    onButton(t, 'stop-job', (id, b) => postAction(b, `/api/jobs/${enc(id)}/stop`, 'Stopping…'));
    this.pane.onClose = () => refreshNow();
  },
  open(id) {
    this.pane.open({
      key: id, title: `Job logs · ${id}`, hasErr: false,
      fetch: async () => {
        const r = await api(`/api/v0/logs?job=${enc(id)}&tail=2000`);
        return { text: r && r.data != null ? String(r.data) : '' };
      },
      live: () => {
        const j = this.rows.find((r) => jobKey(r) === id);
        return !j || ACTIVE_JOB.has(j.status);
      },
    });
    refreshNow();
  },
  async refresh() {
    const resp = await api('/api/jobs/');
    const rows = (Array.isArray(resp) ? resp : rowsOf(resp)).slice()
      .sort((a, b) => (+b.submit_time || +b.start_time || 0) - (+a.submit_time || +a.start_time || 0));
    this.rows = rows;
    syncTable($('jobs-table'), rows, {
      key: jobKey, selected: this.pane.key, empty: 'No jobs submitted',
      cols: [
        { col: 'submission_id', label: 'Submission', get: (r) => r.submission_id || '' },
        { col: 'status', label: 'Status', badge: true },
        { col: 'entrypoint', label: 'Entrypoint', sig: (r) => r.entrypoint || '', render: (r) => el('code', {}, r.entrypoint || '') },
        timeCol('submit_time', 'Submitted'),
        timeCol('start_time', 'Started'),
        timeCol('end_time', 'Ended'),
        { col: 'driver_exit_code', label: 'Exit code' },
        { col: 'message', label: 'Message', cls: 'wrap' },
        {
          col: 'actions', label: '', sig: (r) => (ACTIVE_JOB.has(r.status) ? 'stop' : ''),
          render: (r) => (ACTIVE_JOB.has(r.status)
            ? el('button', { type: 'button', class: 'stop-job danger small', 'data-id': jobKey(r) }, 'Stop') : null),
        },
      ],
    });
    this.pane.tick();
  },
};

// ---------------------------------------------------------------- actors

const actors = {
  init() {
    this.pane = new LogPane($('actor-log-pane'), 'actor-logs');
    const t = $('actors-table');
    onRowClick(t, (id, r) => this.open(id, r));
    onButton(t, 'kill-actor', (id, b) => postAction(b, `/api/v0/actors/${enc(id)}/kill`, 'Killing…'));
    this.pane.onClose = () => refreshNow();
  },
  open(id, r) {
    const label = [r && r.class_name, r && r.name].filter(Boolean).join(' ');
    this.pane.open(logSource('actor', id, `Actor log · ${label ? label + ' · ' : ''}${short(id)}`));
    refreshNow();
  },
  async refresh() {
    const [resp, summary] = await Promise.all([api(listUrl('actors', 1000)), api('/api/v0/summary/actors')]);
    setNote('actors-note', resp);
    const paneActor = this.pane.key ? this.pane.key.replace(/^actor:/, '') : null;
    syncTable($('actors-table'), rowsOf(resp), {
      key: (r) => r.actor_id, selected: paneActor, empty: 'No actors',
      cols: [
        idCol('actor_id', 'Actor'),
        { col: 'class_name', label: 'Class' },
        { col: 'name', label: 'Name', get: (r) => (r.name ? (r.namespace ? `${r.name} (${r.namespace})` : r.name) : '') },
        { col: 'state', label: 'State', badge: true, title: (r) => r.pending_reason || '' },
        { col: 'job_id', label: 'Job' },
        { col: 'num_restarts', label: 'Restarts', title: (r) => (r.max_restarts != null ? `max_restarts: ${r.max_restarts}` : '') },
        { col: 'node', label: 'Node', get: (r) => short(r.node_id), title: (r) => r.node_id || '' },
        { col: 'pid', label: 'PID', get: (r) => (r.pid ? r.pid : '') },
        timeCol('start_time_ms', 'Started'),
        { col: 'detached', label: 'Detached', get: (r) => (r.detached ? 'yes' : '') },
        { col: 'death_cause', label: 'Death cause', cls: 'wrap' },
        { col: 'pending_reason', label: 'Pending reason', cls: 'wrap', get: (r) => (r.state === 'DEAD' ? '' : r.pending_reason || '') },
        {
          col: 'actions', label: '', sig: (r) => (r.state !== 'DEAD' ? 'kill' : ''),
          render: (r) => (r.state !== 'DEAD'
            ? el('button', { type: 'button', class: 'kill-actor danger small', 'data-id': r.actor_id }, 'Kill') : null),
        },
      ],
    });
    summaryTable($('actor-summary'), summary, 'Class', 'No actors');
    this.pane.tick();
  },
};

// {name: {STATE: n}} -> table with one column per state seen.
const STATE_ORDER = ['PENDING', 'RUNNING', 'FINISHED', 'FAILED', 'ALIVE', 'RESTARTING', 'DEAD'];
function summaryTable(table, summary, label, empty) {
  const data = summary && typeof summary === 'object' && !Array.isArray(summary) ? summary : {};
  const states = new Set();
  for (const counts of Object.values(data)) for (const s of Object.keys(counts || {})) states.add(s);
  const ordered = [...states].sort((a, b) => {
    const ia = STATE_ORDER.indexOf(a), ib = STATE_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const rows = Object.entries(data).map(([name, counts]) => ({ name, counts: counts || {} }))
    .sort((a, b) => a.name.localeCompare(b.name));
  syncTable(table, rows, {
    key: (r) => r.name, empty,
    cols: [
      { col: 'name', label, get: (r) => r.name },
      ...ordered.map((s) => ({
        col: s, label: s, cls: 'num', get: (r) => fmtNum(r.counts[s] || 0),
        render: (r) => el('span', { class: +r.counts[s] ? 'count-' + stateClass(s) : 'muted' }, fmtNum(r.counts[s] || 0)),
      })),
      { col: 'total', label: 'Total', cls: 'num', get: (r) => fmtNum(Object.values(r.counts).reduce((a, n) => a + (+n || 0), 0)) },
    ],
  });
}

// ---------------------------------------------------------------- tasks

const tasks = {
  init() {
    this.pane = new LogPane($('task-log-pane'), 'task-logs');
    const open = (id, r) => {
      this.pane.open(logSource('task', id, `Task log · ${(r && r.name) || ''} · ${short(id)}`));
      refreshNow();
    };
    onRowClick($('failed-tasks'), open);
    onRowClick($('tasks-table'), open);
    this.pane.onClose = () => refreshNow();
  },
  async refresh() {
    const [summary, failed, recent] = await Promise.all([
      api('/api/v0/summary/tasks'),
      api(listUrl('tasks', 100, { state: 'FAILED' })),
      api(listUrl('tasks', 100)),
    ]);
    summaryTable($('task-summary'), summary, 'Function', 'No tasks');
    setNote('failed-note', failed);
    setNote('tasks-note', recent);
    const selected = this.pane.key ? this.pane.key.replace(/^task:/, '') : null;
    syncTable($('failed-tasks'), rowsOf(failed), {
      key: (r) => r.task_id, selected, empty: 'No failed tasks',
      cols: [
        idCol('task_id', 'Task'),
        { col: 'name', label: 'Name' },
        { col: 'job_id', label: 'Job' },
        { col: 'attempt', label: 'Attempt' },
        { col: 'node', label: 'Node', get: (r) => short(r.node_id), title: (r) => r.node_id || '' },
        { col: 'error', label: 'Error', cls: 'wrap error-text' },
        { col: 'time', label: 'Time', get: (r) => fmtTime(r.ended_ms || r.started_ms || r.submitted_ms) },
      ],
    });
    syncTable($('tasks-table'), rowsOf(recent), {
      key: (r) => r.task_id, selected, empty: 'No tasks',
      cols: [
        idCol('task_id', 'Task'),
        { col: 'name', label: 'Name' },
        { col: 'type', label: 'Type' },
        { col: 'state', label: 'State', badge: true },
        { col: 'job_id', label: 'Job' },
        { col: 'attempt', label: 'Attempt' },
        { col: 'node', label: 'Node', get: (r) => short(r.node_id), title: (r) => r.node_id || '' },
        { col: 'pid', label: 'PID', get: (r) => (r.pid ? r.pid : '') },
        idCol('actor_id', 'Actor'),
        timeCol('submitted_ms', 'Submitted'),
        { col: 'duration', label: 'Duration', get: (r) => fmtDuration(r.started_ms, r.ended_ms) },
        { col: 'error', label: 'Error', cls: 'wrap error-text' },
      ],
    });
    this.pane.tick();
  },
};

// ---------------------------------------------------------------- placement groups

function bundlesNode(bundles) {
  const list = el('ol', { class: 'bundles', start: 0 });
  for (const b of bundles || []) {
    list.append(el('li', {}, fmtRes(b.resources) || '{}',
      b.node_id ? el('span', { class: 'muted', title: b.node_id }, ` @ ${short(b.node_id)}`) : null));
  }
  return list;
}

const pgs = {
  async refresh() {
    const resp = await api(listUrl('placement_groups', 1000));
    setNote('pgs-note', resp);
    syncTable($('pgs-table'), rowsOf(resp), {
      key: (r) => r.placement_group_id, empty: 'No placement groups',
      cols: [
        idCol('placement_group_id', 'Placement group'),
        { col: 'name', label: 'Name' },
        { col: 'job_id', label: 'Job' },
        { col: 'state', label: 'State', badge: true },
        { col: 'strategy', label: 'Strategy' },
        { col: 'bundles', label: 'Bundles', sig: (r) => JSON.stringify(r.bundles || []), render: (r) => bundlesNode(r.bundles) },
        { col: 'detached', label: 'Detached', get: (r) => (r.detached ? 'yes' : '') },
        { col: 'error', label: 'Error', cls: 'wrap error-text' },
      ],
    });
  },
};

// ---------------------------------------------------------------- serve

const fmt1 = (v) => (v == null || v === '' ? '' : (+v).toFixed(1));
const fmtMs = (v) => (v == null || v === '' ? '' : (+v).toFixed(1) + ' ms');

function replicaTable(replicas) {
  const t = el('table', { class: 'data replicas' }, el('thead'), el('tbody'));
  syncTable(t, replicas || [], {
    key: (r) => r.id, empty: 'No replicas',
    cols: [
      { col: 'id', label: 'Replica' },
      { col: 'state', label: 'State', badge: true },
      { col: 'node', label: 'Node', get: (r) => short(r.node), title: (r) => r.node || '' },
      { col: 'pid', label: 'PID' },
      { col: 'ongoing', label: 'Ongoing requests', cls: 'num' },
    ],
  });
  return t;
}

const serve = {
  expanded: new Set(),
  init() {
    const t = $('serve-table');
    const toggle = (k) => {
      if (this.expanded.has(k)) this.expanded.delete(k); else this.expanded.add(k);
      refreshNow();
    };
    onRowClick(t, toggle);
    onButton(t, 'toggle-replicas', (id) => toggle(id));
  },
  async refresh() {
    const s = await api('/api/serve');
    const running = !!(s && s.running);
    $('serve-message').hidden = running;
    $('serve-body').hidden = !running;
    if (!running) {
      $('serve-message').textContent = `Serve is not running${s && s.message ? ': ' + s.message : '.'}`;
      return;
    }
    const apps = s.applications || {};
    const deps = [];
    const cards = [];
    for (const [app, a] of Object.entries(apps)) {
      cards.push(el('div', { class: 'card serve-app', 'data-app': app },
        el('div', { class: 'card-title' }, app),
        el('div', {}, badge(a.status || 'UNKNOWN'), ' ', el('code', { class: 'route' }, a.route_prefix || '')),
        a.message ? el('div', { class: 'card-sub wrap' }, a.message) : null));
      for (const [name, d] of Object.entries(a.deployments || {})) deps.push({ ...d, app, name });
    }
    if (!cards.length) cards.push(el('div', { class: 'muted' }, 'No applications deployed.'));
    $('serve-apps').replaceChildren(...cards);
    const key = (r) => `${r.app}/${r.name}`;
    syncTable($('serve-table'), deps, {
      key, empty: 'No deployments',
      attrs: (r) => ({ 'data-app': r.app, 'data-deployment': r.name }),
      expanded: (k) => this.expanded.has(k),
      detail: (r) => replicaTable(r.replicas),
      detailSig: (r) => JSON.stringify(r.replicas || []),
      cols: [
        { col: 'app', label: 'Application' },
        { col: 'deployment', label: 'Deployment', get: (r) => r.name },
        { col: 'status', label: 'Status', badge: true },
        { col: 'target', label: 'Target', cls: 'num' },
        {
          col: 'replicas', label: 'Replicas running / total', cls: 'num',
          get: (r) => { const rs = r.replicas || []; return `${rs.filter((x) => x.state === 'RUNNING').length} / ${rs.length}`; },
        },
        { col: 'requests_per_s', label: 'Req/s', cls: 'num', get: (r) => fmt1(r.requests_per_s) },
        { col: 'errors_per_s', label: 'Err/s', cls: 'num', get: (r) => fmt1(r.errors_per_s) },
        { col: 'p50_ms', label: 'p50', cls: 'num', get: (r) => fmtMs(r.p50_ms) },
        { col: 'p99_ms', label: 'p99', cls: 'num', get: (r) => fmtMs(r.p99_ms) },
        { col: 'router', label: 'Router' },
        { col: 'message', label: 'Message', cls: 'wrap' },
        {
          col: 'expand', label: '', sig: (r) => `${this.expanded.has(key(r))}`,
          render: (r) => el('button', { type: 'button', class: 'toggle-replicas small secondary', 'data-id': key(r) },
            this.expanded.has(key(r)) ? 'Hide replicas' : 'Show replicas'),
        },
      ],
    });
    syncTable($('proxies-table'), Array.isArray(s.proxies) ? s.proxies : [], {
      key: (r) => r.node, empty: 'No proxies',
      cols: [
        { col: 'node', label: 'Node', get: (r) => short(r.node), title: (r) => r.node || '' },
        { col: 'http', label: 'HTTP' },
        { col: 'grpc', label: 'gRPC' },
        { col: 'state', label: 'State', badge: true },
        { col: 'message', label: 'Message', cls: 'wrap' },
      ],
    });
  },
};

// ---------------------------------------------------------------- router & refresh loop

const VIEWS = {
  overview, nodes, jobs, actors, tasks, 'placement-groups': pgs, serve,
};
let current = 'overview';
let busy = false;
let again = false;

async function refreshNow() {
  if (reloading) return;
  if (busy) { again = true; return; }
  busy = true;
  const v = current;
  try {
    await VIEWS[v].refresh();
    if (v === current) {
      $('last-updated').textContent = new Date().toLocaleTimeString();
      clearError();
    }
  } catch (e) {
    if (v === current) showError(e);
  } finally {
    busy = false;
    if (again) { again = false; refreshNow(); }
  }
}

function route() {
  const m = location.hash.match(/^#\/([\w-]+)/);
  let v = m ? m[1] : '';
  if (!Object.hasOwn(VIEWS, v)) {
    v = 'overview';
    history.replaceState(null, '', '#/overview');
  }
  current = v;
  for (const sec of document.querySelectorAll('section.view')) sec.hidden = sec.id !== `view-${v}`;
  for (const a of document.querySelectorAll('#nav a[data-view]')) a.classList.toggle('active', a.dataset.view === v);
  refreshNow();
}

function init() {
  for (const v of Object.values(VIEWS)) if (v.init) v.init();
  $('logout').addEventListener('click', async () => {
    try { await api('/api/logout', { method: 'POST' }); } catch (e) { /* reload anyway */ }
    reloading = true;
    location.reload();
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshNow(); });
  setInterval(() => { if (!document.hidden) refreshNow(); }, REFRESH_MS);
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
