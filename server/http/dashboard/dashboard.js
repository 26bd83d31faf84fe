// The fleet dashboard's script (served as is: no build step, no dependency).
// It loads the nodes, the discovered machines and each node's timeline from the
// API, then follows GET /api/v1/events/stream and applies each event as it
// comes: the page never reloads. Everything shown comes from the network, some
// of it from the machines being booted, so it goes into the page as text only.
//
// The API token (when reads need one) is taken from a #token=... fragment, which
// browsers never send to the server, or from the form, and is kept in this tab's
// sessionStorage. It travels as an Authorization header on fetch(): never in a URL.

// A browser script in a tree linted for Node: the browser's globals it uses.
/* global window, document, location, history, sessionStorage, fetch, AbortController, TextDecoderStream, setInterval */

const STEPS = ['dhcp', 'files', 'script', 'root', 'agent', 'join'];
const TERMINAL = new Set(['booted', 'joined', 'failed', 'revoked']);
const SVG = 'http://www.w3.org/2000/svg';

/** mac -> machine: { mac, kind: 'node' | 'discovered', hostname, arch, piModel, image, version, address, lastSeen, events } */
const machines = new Map();
const expanded = new Set();
let filter = 'all';
let token = sessionStorage.getItem('bootfarm.token') ?? '';
let connection;

function stepOf(type) {
  if (type.startsWith('dhcp.')) return 'dhcp';
  if (type.startsWith('tftp.') || type.startsWith('http.')) return 'files';
  if (type.startsWith('boot.') || type.startsWith('security.')) return 'script';
  if (type.startsWith('nbd.')) return 'root';
  if (type.startsWith('agent.')) return 'agent';
  if (type.startsWith('token.') || type === 'join.served') return 'join';
  return TERMINAL.has(type) ? type : 'other';
}

/** The events of the node's latest boot: from its first DHCP exchange after the previous boot ended. */
function latestBoot(events) {
  const ends = [];
  events.forEach((e, i) => {
    if (TERMINAL.has(e.type)) ends.push(i);
  });
  const lastEnd = ends.length > 0 ? ends[ends.length - 1] : -1;
  const since = events.slice(lastEnd + 1);
  let segment = since.some((e) => stepOf(e.type) === 'dhcp') ? since : events.slice(ends.length > 1 ? ends[ends.length - 2] + 1 : 0);
  const firstDhcp = segment.findIndex((e) => stepOf(e.type) === 'dhcp');
  if (firstDhcp > 0) segment = segment.slice(firstDhcp);
  return segment;
}

function stateOf(machine) {
  if (machine.kind === 'discovered') return 'unknown';
  const boot = latestBoot(machine.events);
  if (boot.some((e) => e.type === 'failed' || e.type === 'revoked')) return 'failed';
  if (boot.some((e) => e.type === 'joined' || e.type === 'booted')) return 'joined';
  return boot.length > 0 ? 'booting' : 'unknown';
}

function describe(event) {
  const d = event.detail ?? {};
  const what = d.path ?? d.export ?? d.ip ?? d.step ?? '';
  return `${event.type}${what === '' ? '' : ` ${what}`}`;
}

/** The failure's reason, the report the node sent with it (its log lines, when it sent some) and the timeline lines before it. */
function failureOf(machine) {
  const boot = latestBoot(machine.events);
  const at = boot.findLastIndex((e) => e.type === 'failed' || e.type === 'revoked');
  if (at < 0) return undefined;
  const failed = boot[at];
  const report = boot.slice(0, at).findLast((e) => e.type.startsWith('agent.') && e.detail?.status === 'failed');
  const context = boot.slice(Math.max(0, at - 4), at).map(timelineLine);
  // The reason quotes the node's report; its first line is the reason, the report is shown whole below it.
  return {
    reason: String(failed.detail?.reason ?? failed.type).split('\n')[0],
    log: report?.detail?.detail === undefined ? '' : String(report.detail.detail),
    context,
  };
}

/** Seconds from each step's first event to the next step's, in the latest boot. */
function stepDurations(machine) {
  const boot = latestBoot(machine.events);
  const starts = [];
  for (const e of boot) {
    const step = stepOf(e.type);
    if (starts.length === 0 || starts[starts.length - 1].step !== step) starts.push({ step, at: Date.parse(e.at) });
  }
  // A step entered twice (a file, the boot script, another file) counts once per node, its spans added.
  const total = new Map();
  for (let i = 0; i + 1 < starts.length; i++) {
    const { step, at } = starts[i];
    if (STEPS.includes(step)) total.set(step, (total.get(step) ?? 0) + (starts[i + 1].at - at) / 1000);
  }
  return [...total].map(([step, seconds]) => ({ step, seconds }));
}

function timelineLine(e) {
  const detail = Object.entries(e.detail ?? {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${e.at} ${e.type} ${detail}`;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function ago(iso) {
  if (!iso) return '';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 120 ? `${seconds} s ago` : seconds < 7200 ? `${Math.round(seconds / 60)} min ago` : new Date(iso).toLocaleString();
}

function row(machine) {
  const state = stateOf(machine);
  const boot = latestBoot(machine.events);
  const last = machine.events[machine.events.length - 1];
  const failure = state === 'failed' ? failureOf(machine) : undefined;
  const tr = el('tr', { class: 'machine', 'data-mac': machine.mac, 'data-state': state });
  const name = machine.hostname ? `${machine.hostname} (${machine.mac})` : machine.mac;
  const image =
    machine.kind === 'discovered'
      ? `(discovered: ${machine.firmware ?? ''})`
      : `${machine.image ?? ''}${machine.version ? ` ${machine.version}` : ''}`;
  const cells = [
    ['name', name],
    ['state', state],
    ['arch', machine.arch ?? ''],
    ['pi', machine.piModel ? `Pi ${machine.piModel}` : ''],
    ['image', image],
    ['address', machine.address ?? ''],
    ['step', boot.length > 0 ? describe(boot[boot.length - 1]) : ''],
    ['seen', ago(last?.at ?? machine.lastSeen)],
  ];
  for (const [key, text] of cells) tr.append(el('td', { class: `c-${key}` }, text));
  const reason = el('td', { class: 'c-reason' }, failure?.reason ?? '');
  if (failure?.log) reason.append(el('pre', { class: 'log' }, failure.log));
  if (failure) {
    const context = el('ol', { class: 'context' });
    for (const line of failure.context) context.append(el('li', {}, line));
    reason.append(context);
  }
  tr.append(reason);
  tr.addEventListener('click', () => {
    if (expanded.has(machine.mac)) expanded.delete(machine.mac);
    else expanded.add(machine.mac);
    schedule();
  });
  const timeline = el('tr', { class: 'timeline', 'data-mac': machine.mac });
  timeline.hidden = !expanded.has(machine.mac);
  const cell = el('td', { colspan: '9' });
  const list = el('ol');
  for (const e of machine.events) list.append(el('li', { 'data-type': e.type }, timelineLine(e)));
  cell.append(machine.events.length > 0 ? list : el('span', {}, 'no events yet'));
  timeline.append(cell);
  return [tr, timeline, state];
}

function renderPlot() {
  const byStep = new Map(STEPS.map((s) => [s, []]));
  for (const machine of machines.values()) for (const { step, seconds } of stepDurations(machine)) byStep.get(step).push(seconds);
  const rows = STEPS.filter((s) => byStep.get(s).length > 0);
  const plot = document.getElementById('durations');
  plot.replaceChildren();
  const width = 720;
  const left = 70;
  const right = 150;
  const max = Math.max(0.001, ...rows.flatMap((s) => byStep.get(s)));
  const scale = (width - left - right) / max;
  plot.setAttribute('height', String(Math.max(40, rows.length * 26 + 10)));
  if (rows.length === 0) plot.append(svg('text', { x: 4, y: 20 }, 'no boot has passed a step yet'));
  rows.forEach((step, i) => {
    const values = byStep.get(step);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const y = 8 + i * 26;
    const g = svg('g', { 'data-step': step });
    g.append(svg('text', { x: 0, y: y + 13 }, step));
    g.append(svg('rect', { class: 'bar', x: left, y, height: 16, width: Math.max(1, mean * scale) }));
    for (const v of values) g.append(svg('circle', { class: 'dot', cx: left + v * scale, cy: y + 8, r: 3 }));
    g.append(svg('text', { x: width - right + 8, y: y + 13 }, `${mean.toFixed(2)} s mean, n=${values.length}`));
    plot.append(g);
  });
}

function render() {
  const tbody = document.querySelector('#fleet tbody');
  const counts = { all: 0, booting: 0, joined: 0, failed: 0, unknown: 0 };
  const rows = [];
  for (const machine of [...machines.values()].sort((a, b) =>
    a.kind === b.kind ? (a.hostname ?? a.mac).localeCompare(b.hostname ?? b.mac) : a.kind === 'node' ? -1 : 1,
  )) {
    const [tr, timeline, state] = row(machine);
    counts.all++;
    counts[state]++;
    const shown = filter === 'all' || filter === state;
    tr.hidden = !shown;
    if (!shown) timeline.hidden = true;
    rows.push(tr, timeline);
  }
  tbody.replaceChildren(...rows);
  for (const button of document.querySelectorAll('#filters button')) {
    button.setAttribute('aria-pressed', String(button.dataset.filter === filter));
    button.querySelector('span').textContent = `(${counts[button.dataset.filter]})`;
  }
  renderPlot();
}

let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    render();
  }, 0);
}

function setStatus(state, text) {
  const status = document.getElementById('status');
  status.dataset.state = state;
  status.textContent = text;
}

class Unauthorized extends Error {}

function headers() {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function api(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) throw new Unauthorized((await res.json()).message);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function versionOf(exportName) {
  const parts = String(exportName).split('/');
  return parts.length === 3 ? parts[1] : 'current';
}

/** A machine's fields that events change: address from DHCP, image version from the root attach. */
function noteEvent(machine, event) {
  const d = event.detail ?? {};
  if (event.type === 'dhcp.ack' && d.ip) machine.address = String(d.ip);
  if (event.type === 'nbd.attach' && d.export) machine.version = versionOf(d.export);
}

function addEvent(machine, event) {
  const key = `${event.at} ${event.type}`;
  if (machine.events.some((e) => `${e.at} ${e.type}` === key && JSON.stringify(e.detail) === JSON.stringify(event.detail))) return;
  machine.events.push(event);
  noteEvent(machine, event);
}

async function loadNodes() {
  const { nodes } = await api('/api/v1/nodes');
  for (const n of nodes) {
    const known = machines.get(n.mac);
    const machine = known?.kind === 'node' ? known : { mac: n.mac, kind: 'node', events: [] };
    Object.assign(machine, {
      hostname: n.hostname,
      arch: n.arch,
      piModel: n.piModel,
      image: n.image,
      address: n.lease?.ip ?? n.ip ?? machine.address,
    });
    machines.set(n.mac, machine);
  }
  return nodes;
}

async function load() {
  machines.clear();
  const nodes = await loadNodes();
  const { machines: found } = await api('/api/v1/discovered');
  for (const m of found) if (!machines.has(m.mac)) machines.set(m.mac, { ...m, kind: 'discovered', events: [] });
  // A few timelines at a time: a large fleet does not open hundreds of requests at once.
  const queue = [...nodes];
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        const { events } = await api(`/api/v1/nodes/${encodeURIComponent(n.mac)}/events`);
        const machine = machines.get(n.mac);
        for (const e of events) addEvent(machine, e);
      }
    }),
  );
}

let refreshing;
function refreshNodes() {
  refreshing ??= loadNodes()
    .catch(() => undefined)
    .finally(() => {
      refreshing = undefined;
      schedule();
    });
}

function apply(kind, data) {
  if (kind === 'node') {
    const machine = machines.get(data.mac);
    if (machine?.kind === 'node') addEvent(machine, data);
    else {
      // A node added since the page loaded (API, enrolment): its timeline starts here.
      machines.set(data.mac, { mac: data.mac, kind: 'node', events: [data] });
      noteEvent(machines.get(data.mac), data);
      refreshNodes();
    }
  } else if (kind === 'discovered') {
    const machine = machines.get(data.mac);
    if (!machine || machine.kind === 'discovered') machines.set(data.mac, { ...data, kind: 'discovered', events: [] });
  }
  schedule();
}

/** Parses the server-sent events of one read; returns what is left of an unfinished message. */
function parse(buffer, onMessage) {
  let at;
  while ((at = buffer.indexOf('\n\n')) >= 0) {
    const block = buffer.slice(0, at);
    buffer = buffer.slice(at + 2);
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) onMessage(event, JSON.parse(data.join('\n')));
  }
  return buffer;
}

async function follow() {
  connection?.abort();
  const controller = new AbortController();
  connection = controller;
  const res = await fetch('/api/v1/events/stream', { headers: headers(), signal: controller.signal });
  if (res.status === 401) throw new Unauthorized((await res.json()).message);
  if (!res.ok || !res.body) throw new Error(`event stream: HTTP ${res.status}`);
  // Events that arrive while the timelines load are applied after them (duplicates are skipped).
  const early = [];
  let loaded = false;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const reading = (async () => {
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = parse(buffer + value, (kind, data) => (loaded ? apply(kind, data) : early.push([kind, data])));
    }
  })();
  await load();
  loaded = true;
  for (const [kind, data] of early) apply(kind, data);
  render();
  setStatus('live', 'live');
  await reading;
}

function showLogin(message) {
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message;
  setStatus('error', 'the API needs a token');
}

let running = false;

/** Follows the stream, reconnecting with a growing pause; one loop at a time (a second call restarts its stream). */
async function run() {
  if (running) {
    connection?.abort();
    return;
  }
  running = true;
  try {
    await followLoop();
  } finally {
    running = false;
  }
}

async function followLoop() {
  for (let attempt = 0; ; attempt++) {
    try {
      await follow();
      attempt = 0;
      setStatus('connecting', 'stream ended, reconnecting…');
    } catch (err) {
      if (err instanceof Unauthorized) {
        showLogin(err.message);
        return;
      }
      setStatus('error', `${err.message}; retrying`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1000 * 2 ** attempt)));
  }
}

/** Takes a #token=... fragment; whether there was one. */
function takeFragmentToken() {
  if (!location.hash.startsWith('#token=')) return false;
  token = decodeURIComponent(location.hash.slice('#token='.length));
  sessionStorage.setItem('bootfarm.token', token);
  // Out of the address bar and the history, so it is not shared with a copied link.
  history.replaceState(null, '', location.pathname);
  return true;
}

function start() {
  takeFragmentToken();
  // A link with the token opened in a tab already showing the page only changes the fragment.
  window.addEventListener('hashchange', () => {
    if (!takeFragmentToken()) return;
    document.getElementById('login').hidden = true;
    void run();
  });
  document.getElementById('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = document.getElementById('token').value;
    sessionStorage.setItem('bootfarm.token', token);
    document.getElementById('login').hidden = true;
    void run();
  });
  for (const button of document.querySelectorAll('#filters button')) {
    button.addEventListener('click', () => {
      filter = button.dataset.filter;
      render();
    });
  }
  // "last seen" ages while nothing happens.
  setInterval(schedule, 10_000);
  void run();
}

start();
