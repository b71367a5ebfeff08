/**
 * `spool dashboard` in a real headless browser: Debian's chromium driven by
 * playwright-core (no browser download; CI installs chromium with apt), the
 * page loaded from the real `spool dashboard` over a spool a real spoolerd
 * serves. Counts change as tasks run, a dead letter shows its error (as text:
 * its task's argument is markup), the retry button moves it back, and a
 * read-only dashboard offers no buttons and refuses the POST. A screenshot is
 * saved for a person to look at (its path is printed).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, spool } from './helpers/cli.js';
import { startDashboardProcess, type DashboardProcess } from './helpers/dashboard.js';
import { statusFile } from './helpers/status-files.js';
import { readRecords, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'test-token-0123456789';
const ARTIFACTS = join(ROOT, 'test-artifacts');
/** A task argument that is markup: shown as text, it must never become an element. */
const HOSTILE_KEY = '<img src=x id=injected onerror="document.title=1">';

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
});

let dir: string;
let root: string;
let records: string;
const dashboards: DashboardProcess[] = [];
useDaemonSpool('spool-dashboard-', { bind: (s) => ({ dir, root, records } = s) });
// Runs before the fixture's afterEach (hooks after a test run in reverse order): dashboards stop before the daemons.
afterEach(async () => {
  for (const d of dashboards.splice(0)) await d.stop();
});

function add(args: string[]): string {
  const r = spool(['add', '--dir', root, ...args]);
  if (r.code !== 0) throw new Error(`spool add failed: ${r.stderr}`);
  return r.stdout.trim();
}

const count = (state: string): string => `section.spool[data-index="0"] .count[data-state="${state}"] .n`;

/** Waits until the element's text is `text` (the page redraws every second). */
async function waitForText(page: Page, selector: string, text: string, timeout = 20_000): Promise<void> {
  const exactly = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  await page.locator(selector).filter({ hasText: exactly }).waitFor({ timeout });
}

async function post(url: string, path: string, body: unknown, token?: string): Promise<{ status: number; body: { error?: string } }> {
  const res = await fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token !== undefined && { Authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error?: string } };
}

/** The status of a GET sent with the given Host header (fetch does not let one set it). */
function statusWithHost(url: URL, host: string): Promise<number | undefined> {
  return new Promise((done, fail) => {
    const req = httpGet({ host: url.hostname, port: url.port, path: url.pathname, headers: { Host: host } }, (res) => {
      res.resume();
      done(res.statusCode);
    });
    req.on('error', fail);
  });
}

describe('spool dashboard in chromium', () => {
  it('shows counts changing as tasks run, a dead letter with its error, and retries it with the button', async () => {
    const gate = join(dir, 'gate');
    const marker = join(dir, 'marker');
    await startServing({ dir: root, imports: ['block', 'retry'], records, args: ['--concurrency', '4'] });
    const dashboard = await startDashboardProcess(['--dir', root], { SPOOL_DASHBOARD_TOKEN: TOKEN });
    dashboards.push(dashboard);
    expect(dashboard.output()).toContain('retry and remove enabled');

    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    await page.goto(`${dashboard.url}#token=${TOKEN}`);
    await waitForText(page, count('active'), '0');
    // The token left the address bar (it stays in the tab's sessionStorage).
    expect(page.url()).not.toContain(TOKEN);
    expect(await page.textContent('#mode')).toBe('retry and remove enabled');

    // Three slow tasks: running while the gate is shut, gone when it opens.
    for (const k of ['s1', 's2', 's3']) add(['wait_for_file', JSON.stringify(k), JSON.stringify(gate)]);
    await waitForText(page, count('active'), '3');
    writeFileSync(gate, '');
    await waitForText(page, count('active'), '0');
    await waitFor(() => readRecords(records).filter((r) => r.phase === 'finished').length === 3 || undefined, { what: 'the three slow tasks to finish' });

    // A failing task without retries: a dead letter, with its error, as text.
    const id = add(['--retries', '0', 'fails_until_marker', JSON.stringify(HOSTILE_KEY), JSON.stringify(marker)]);
    await waitForText(page, count('dead'), '1');
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.locator('td.error').textContent()).toBe(`Error: fails_until_marker ${HOSTILE_KEY}: no marker yet`);
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.title()).toBe('spoolerd dashboard');
    expect(readdirSync(join(root, 'dead')).filter((f) => f.includes(id))).toHaveLength(1);

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);

    // Retry with the button: out of dead/, run again (now it succeeds), dead count back to 0.
    writeFileSync(marker, '');
    await row.locator('button.retry').click();
    await waitForText(page, count('dead'), '0');
    expect(readdirSync(join(root, 'dead')).filter((f) => f.includes(id))).toEqual([]);
    await waitFor(() => readRecords(records).find((r) => r.task === 'fails_until_marker' && r.id === id && r.ok === true) ?? undefined, { what: 'the retried task to run and succeed' });
    await page.locator(`tr[data-id="${id}"]`).waitFor({ state: 'detached', timeout: 20_000 });
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('read-only without a token: no buttons, and retry and remove are refused (403); with a token, a wrong or missing header is refused too', async () => {
    const marker = join(dir, 'never');
    await startServing({ dir: root, imports: ['retry'], records });
    const id = add(['--retries', '0', 'fails_until_marker', '"ro"', JSON.stringify(marker)]);
    await waitFor(() => readdirSync(join(root, 'dead')).some((f) => f.includes(id)) || undefined, { what: 'the dead letter' });

    // A second spool, with no daemon but a daemon status file written by hand to the schema: its running task is shown, as text.
    const other = join(dir, 'other');
    for (const d of ['incoming', 'active/owner-x', 'state']) mkdirSync(join(other, d), { recursive: true });
    const now = Date.now();
    writeFileSync(
      join(other, 'state', 'daemon-owner-x.json'),
      JSON.stringify(statusFile('owner-x', { host: 'box-2', startedAt: now - 5000, updatedAt: now + 60_000, running: [{ id: 'running-id-1', name: HOSTILE_KEY, attempt: 1, startedAt: now - 1000 }] })),
    );

    const readOnly = await startDashboardProcess(['--dir', root, '--dir', other]);
    dashboards.push(readOnly);
    expect(readOnly.output()).toContain('read-only');
    const page = await browser.newPage();
    // Even a page that brings a token gets no buttons from a read-only dashboard.
    await page.goto(`${readOnly.url}#token=${TOKEN}`);
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 20_000 });
    await waitForText(page, '#mode', 'read-only (start with --token to retry and remove)');
    expect(await page.locator('button.retry, button.remove').count()).toBe(0);
    const running = page.locator('section.spool[data-index="1"] .running tbody tr');
    await running.waitFor({ timeout: 20_000 });
    const cells = await running.locator('td').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['running-id-1', HOSTILE_KEY, '1', 'box-2 owner-x']);
    expect(cells[4]).toMatch(/^\d+s$/);
    expect(await page.locator('section.spool[data-index="1"] .daemons tbody td').first().textContent()).toBe('owner-x');
    expect(await page.locator('#injected').count()).toBe(0);
    await page.close();

    const refused = await post(readOnly.url, '/api/retry', { spool: 0, id }, TOKEN);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toContain('read-only');
    expect((await post(readOnly.url, '/api/remove', { spool: 0, id }, TOKEN)).status).toBe(403);

    const writable = await startDashboardProcess(['--dir', root, '--token', TOKEN]);
    dashboards.push(writable);
    expect((await post(writable.url, '/api/retry', { spool: 0, id })).status).toBe(403);
    expect((await post(writable.url, '/api/retry', { spool: 0, id }, 'wrong-token-xxxx')).status).toBe(403);
    // A request naming another host (DNS rebinding) is not answered.
    expect(await statusWithHost(new URL('/api/summary', writable.url), 'evil.example')).toBe(421);
    expect(await statusWithHost(new URL('/api/summary', writable.url), `localhost:${new URL(writable.url).port}`)).toBe(200);
    // Nothing moved.
    expect(readdirSync(join(root, 'dead')).filter((f) => f.includes(id))).toHaveLength(1);

    // The remove endpoint, with the token: the dead letter is deleted (through spool rm's core).
    const removed = await post(writable.url, '/api/remove', { spool: 0, id }, TOKEN);
    expect(removed).toEqual({ status: 200, body: { ok: true, action: 'remove', id } });
    expect(readdirSync(join(root, 'dead')).filter((f) => f.includes(id))).toEqual([]);
    expect((await post(writable.url, '/api/retry', { spool: 0, id }, TOKEN)).status).toBe(404);
  });
});
