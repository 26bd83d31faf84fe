// The live fleet dashboard (server/http/dashboard.ts) in Debian's headless
// Chromium, driven over CDP by playwright-core. Chromium runs in an operator
// namespace on the test's bridge, so it reaches bootfarm as a browser on the LAN
// would; real boot traffic (busybox udhcpc, tftp-hpa, curl as firmware and node
// agent) moves the nodes through their steps while the page stays loaded.
// Screenshots go to test-artifacts/dashboard/ (ignored by git).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { AgentClient } from '../lib/agent-client.js';

const SCRIPT = path.join(REPO_ROOT, 'test/lib/dhcp-client-script.sh');
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts/dashboard');
const BASE = 'http://10.9.0.1:8080';
const API_TOKEN = 'dashboard-test-api-token-0001';
const GOOD = '52:54:00:00:0d:01';
const BAD = '52:54:00:00:0d:02';
const PI = 'dc:a6:32:00:0d:03';
const STRANGER = '52:54:00:00:0d:09';
const FAILURE_LOG = 'mount: mounting /dev/nbd0 on /root failed: Invalid argument\nnbd-client: export refused';

describe('the fleet dashboard follows boots live in a real browser', () => {
  let lab: NetLab;
  let srv: LabHost;
  let operator: LabHost;
  let good: LabHost;
  let bad: LabHost;
  let server: BootfarmProcess;
  let agent: AgentClient;
  let browser: Browser;
  let page: Page;
  let navigations = 0;

  const cell = (mac: string, key: string) => page.locator(`tr.machine[data-mac="${mac}"] td.c-${key}`);
  const rowState = (mac: string) => page.locator(`tr.machine[data-mac="${mac}"]`).getAttribute('data-state');
  /** Waits (on the page, no reload) until the machine's cell shows `text`. */
  const waitCell = (mac: string, key: string, text: string) =>
    page.waitForFunction(
      ([m, k, t]) => document.querySelector(`tr.machine[data-mac="${m}"] td.c-${k}`)?.textContent?.includes(t as string) === true,
      [mac, key, text],
      { timeout: 20_000 },
    );
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const lease = async (host: LabHost, extra: string[] = []) => {
    const r = await lab.exec(host.ns, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-s', SCRIPT, '-t', '5', '-T', '1', ...extra]);
    expect(r.stderr).toContain('LEASE event=bound');
  };
  const report = (host: LabHost, mac: string, secret: string, body: Record<string, string>) =>
    agent.curl(host, `${BASE}/agent/v1/${mac}/report`, [
      '-X',
      'POST',
      '-H',
      'content-type: application/json',
      '-H',
      `Authorization: Bearer ${secret}`,
      '--data',
      JSON.stringify(body),
    ]);

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    lab = await NetLab.create('db');
    agent = new AgentClient(lab, BASE);
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    operator = await lab.addHost('op', { address: '10.9.0.5/24' });
    good = await lab.addHost('good', { mac: GOOD });
    bad = await lab.addHost('bad', { mac: BAD });
    const tftpRoot = mkdtempSync(path.join(tmpdir(), 'bootfarm-db-tftp-'));
    writeFileSync(path.join(tftpRoot, 'undionly.kpxe'), Buffer.alloc(70_000, 0x5a));
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'full', interface: 'eth0', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], leaseSeconds: 600 }] },
      tftp: { root: tftpRoot },
      http: { port: 8080 },
      nodes: [
        { mac: GOOD, hostname: 'good-1', arch: 'amd64', ip: '10.9.0.11' },
        { mac: BAD, hostname: 'bad-1', arch: 'amd64', ip: '10.9.0.12' },
        { mac: PI, hostname: 'pi-1', arch: 'arm64', piSerial: '0d0d0d03', piModel: 4 },
      ],
      api: { token: API_TOKEN },
    });
    // Chromium in the operator's namespace: playwright-core starts it through
    // this wrapper and speaks CDP over the pipe it inherits.
    const wrapper = path.join(mkdtempSync(path.join(tmpdir(), 'bootfarm-db-chromium-')), 'chromium-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${operator.ns} /usr/bin/chromium "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await chromium.launch({ executablePath: wrapper, args: ['--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (err) => console.log('dashboard page error:', err.message));
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations++;
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await lab?.destroy();
  });

  it('refuses the event stream without the API token; the page asks for the token', async () => {
    const none = await agent.curl(operator, `${BASE}/api/v1/events/stream`);
    expect(none.status).toBe(401);
    expect(none.body).toContain('reads need Authorization: Bearer');
    const wrong = await agent.curl(operator, `${BASE}/api/v1/events/stream`, ['-H', 'Authorization: Bearer not-the-token-at-all-000000']);
    expect(wrong.status).toBe(401);
    // The page itself carries no data and is served to anyone, with a policy that allows only its own script.
    const headers = await lab.exec(operator.ns, 'curl', ['-sS', '-D', '-', '-o', '/dev/null', `${BASE}/`]);
    expect(headers.stdout).toMatch(/content-security-policy: default-src 'none'; script-src 'self'/i);

    await page.goto(`${BASE}/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.locator('#login-error').textContent()).toContain('reads need Authorization: Bearer');
    expect(await page.locator('#fleet tbody tr').count()).toBe(0);
    await shot('01-token-asked');
  });

  it('shows each node moving through its steps without a reload, and the failed node with its reason', async () => {
    // The token in the fragment: the browser never sends it, and the page drops it from the address bar.
    await page.goto(`${BASE}/#token=${API_TOKEN}`);
    await page.locator('#status[data-state="live"]').waitFor();
    expect(page.url()).toBe(`${BASE}/`);
    const loadedAt = navigations;
    expect(await cell(PI, 'pi').textContent()).toBe('Pi 4');
    expect(await cell(PI, 'arch').textContent()).toBe('arm64');
    for (const mac of [GOOD, BAD, PI]) expect(await rowState(mac)).toBe('unknown');
    expect(await cell(GOOD, 'step').textContent()).toBe('');
    await shot('02-fleet-idle');

    // DHCP: the node's address and its step change on the page.
    await lease(good);
    await waitCell(GOOD, 'step', 'dhcp.ack 10.9.0.11');
    expect(await rowState(GOOD)).toBe('booting');
    expect(await cell(GOOD, 'address').textContent()).toBe('10.9.0.11');

    // Its bootloader over TFTP (tftp-hpa).
    const got = await lab.exec(good.ns, 'tftp', [
      '-m',
      'binary',
      '10.9.0.1',
      '-c',
      'get',
      'undionly.kpxe',
      path.join(tmpdir(), `db-${lab.id}.kpxe`),
    ]);
    expect(got.code).toBe(0);
    await waitCell(GOOD, 'step', 'tftp.file undionly.kpxe');
    await shot('03-good-bootloader');

    // Its boot script and configuration (as iPXE and the agent fetch them), then the agent's reports.
    const booted = await agent.boot(good, GOOD);
    await waitCell(GOOD, 'step', 'boot.nonce-spent');
    expect((await report(good, GOOD, booted.secret, { step: 'booted', status: 'ok' })).status).toBe(204);
    await waitCell(GOOD, 'state', 'joined');

    // The other node fails, and says why.
    await lease(bad);
    await waitCell(BAD, 'step', 'dhcp.ack 10.9.0.12');
    const badBoot = await agent.boot(bad, BAD);
    expect((await report(bad, BAD, badBoot.secret, { step: 'root', status: 'failed', detail: FAILURE_LOG })).status).toBe(204);
    await waitCell(BAD, 'state', 'failed');
    expect(await cell(BAD, 'reason').textContent()).toContain('root: mount: mounting /dev/nbd0 on /root failed');
    expect(await cell(BAD, 'reason').locator('pre.log').textContent()).toBe(FAILURE_LOG);
    // And the timeline lines before it: the report, after the boot script's nonce was spent.
    const context = await cell(BAD, 'reason').locator('ol.context li').allTextContents();
    expect(context.at(-1)).toMatch(/ agent\.root status=failed detail=mount: mounting/);
    expect(context.some((line) => line.includes(' boot.nonce-spent '))).toBe(true);

    // The timeline of a node, opened by a click, lists its events in order.
    await page.locator(`tr.machine[data-mac="${GOOD}"]`).click();
    const types = await page
      .locator(`tr.timeline[data-mac="${GOOD}"] li`)
      .evaluateAll((items) => items.map((li) => li.getAttribute('data-type')));
    expect(types).toEqual(
      expect.arrayContaining(['dhcp.offer', 'dhcp.ack', 'tftp.file', 'boot.session', 'boot.nonce-spent', 'agent.booted', 'booted']),
    );
    expect(types.indexOf('dhcp.ack')).toBeLessThan(types.indexOf('tftp.file'));
    expect(types.indexOf('tftp.file')).toBeLessThan(types.indexOf('booted'));
    expect(await page.locator(`tr.timeline[data-mac="${GOOD}"]`).isVisible()).toBe(true);

    // The plot has a row per step the boots went through.
    expect(await page.locator('#durations g[data-step]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-step')))).toEqual([
      'dhcp',
      'files',
      'script',
      'agent',
    ]);
    // One value per node and step: both nodes went through DHCP, only good-1 fetched its bootloader first.
    expect(await page.locator('#durations g[data-step="dhcp"] text').last().textContent()).toContain('n=2');
    await shot('04-fleet-after-boots');

    // A machine in no inventory asks to network-boot (PXEClient vendor class): it appears, discovered, state unknown.
    const stranger = await lab.addHost('stranger', { mac: STRANGER });
    await lease(stranger, ['-V', 'PXEClient:Arch:00000:UNDI:002001']);
    await waitCell(STRANGER, 'image', 'discovered');
    expect(await rowState(STRANGER)).toBe('unknown');

    // Filters by state.
    await page.locator('#filters button[data-filter="failed"]').click();
    expect(await page.locator('tr.machine:visible').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-mac')))).toEqual([BAD]);
    expect(await page.locator('#filters button[data-filter="failed"] span').textContent()).toBe('(1)');
    await page.locator('#filters button[data-filter="unknown"]').click();
    expect(await page.locator('tr.machine:visible').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-mac')))).toEqual([
      PI,
      STRANGER,
    ]);
    await shot('05-filter-unknown');

    // All of it arrived over the event stream: the page never navigated again.
    expect(navigations).toBe(loadedAt);
  });

  it('a graceful stop ends the open stream: bootfarm exits 0 within its stop deadline, the page sees the stream end', async () => {
    // An event stream never ends by itself: left open, it would hold the HTTP server's drain past the 5 s SIGKILL of stop().
    expect(await server.stop()).toBe(0);
    await page.locator('#status:not([data-state="live"])').waitFor();
  });
});
