// logagg's web timeline: a volume chart per service with crash and restart markers
// (from /api/histogram), and below it the merged timeline of records (pages of
// /api/search, or /api/tail read as Server-Sent Events in live mode). Plain JavaScript,
// no build step: the daemon serves this file as it is.
//
// Every request goes through fetch() with the API token when one is known: EventSource
// cannot send an Authorization header, so the SSE stream is parsed here.
'use strict';

(() => {
// ---------------------------------------------------------------------------------------
// Service colours. The CLI picks `PALETTE[xxh3_64(name) % 6]` (src/cli/format.rs); the same
// hash here gives every service the same colour in the terminal and in the browser.
const M64 = (1n << 64n) - 1n;
const SECRET = Uint8Array.from([
  0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
  0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
  0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
  0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
  0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
  0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
  0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
  0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
  0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
  0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
  0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
  0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
]);
const P32_1 = 0x9e3779b1n, P32_2 = 0x85ebca77n, P32_3 = 0xc2b2ae3dn;
const P64_1 = 0x9e3779b185ebca87n, P64_2 = 0xc2b2ae3d27d4eb4fn, P64_3 = 0x165667b19e3779f9n;
const P64_4 = 0x85ebca77c2b2ae63n, P64_5 = 0x27d4eb2f165667c5n;
const PMX1 = 0x165667919e3779f9n, PMX2 = 0x9fb21c651e98df25n;

const r64 = (b, i) => {
  let v = 0n;
  for (let k = 7; k >= 0; k--) v = (v << 8n) | BigInt(b[i + k]);
  return v;
};
const r32 = (b, i) => BigInt((b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0);
const mul = (a, b) => (a * b) & M64;
const add = (a, b) => (a + b) & M64;
const rotl = (v, n) => ((v << BigInt(n)) | (v >> BigInt(64 - n))) & M64;
const swap64 = (v) => {
  let r = 0n;
  for (let k = 0; k < 8; k++) { r = (r << 8n) | (v & 0xffn); v >>= 8n; }
  return r;
};
const fold = (a, b) => { const p = a * b; return (p & M64) ^ (p >> 64n); };
const avalanche = (h) => { h ^= h >> 37n; h = mul(h, PMX1); return h ^ (h >> 32n); };
const avalanche64 = (h) => {
  h ^= h >> 33n; h = mul(h, P64_2); h ^= h >> 29n; h = mul(h, P64_3); return h ^ (h >> 32n);
};
const mix16 = (b, i, s) => fold(r64(b, i) ^ r64(SECRET, s), r64(b, i + 8) ^ r64(SECRET, s + 8));

/** XXH3-64 with seed 0, as xxhash-rust's `xxh3_64`; BigInt arithmetic mod 2^64. */
function xxh3(b) {
  const n = b.length, N = BigInt(n);
  if (n === 0) return avalanche64(r64(SECRET, 56) ^ r64(SECRET, 64));
  if (n <= 3) {
    const c = (b[0] << 16) | (b[n >> 1] << 24) | b[n - 1] | (n << 8);
    return avalanche64(BigInt(c >>> 0) ^ (r32(SECRET, 0) ^ r32(SECRET, 4)));
  }
  if (n <= 8) {
    const flip = r64(SECRET, 8) ^ r64(SECRET, 16);
    let h = ((r32(b, n - 4) + (r32(b, 0) << 32n)) & M64) ^ flip;
    h ^= rotl(h, 49) ^ rotl(h, 24);
    h = mul(h, PMX2);
    h ^= add(h >> 35n, N);
    h = mul(h, PMX2);
    return h ^ (h >> 28n);
  }
  if (n <= 16) {
    const lo = r64(b, 0) ^ (r64(SECRET, 24) ^ r64(SECRET, 32));
    const hi = r64(b, n - 8) ^ (r64(SECRET, 40) ^ r64(SECRET, 48));
    return avalanche(add(add(add(N, swap64(lo)), hi), fold(lo, hi)));
  }
  if (n <= 128) {
    let acc = mul(N, P64_1);
    if (n > 32) {
      if (n > 64) {
        if (n > 96) acc = add(add(acc, mix16(b, 48, 96)), mix16(b, n - 64, 112));
        acc = add(add(acc, mix16(b, 32, 64)), mix16(b, n - 48, 80));
      }
      acc = add(add(acc, mix16(b, 16, 32)), mix16(b, n - 32, 48));
    }
    acc = add(add(acc, mix16(b, 0, 0)), mix16(b, n - 16, 16));
    return avalanche(acc);
  }
  if (n <= 240) {
    let acc = mul(N, P64_1);
    for (let i = 0; i < 8; i++) acc = add(acc, mix16(b, 16 * i, 16 * i));
    acc = avalanche(acc);
    for (let i = 8; i < n >> 4; i++) acc = add(acc, mix16(b, 16 * i, 16 * (i - 8) + 3));
    acc = add(acc, mix16(b, n - 16, 136 - 17));
    return avalanche(acc);
  }
  return long(b);
}

/** XXH3 of an input longer than 240 bytes: stripes of 64 bytes into 8 lanes. */
function long(b) {
  const n = b.length;
  const acc = [P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1];
  const stripe = (at, s) => {
    for (let i = 0; i < 8; i++) {
      const v = r64(b, at + 8 * i);
      const k = v ^ r64(SECRET, s + 8 * i);
      acc[i ^ 1] = add(acc[i ^ 1], v);
      acc[i] = add(acc[i], (k & 0xffffffffn) * (k >> 32n));
    }
  };
  const perBlock = (192 - 64) / 8;
  const blockLen = 64 * perBlock;
  const blocks = Math.floor((n - 1) / blockLen);
  for (let blk = 0; blk < blocks; blk++) {
    for (let s = 0; s < perBlock; s++) stripe(blk * blockLen + s * 64, s * 8);
    for (let i = 0; i < 8; i++) {
      let a = acc[i];
      a ^= a >> 47n;
      a ^= r64(SECRET, 192 - 64 + 8 * i);
      acc[i] = mul(a, P32_1);
    }
  }
  const stripes = Math.floor((n - 1 - blockLen * blocks) / 64);
  for (let s = 0; s < stripes; s++) stripe(blocks * blockLen + s * 64, s * 8);
  stripe(n - 64, 192 - 64 - 7);
  let h = mul(BigInt(n), P64_1);
  for (let i = 0; i < 4; i++) {
    h = add(h, fold(acc[2 * i] ^ r64(SECRET, 11 + 16 * i), acc[2 * i + 1] ^ r64(SECRET, 11 + 16 * i + 8)));
  }
  return avalanche(h);
}

const colours = new Map();
/** The CSS class (c0..c5) of a service's colour, the CLI's palette in its order. */
function colourOf(service) {
  let c = colours.get(service);
  if (c === undefined) {
    c = 'c' + Number(xxh3(new TextEncoder().encode(service)) % 6n);
    colours.set(service, c);
  }
  return c;
}

// ---------------------------------------------------------------------------------------
// State. The address bar's fragment keeps the range, the query, the hidden services and
// live mode, so a view can be reloaded or shared.

/** Records per page of the list, and the backlog a live follow starts with. */
const PAGE = 200;
/** Rows kept in the list while following; older ones leave from the top. */
const MAX_ROWS = 5000;
/** How often the chart is fetched again in live mode. */
const LIVE_CHART_MS = 5000;
/** Buckets the chart aims for at most. */
const MAX_BUCKETS = 120;
const RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '24h': 86400e3 };
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const TOKEN_KEY = 'logagg.token';

const state = {
  range: '1h', // a key of RANGES, or 'custom' (also what a zoom gives)
  since: null, // Date, for 'custom'
  until: null, // Date or null (now), for 'custom'
  q: '',
  hidden: new Set(),
  live: false,
};
/** Every service seen, in the chart or the list. */
const known = new Set();
/** The last /api/histogram answer and the window it was asked for. */
let hist = null;
let histWindow = null;

const $ = (id) => document.getElementById(id);
const el = {
  ranges: $('ranges'), custom: $('custom'), customSince: $('custom-since'),
  customUntil: $('custom-until'), searchForm: $('search-form'), q: $('q'), live: $('live'),
  error: $('error'), services: $('services'), chart: $('chart'), tip: $('tip'),
  rangeLabel: $('range-label'), count: $('count'), older: $('older'), list: $('list'),
  newBelow: $('new-below'), tokenDialog: $('token-dialog'), tokenForm: $('token-form'),
  token: $('token'),
};

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  const range = h.get('range');
  if (range && (range in RANGES || range === 'custom')) state.range = range;
  const since = h.get('since') && new Date(h.get('since'));
  const until = h.get('until') && new Date(h.get('until'));
  if (state.range === 'custom') {
    if (since && !isNaN(since)) {
      state.since = since;
      state.until = until && !isNaN(until) ? until : null;
    } else {
      state.range = '1h';
    }
  }
  state.q = h.get('q') || '';
  state.hidden = new Set((h.get('hide') || '').split(',').filter(Boolean));
  state.live = h.get('live') === '1';
}

function writeHash() {
  const h = new URLSearchParams();
  h.set('range', state.range);
  if (state.range === 'custom') {
    h.set('since', state.since.toISOString());
    if (state.until) h.set('until', state.until.toISOString());
  }
  if (state.q) h.set('q', state.q);
  if (state.hidden.size) h.set('hide', [...state.hidden].join(','));
  if (state.live) h.set('live', '1');
  history.replaceState(null, '', '#' + h.toString());
}

/** The window the view shows: `until` null means "now, and on" (live). */
function currentWindow() {
  if (state.range in RANGES) {
    const now = Date.now();
    return { since: new Date(now - RANGES[state.range]), until: state.live ? null : new Date(now) };
  }
  return { since: state.since, until: state.live ? null : state.until };
}

/** The `service` parameters of the list: none when every service is shown. */
function serviceFilter() {
  if (!state.hidden.size) return [];
  return [...known].filter((s) => !state.hidden.has(s)).sort();
}

const visible = (service) => !state.hidden.has(service);

// ---------------------------------------------------------------------------------------
// The API, with the token.

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

let token = localStorage.getItem(TOKEN_KEY) || '';
let asking = null;

/** Shows the token prompt; resolves once a token was entered. One prompt at a time. */
function askToken(refused) {
  if (!asking) {
    asking = new Promise((resolve) => {
      el.tokenForm.querySelector('p').textContent = refused
        ? 'That token was refused. The API token (api.token):'
        : 'This logagg asks for its API token (api.token):';
      el.token.value = '';
      el.tokenForm.onsubmit = (e) => {
        e.preventDefault();
        token = el.token.value.trim();
        if (!token) return;
        localStorage.setItem(TOKEN_KEY, token);
        el.tokenDialog.close();
        asking = null;
        resolve();
      };
      el.tokenDialog.showModal();
      el.token.focus();
    });
  }
  return asking;
}
// The prompt stays until a token is given: without one the page shows nothing.
el.tokenDialog.addEventListener('cancel', (e) => e.preventDefault());

function apiUrl(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== '') qs.append(k, one);
    }
  }
  // Relative to the page, so a daemon behind a path prefix works too.
  return `${path}?${qs}`;
}

/** A GET through fetch() with the token; a 401 asks for a token and tries again. */
async function api(path, params, signal) {
  for (;;) {
    const headers = { Accept: path.endsWith('tail') ? 'text/event-stream' : 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(apiUrl(path, params), { headers, signal, cache: 'no-store' });
    if (resp.status === 401) {
      await askToken(Boolean(token));
      continue;
    }
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      throw new ApiError(body.error || `${path}: HTTP ${resp.status}`, resp.status);
    }
    return resp;
  }
}

const getJson = async (path, params, signal) => (await api(path, params, signal)).json();

/**
 * Reads a Server-Sent Events response, calling `onEvent(type, data, id)` for each event,
 * until the stream ends. Lines end with "\n" or "\r\n" (what axum sends).
 */
async function readEvents(resp, onEvent) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let type = '', data = [], id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length) onEvent(type || 'message', data.join('\n'), id);
        type = ''; data = []; id = null;
        continue;
      }
      if (line.startsWith(':')) continue; // keep-alive comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') type = val;
      else if (field === 'data') data.push(val);
      else if (field === 'id') id = val;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Formatting.

const pad = (n, w = 2) => String(n).padStart(w, '0');
/** Local time with milliseconds, as the CLI prints it. */
function fmtTs(ts) {
  const d = ts instanceof Date ? ts : new Date(ts);
  if (isNaN(d)) return String(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
const fmtShort = (d) => fmtTs(d).slice(0, 19);
const fmtNum = (n) => Number(n).toLocaleString('en-US');
/** `datetime-local` wants local time without a zone. */
const toLocalInput = (d) => fmtTs(d).slice(0, 19).replace(' ', 'T');

function markerClass(event, message) {
  if (event === 'crash' || /crash/i.test(event || '') || (!event && /crash/i.test(message))) return 'crash';
  if (['restart', 'reload', 'online', 'start'].includes(event)) return 'restart';
  return 'other';
}

function showError(message) {
  el.error.textContent = message;
  el.error.hidden = !message;
}

const svg = (tag, attrs = {}) => {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

// ---------------------------------------------------------------------------------------
// Service toggles: click shows or hides a service in chart and list; shift-click shows it
// alone (or everything again).

function renderServices() {
  const counts = new Map();
  if (hist) {
    for (const b of hist.buckets) {
      for (const [s, n] of Object.entries(b.counts)) counts.set(s, (counts.get(s) || 0) + n);
    }
  }
  el.services.replaceChildren();
  for (const s of [...known].sort()) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `svc ${colourOf(s)}`;
    b.dataset.service = s;
    b.dataset.count = counts.get(s) || 0;
    b.setAttribute('aria-pressed', String(visible(s)));
    b.title = 'click: show or hide; shift-click: only this one';
    const sw = document.createElement('span');
    sw.className = 'swatch';
    const name = document.createElement('span');
    name.textContent = s;
    name.className = 'name';
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = fmtNum(counts.get(s) || 0);
    b.append(sw, name, n);
    b.addEventListener('click', (e) => toggleService(s, e.shiftKey));
    el.services.append(b);
  }
}

function toggleService(s, solo) {
  if (solo) {
    const alone = [...known].every((o) => (o === s) !== state.hidden.has(o));
    state.hidden = alone ? new Set() : new Set([...known].filter((o) => o !== s));
  } else if (state.hidden.has(s)) {
    state.hidden.delete(s);
  } else {
    state.hidden.add(s);
  }
  writeHash();
  renderServices();
  drawChart();
  loadList();
}

function learnServices(names) {
  let added = false;
  for (const s of names) {
    if (s && !known.has(s)) {
      known.add(s);
      added = true;
    }
  }
  if (added) renderServices();
}

// ---------------------------------------------------------------------------------------
// The chart: stacked bars per bucket, one colour per service, markers as dashed lines with
// a flag on top. Drag across it to zoom into that span.

const M = { left: 44, right: 10, top: 14, bottom: 20 };
let plot = null; // { x0, x1, t0, t1 } of the last drawing, for the pointer handlers

function pickInterval(spanMs) {
  const span = spanMs / 1000;
  return STEPS.find((s) => span / s <= MAX_BUCKETS) || STEPS[STEPS.length - 1];
}

let chartAbort = null;

async function loadChart() {
  if (chartAbort) chartAbort.abort();
  const abort = (chartAbort = new AbortController());
  const w = currentWindow();
  const until = w.until || new Date();
  const interval = pickInterval(until - w.since);
  try {
    const body = await getJson('api/histogram', {
      since: w.since.toISOString(),
      until: until.toISOString(),
      q: state.q,
      interval: `${interval}s`,
    }, abort.signal);
    if (abort.signal.aborted) return;
    hist = body;
    histWindow = { since: w.since, until, interval };
    learnServices(body.services || []);
    learnServices((body.markers || []).map((m) => m.service));
    renderServices();
    drawChart();
  } catch (e) {
    if (e.name === 'AbortError') return;
    hist = null;
    histWindow = { since: w.since, until, interval };
    drawChart(`chart unavailable: ${e.message}`);
  }
}

function drawChart(message) {
  const box = el.chart.getBoundingClientRect();
  const W = Math.max(200, Math.round(box.width)), H = Math.max(80, Math.round(box.height));
  el.chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
  el.chart.replaceChildren();
  if (!histWindow) return;
  const t0 = histWindow.since.getTime(), t1 = histWindow.until.getTime();
  const x0 = M.left, x1 = W - M.right, y0 = H - M.bottom, y1 = M.top;
  plot = { x0, x1, t0, t1 };
  const xOf = (t) => x0 + ((t - t0) / Math.max(1, t1 - t0)) * (x1 - x0);
  const services = [...known].filter(visible).sort();
  const buckets = hist ? hist.buckets : [];
  const step = (hist && hist.interval_s ? hist.interval_s : histWindow.interval) * 1000;
  let max = 0;
  for (const b of buckets) {
    let sum = 0;
    for (const s of services) sum += b.counts[s] || 0;
    max = Math.max(max, sum);
  }
  const yOf = (n) => y0 - (n / Math.max(1, max)) * (y0 - y1);

  // Grid and axes.
  // Whole counts only: with a maximum of 1 there is no line half-way.
  const levels = max >= 2 ? [0, Math.round(max / 2), max] : max ? [0, max] : [0];
  for (const n of levels) {
    const y = yOf(n);
    el.chart.append(svg('line', { class: 'grid', x1: x0, x2: x1, y1: y, y2: y }));
    const label = svg('text', { class: 'axis', x: x0 - 6, y: y + 3, 'text-anchor': 'end' });
    label.textContent = n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n));
    el.chart.append(label);
  }
  const ticks = 6;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    const label = svg('text', {
      class: 'axis', x: xOf(t), y: H - 5,
      'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle',
    });
    const d = new Date(t);
    label.textContent = t1 - t0 > 86400e3 ? fmtShort(d).slice(5, 16)
      : t1 - t0 > 3600e3 ? fmtShort(d).slice(11, 16) : fmtShort(d).slice(11, 19);
    el.chart.append(label);
  }

  // Bars, stacked in name order.
  const bars = svg('g', { class: 'bars' });
  for (const b of buckets) {
    const t = Date.parse(b.ts);
    const xa = Math.max(x0, xOf(t)), xb = Math.min(x1, xOf(t + step));
    if (xb <= xa) continue;
    let acc = 0;
    for (const s of services) {
      const n = b.counts[s] || 0;
      if (!n) continue;
      const r = svg('rect', {
        class: colourOf(s), fill: 'currentColor', x: xa, width: Math.max(1, xb - xa - 1),
        y: yOf(acc + n), height: Math.max(1, yOf(acc) - yOf(acc + n)),
        'data-service': s, 'data-ts': b.ts, 'data-count': n,
      });
      bars.append(r);
      acc += n;
    }
  }
  el.chart.append(bars);

  // Markers.
  for (const m of hist ? hist.markers || [] : []) {
    if (!visible(m.service)) continue;
    const t = Date.parse(m.ts);
    if (t < t0 || t > t1) continue;
    const x = xOf(t);
    const kind = markerClass(m.event, m.message);
    const g = svg('g', {
      class: `marker ${kind}`, 'data-service': m.service, 'data-event': m.event || '',
      'data-ts': m.ts,
    });
    g.append(svg('line', { x1: x, x2: x, y1: y1 - 4, y2: y0 }));
    g.append(svg('path', { d: `M${x - 5},${y1 - 12} L${x + 5},${y1 - 12} L${x},${y1 - 4} Z` }));
    const title = svg('title');
    title.textContent = `${fmtTs(m.ts)} ${m.message}`;
    g.append(title);
    g.dataset.message = m.message;
    el.chart.append(g);
  }

  if (message || !buckets.length) {
    const text = svg('text', { class: 'empty', x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle' });
    text.textContent = message || 'no records in this range';
    el.chart.append(text);
  }
  el.chart.dataset.services = services.filter((s) => buckets.some((b) => b.counts[s])).join(',');
  el.chart.dataset.markers = el.chart.querySelectorAll('.marker').length;

  const total = hist ? hist.total : null;
  el.rangeLabel.textContent = `${fmtShort(histWindow.since)} → ${state.live ? 'now (live)' : fmtShort(histWindow.until)}` +
    ` · ${step / 1000} s per bar` + (total == null ? '' : ` · ${fmtNum(total)} records`) +
    ' · drag across the chart to zoom';
}

/** The time under a pointer event, clamped to the plot. */
function timeAt(e) {
  const box = el.chart.getBoundingClientRect();
  const vb = el.chart.viewBox.baseVal;
  const x = ((e.clientX - box.left) / box.width) * vb.width;
  const f = Math.min(1, Math.max(0, (x - plot.x0) / (plot.x1 - plot.x0)));
  return { x: plot.x0 + f * (plot.x1 - plot.x0), t: plot.t0 + f * (plot.t1 - plot.t0) };
}

let drag = null;
el.chart.addEventListener('pointerdown', (e) => {
  if (!plot || e.button !== 0) return;
  el.chart.setPointerCapture(e.pointerId);
  const at = timeAt(e);
  const vb = el.chart.viewBox.baseVal;
  drag = { start: at, rect: svg('rect', { class: 'sel', x: at.x, y: M.top, width: 0, height: vb.height - M.top - M.bottom }) };
  el.chart.append(drag.rect);
});
el.chart.addEventListener('pointermove', (e) => {
  if (!plot) return;
  const at = timeAt(e);
  if (drag) {
    drag.rect.setAttribute('x', Math.min(at.x, drag.start.x));
    drag.rect.setAttribute('width', Math.abs(at.x - drag.start.x));
    el.tip.hidden = true;
    return;
  }
  showTip(e, at);
});
el.chart.addEventListener('pointerleave', () => { el.tip.hidden = true; });
el.chart.addEventListener('pointerup', (e) => {
  if (!drag) return;
  const at = timeAt(e);
  const { start } = drag;
  drag.rect.remove();
  drag = null;
  if (Math.abs(at.x - start.x) < 4) return;
  zoomTo(new Date(Math.min(at.t, start.t)), new Date(Math.max(at.t, start.t)));
});

function zoomTo(since, until) {
  state.range = 'custom';
  state.since = since;
  state.until = until;
  setLive(false);
  reload();
}

/** The tooltip: the marker under the pointer, else the bucket's counts. */
function showTip(e, at) {
  const box = el.chart.getBoundingClientRect();
  const lines = [];
  const marker = e.target.closest && e.target.closest('.marker');
  if (marker) {
    lines.push(`${fmtTs(marker.dataset.ts)}  ${marker.dataset.message}`);
  } else if (hist) {
    const step = (hist.interval_s || histWindow.interval) * 1000;
    const b = hist.buckets.find((k) => {
      const t = Date.parse(k.ts);
      return at.t >= t && at.t < t + step;
    });
    if (!b) {
      el.tip.hidden = true;
      return;
    }
    lines.push(fmtShort(new Date(Date.parse(b.ts))));
    for (const s of Object.keys(b.counts).sort()) {
      if (visible(s) && b.counts[s]) lines.push(`${s}  ${fmtNum(b.counts[s])}`);
    }
  }
  el.tip.textContent = lines.join('\n');
  el.tip.hidden = !lines.length;
  const x = e.clientX - box.left + 12;
  el.tip.style.left = `${Math.min(x, box.width - el.tip.offsetWidth - 4)}px`;
  el.tip.style.top = `${e.clientY - box.top + 12}px`;
}

window.addEventListener('resize', () => drawChart());

// ---------------------------------------------------------------------------------------
// The list: the merged timeline, oldest at the top. Outside live mode it is the newest page
// of /api/search for the window, with older pages on demand; in live mode it is what
// /api/tail sends: its backlog, then every new record.

let listAbort = null;
/** The cursor for the page before the first row (a search `next`, or a tail record id). */
let olderCursor = null;
/** Records the search said match; grows with live records. */
let total = 0;
let unseen = 0;

function row(h, id) {
  const div = document.createElement('div');
  div.className = 'rec';
  div.dataset.service = h.service;
  div.dataset.kind = h.kind;
  div.dataset.stream = h.stream;
  if (id) div.dataset.id = id;
  if (h.kind === 'marker') {
    div.classList.add('marker', colourOf(h.service), markerClass(h.event, h.message));
    const text = document.createElement('span');
    text.textContent = `${fmtTs(h.ts)} ${h.message}`;
    div.append(text);
    return div;
  }
  if (h.stream === 'err') div.classList.add('err');
  const ts = document.createElement('span');
  ts.className = 'ts';
  ts.textContent = fmtTs(h.ts);
  const who = document.createElement('span');
  who.className = `who ${colourOf(h.service)}`;
  who.textContent = h.instance == null ? h.service : `${h.service}:${h.instance}`;
  const stream = document.createElement('span');
  stream.className = 'stream';
  stream.textContent = h.stream;
  const msg = document.createElement('span');
  msg.className = 'msg';
  msg.textContent = h.message;
  div.append(ts, ' ', who, ' ', stream, ' ', msg);
  return div;
}

function notice(text) {
  const div = document.createElement('div');
  div.className = 'notice';
  div.textContent = text;
  return div;
}

const atBottom = () => el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 24;

function setCount() {
  const rows = el.list.querySelectorAll('.rec').length;
  el.count.textContent = `${fmtNum(total)} records match · ${fmtNum(rows)} shown` +
    (state.live ? ' · live' : '');
  el.older.hidden = !olderCursor;
}

/** Appends records; follows the end only if the reader was there. */
function append(nodes) {
  if (!nodes.length) return;
  const follow = atBottom();
  el.list.append(...nodes);
  if (follow) {
    const extra = el.list.children.length - MAX_ROWS;
    for (let i = 0; i < extra; i++) el.list.firstElementChild.remove();
    if (extra > 0) olderCursor = el.list.querySelector('.rec[data-id]')?.dataset.id || olderCursor;
    el.list.scrollTop = el.list.scrollHeight;
  } else {
    unseen += nodes.length;
    el.newBelow.textContent = `${fmtNum(unseen)} new below ↓`;
    el.newBelow.hidden = false;
  }
  setCount();
}

/** Puts records above the first row without moving what the reader looks at. */
function prepend(nodes) {
  const before = el.list.scrollHeight;
  el.list.prepend(...nodes);
  el.list.scrollTop += el.list.scrollHeight - before;
  setCount();
}

el.list.addEventListener('scroll', () => {
  if (atBottom()) {
    unseen = 0;
    el.newBelow.hidden = true;
  }
});
el.newBelow.addEventListener('click', () => {
  el.list.scrollTop = el.list.scrollHeight;
});

function searchParams(w) {
  return {
    q: state.q,
    service: serviceFilter(),
    since: w.since.toISOString(),
    until: w.until ? w.until.toISOString() : '',
  };
}

async function loadList() {
  if (listAbort) listAbort.abort();
  const abort = (listAbort = new AbortController());
  const w = currentWindow();
  el.list.replaceChildren();
  olderCursor = null;
  total = 0;
  unseen = 0;
  el.newBelow.hidden = true;
  setCount();
  if (known.size && [...known].every((s) => state.hidden.has(s))) {
    el.list.append(notice('every service is hidden'));
    document.documentElement.dataset.list = 'ready';
    return;
  }
  document.documentElement.dataset.list = 'loading';
  try {
    if (state.live) {
      await follow(w, abort);
    } else {
      const body = await getJson('api/search', { ...searchParams(w), limit: PAGE, order: 'desc' }, abort.signal);
      if (abort.signal.aborted) return;
      total = body.total;
      olderCursor = body.next || null;
      learnServices(body.hits.map((h) => h.service));
      const nodes = body.hits.slice().reverse().map((h) => row(h));
      if (!nodes.length) nodes.push(notice('no records match in this range'));
      append(nodes);
      el.list.scrollTop = el.list.scrollHeight;
      document.documentElement.dataset.list = 'ready';
    }
  } catch (e) {
    if (e.name === 'AbortError' || abort.signal.aborted) return;
    showError(e.message);
    document.documentElement.dataset.list = 'failed';
  }
}

async function loadOlder() {
  if (!olderCursor) return;
  const w = currentWindow();
  const signal = listAbort ? listAbort.signal : undefined;
  el.older.disabled = true;
  try {
    const body = await getJson('api/search', {
      ...searchParams(w), until: state.live ? '' : searchParams(w).until,
      limit: PAGE, order: 'desc', cursor: olderCursor,
    }, signal);
    olderCursor = body.next || null;
    learnServices(body.hits.map((h) => h.service));
    prepend(body.hits.slice().reverse().map((h) => row(h)));
  } catch (e) {
    if (e.name !== 'AbortError') showError(e.message);
  } finally {
    el.older.disabled = false;
  }
}
el.older.addEventListener('click', loadOlder);

/**
 * Live mode: /api/tail's backlog (the newest PAGE records of the window), then new
 * records as the daemon reads them. Reconnects after the last record it saw.
 */
async function follow(w, abort) {
  const base = { q: state.q, service: serviceFilter(), since: w.since.toISOString() };
  // The total of what matched so far; live records add to it.
  getJson('api/search', { ...base, limit: 1 }, abort.signal)
    .then((b) => { total += b.total; setCount(); })
    .catch(() => {});
  let lastId = null;
  let pending = [];
  let scheduled = false;
  // Records arrive one event at a time; the DOM takes them once a frame.
  const flush = () => {
    scheduled = false;
    const nodes = pending;
    pending = [];
    append(nodes);
  };
  const push = (node) => {
    pending.push(node);
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  };
  let caughtUp = false;
  for (let attempt = 0; !abort.signal.aborted; attempt++) {
    try {
      const params = lastId ? { ...base, after: lastId } : { ...base, n: PAGE };
      const resp = await api('api/tail', params, abort.signal);
      attempt = 0;
      let ended = false;
      await readEvents(resp, (type, data, id) => {
        if (abort.signal.aborted) return;
        if (type === 'record') {
          const h = JSON.parse(data);
          if (id) lastId = id;
          if (!olderCursor && id) olderCursor = id;
          if (caughtUp) total += 1;
          learnServices([h.service]);
          push(row(h, id));
        } else if (type === 'caught-up') {
          flush();
          if (!caughtUp) {
            caughtUp = true;
            el.list.scrollTop = el.list.scrollHeight;
          }
          showError('');
          document.documentElement.dataset.list = 'live';
          setCount();
        } else if (type === 'dropped') {
          const n = JSON.parse(data).dropped;
          push(notice(`… ${fmtNum(n)} records were missed here: the page fell behind the daemon`));
        } else if (type === 'end') {
          ended = true;
        } else if (type === 'error') {
          throw new ApiError(JSON.parse(data).error, 500);
        }
      });
      flush();
      if (ended) return;
    } catch (e) {
      if (e.name === 'AbortError' || abort.signal.aborted) return;
      if (e instanceof ApiError && e.status === 400) throw e;
      showError(`live: ${e.message}; reconnecting`);
    }
    if (abort.signal.aborted) return;
    showError(state.live ? 'live: the daemon closed the stream; reconnecting' : '');
    await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** attempt)));
  }
}

// ---------------------------------------------------------------------------------------
// Controls.

function renderControls() {
  for (const b of el.ranges.querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === state.range));
  }
  el.custom.hidden = state.range !== 'custom';
  if (state.range === 'custom' && state.since) {
    el.customSince.value = toLocalInput(state.since);
    el.customUntil.value = state.until ? toLocalInput(state.until) : '';
  }
  el.q.value = state.q;
  el.live.checked = state.live;
}

let liveTimer = null;
function setLive(on) {
  state.live = on;
  el.live.checked = on;
  clearInterval(liveTimer);
  liveTimer = on ? setInterval(loadChart, LIVE_CHART_MS) : null;
}

let generation = 0;
async function reload() {
  const gen = ++generation;
  document.documentElement.dataset.loaded = '';
  showError('');
  writeHash();
  renderControls();
  await Promise.all([loadChart(), loadList()]);
  if (gen === generation) document.documentElement.dataset.loaded = String(gen);
}

el.ranges.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  if (b.dataset.range === 'custom') {
    const w = currentWindow();
    state.range = 'custom';
    state.since = w.since;
    state.until = w.until || new Date();
    renderControls();
    el.customSince.focus();
    return;
  }
  state.range = b.dataset.range;
  reload();
});
el.custom.addEventListener('submit', (e) => {
  e.preventDefault();
  const since = new Date(el.customSince.value);
  const until = el.customUntil.value ? new Date(el.customUntil.value) : null;
  if (isNaN(since) || (until && until <= since)) {
    showError('the custom range needs a start before its end');
    return;
  }
  state.range = 'custom';
  state.since = since;
  state.until = until;
  reload();
});
el.searchForm.addEventListener('submit', (e) => {
  e.preventDefault();
  state.q = el.q.value.trim();
  reload();
});
// The clear button of a search field.
el.q.addEventListener('search', () => {
  if (!el.q.value && state.q) {
    state.q = '';
    reload();
  }
});
el.live.addEventListener('change', () => {
  setLive(el.live.checked);
  reload();
});
document.addEventListener('keydown', (e) => {
  if (e.key === '/' && document.activeElement !== el.q && !el.tokenDialog.open) {
    e.preventDefault();
    el.q.focus();
  }
});

readHash();
setLive(state.live);
reload();
})();
