// The fleet dashboard during a real lab run: Debian's headless Chromium, driven
// over CDP by playwright-core, runs in the lab operator's namespace (the host that
// approves boots, on the lab's segment) and keeps http://10.9.0.1:8080/ open while
// `bootfarm lab run` boots two QEMU guests against bootfarm in its container. The
// amd64 SeaBIOS node moves through its steps to "joined" on the page without a
// reload; the cluster refuses the OVMF node's join, and the page shows it failed
// with the cluster's reason. Screenshots go to test-artifacts/lab-dashboard/
// (ignored by git). The join refusal comes from the lab's fake Kubernetes API,
// which checks the request as the real one would (no kube-apiserver here).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { buildLabImage, startLab } from '../lib/lab-run.js';
import type { NodeResult } from '../../server/lab/lab.js';

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts/lab-dashboard');
const DASHBOARD = 'http://10.9.0.1:8080/';
// server/lab/lab-nodes.ts: the first node of each kind.
const BIOS = '52:54:00:b0:00:01';
const UEFI = '52:54:00:b0:00:02';

/** What the page showed for a machine, each time its row changed. */
interface RowChange {
  state: string;
  step: string;
}

describe('emulation lab: the dashboard follows a real fleet', () => {
  let browser: Browser | undefined;
  let scratch: string;

  beforeAll(() => {
    buildLabImage();
    mkdirSync(ARTIFACTS, { recursive: true });
    scratch = mkdtempSync(path.join(tmpdir(), 'bootfarm-lab-dashboard-'));
  }, 60 * 60_000);

  afterAll(async () => {
    await browser?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it(
    'in Chromium on the lab segment, a booting node moves through its steps to joined without a reload; a refused join shows its reason',
    async () => {
      const workDir = path.join(scratch, 'lab');
      const run = startLab([
        '--server',
        'docker',
        '--work-dir',
        workDir,
        '--nodes',
        'amd64-bios,amd64-uefi',
        '--refuse-join',
        'amd64-uefi',
      ]);
      const [, operatorNs] = await run.waitForLine(/fake Kubernetes API on \S+ \(host namespace (\S+),/, 10 * 60_000);
      await run.waitForLine(/bootfarm serving on /, 20 * 60_000);
      const config = parse(readFileSync(path.join(workDir, 'bootfarm.yaml'), 'utf8')) as { api: { token: string } };

      // playwright-core starts Chromium through this wrapper and speaks CDP over the pipe it inherits.
      const wrapper = path.join(scratch, 'chromium-in-netns');
      writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${operatorNs as string} /usr/bin/chromium "$@"\n`);
      chmodSync(wrapper, 0o755);
      browser = await chromium.launch({ executablePath: wrapper, args: ['--disable-dev-shm-usage'] });
      const page: Page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      let navigations = 0;
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) navigations++;
      });
      const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

      await page.goto(`${DASHBOARD}#token=${config.api.token}`);
      await page.locator('#status[data-state="live"]').waitFor({ timeout: 60_000 });
      const loadedAt = navigations;
      // Every change of a machine's row, recorded by the page itself as the event stream updates it.
      await page.evaluate(() => {
        const seen: Record<string, Array<{ state: string; step: string }>> = {};
        const record = () => {
          for (const row of document.querySelectorAll<HTMLTableRowElement>('tr.machine')) {
            const mac = row.dataset.mac ?? '';
            const now = { state: row.dataset.state ?? '', step: row.querySelector('td.c-step')?.textContent ?? '' };
            const list = (seen[mac] ??= []);
            const last = list.at(-1);
            if (!last || last.state !== now.state || last.step !== now.step) list.push(now);
          }
        };
        new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
        record();
        (window as unknown as { bootfarmRows: typeof seen }).bootfarmRows = seen;
      });
      await shot('01-fleet-booting');

      // The row reaches the state while the lab runs, or at the latest a few seconds after the lab has concluded it.
      const labEnded = run.done.then(
        () => undefined,
        () => undefined,
      );
      const rowState = (mac: string, state: string) => {
        const row = page.locator(`tr.machine[data-mac="${mac}"][data-state="${state}"]`);
        return Promise.race([row.waitFor({ timeout: 30 * 60_000 }), labEnded.then(() => row.waitFor({ timeout: 15_000 }))]);
      };
      await rowState(UEFI, 'failed');
      await shot('02-refused-join');
      await rowState(BIOS, 'joined');
      await shot('03-joined');

      const rows = await page.evaluate(() => (window as unknown as { bootfarmRows: Record<string, RowChange[]> }).bootfarmRows);
      // The SeaBIOS node on the open page: its boot script, kernel and initrd over
      // HTTP, its root, its agent's reports, its join, then joined — each seen as
      // the stream brought it, in boot order. (Its DHCP and iPXE over TFTP may come
      // before Chromium is up.)
      const bios = rows[BIOS] ?? [];
      const firstStep = (prefix: string) => bios.findIndex((r) => r.step.startsWith(prefix));
      const order = ['http.file', 'nbd.attach', 'token.minted', 'agent.booted', 'agent.join'].map(firstStep);
      expect(
        order.every((i) => i >= 0),
        JSON.stringify(bios),
      ).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(bios.find((r) => r.step.startsWith('http.file'))?.state).toBe('booting');
      expect(bios.at(-1)?.state).toBe('joined');
      expect(await page.locator(`tr.machine[data-mac="${BIOS}"] td.c-state`).textContent()).toContain('joined');

      // The refused node: failed, with the cluster's reason and the log lines before it.
      const reason = page.locator(`tr.machine[data-mac="${UEFI}"] td.c-reason`);
      expect(await reason.textContent()).toMatch(/^join: [\s\S]*is forbidden: the lab refuses this node's join/);
      expect((rows[UEFI] ?? []).some((r) => r.state === 'booting')).toBe(true);

      // Filters and the duration plot, from the same stream.
      await page.locator('#filters button[data-filter="failed"]').click();
      expect(await page.locator('tr.machine:visible').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-mac')))).toEqual([UEFI]);
      await page.locator('#filters button[data-filter="all"]').click();
      const plotted = await page.locator('#durations g[data-step]').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-step')));
      expect(plotted).toEqual(expect.arrayContaining(['dhcp', 'files', 'root', 'agent']));
      await shot('04-fleet-done');
      expect(navigations).toBe(loadedAt);

      // What the lab itself concluded agrees with the page.
      const { code, json } = await run.done;
      expect(code).toBe(1);
      const byKind = new Map(json.results.map((r) => [r.kind, r]));
      const refused = byKind.get('amd64-uefi') as NodeResult;
      expect(refused.ok).toBe(false);
      expect(refused.lastStep).toBe('booted');
      expect(refused.failure).toMatch(/^join: [\s\S]*lab-amd64-uefi[\\"]* is forbidden: the lab refuses this node's join/);
      expect(refused.events.some((e) => e.type === 'token.revoked')).toBe(true);
      expect(byKind.get('amd64-bios')?.ok, byKind.get('amd64-bios')?.failure).toBe(true);
      expect(json.cluster.map((n) => n.name)).toEqual(['lab-amd64-bios']);
    },
    45 * 60_000,
  );
});
