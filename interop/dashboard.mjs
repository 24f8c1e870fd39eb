// Drives the Vouch dashboard in real headless Chromium (Debian's `chromium`
// through playwright-core) against any server that serves it:
//
//   node interop/dashboard.mjs BASE_URL [ARTIFACT_DIR]
//
// Checks: the page loads; the leaderboard has rows; changing the window
// filter sends a request with the new parameter and changes the rows; data
// is shown as text, never markup; clicking an orchestrator renders SVG charts
// with drawn paths; the policy selector lists the node's policies, every SLA
// request carries the selected one, and switching it re-asks and shows the
// new policy's name and hash; no console errors, page errors, dialogs or
// failed requests. Screenshots go to ARTIFACT_DIR ($VOUCH_ARTIFACTS, else
// target/artifacts): dashboard.png (leaderboard) and
// dashboard-orchestrator.png. Prints one JSON line; exit 0 only if all passed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!base) {
  console.error('usage: node interop/dashboard.mjs BASE_URL [ARTIFACT_DIR]');
  process.exit(2);
}
const outDir = process.argv[3] || process.env.VOUCH_ARTIFACTS || 'target/artifacts';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20000;

const problems = [];
const report = { base, executablePath };
const check = (ok, what) => { if (!ok) problems.push(what); return ok; };

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // Root in a container: Chromium's sandbox needs user namespaces it may not have.
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
  page.on('dialog', async (d) => { consoleErrors.push('dialog opened: ' + d.message()); await d.dismiss(); });
  page.on('requestfailed', (r) => consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const apiRequests = [];
  page.on('request', (r) => { if (r.url().includes('/v1/')) apiRequests.push(r.url()); });

  const resp = await page.goto(base + '/');
  check(resp && resp.ok(), `GET / answered ${resp && resp.status()}`);
  report.csp = resp && resp.headers()['content-security-policy'];
  await page.waitForSelector('body[data-ready="true"]');
  const addresses = () => page.$$eval('#leaderboard tbody tr[data-address]', (rows) => rows.map((r) => r.getAttribute('data-address')));
  const before = await addresses();
  report.rows_before = before;
  check(before.length > 0, 'the leaderboard has no rows');
  check((await page.textContent('#meta')).includes('3/3 verifiers agree'), 'the agreement of the window is not shown');

  // The policy selector: filled from /v1/policies, the default selected and
  // named beside the leaderboard with the first 10 hex digits of its hash.
  report.policy_options = await page.$$eval('#f-policy option', (os) => os.map((o) => o.value));
  report.policy_selected = await page.inputValue('#f-policy');
  report.policy_shown_before = await page.textContent('#policy .policy-name');
  report.policy_hash_before = await page.textContent('#policy .policy-hash');
  check(/^0x[0-9a-f]{10}$/.test(report.policy_hash_before), 'the policy hash shown is not 0x and 10 hex digits');

  // Data is text: the fixture's model id "<img src=x onerror=…>" must show literally.
  const demandText = await page.textContent('#demand');
  report.demand_has_literal_markup = demandText.includes('<img');
  check(await page.$$eval('#demand img, #view script', (n) => n.length) === 0, 'data became markup in the demand table');

  // Change a filter: the request must carry it and the rows must change.
  const wanted = page.waitForRequest((r) => r.url().includes('/v1/sla/orchestrators?') && new URL(r.url()).searchParams.get('window') === '24h');
  await page.selectOption('#f-window', '24h');
  const req = await wanted;
  report.filter_request = new URL(req.url()).pathname + new URL(req.url()).search;
  await page.waitForFunction((prev) => {
    const rows = [...document.querySelectorAll('#leaderboard tbody tr[data-address]')].map((r) => r.getAttribute('data-address'));
    return rows.length > 0 && rows.join() !== prev;
  }, before.join());
  const after = await addresses();
  report.rows_after = after;
  check(after.join() !== before.join(), 'rows did not change with the window filter');
  const meta24 = await page.textContent('#meta');
  check(meta24.includes('24h'), 'the window shown is not 24h');
  // The window's agreement across verifiers, and a warning when not all agree.
  report.agreement_24h = meta24;
  check(meta24.includes('⚠ 2/3 verifiers agree'), 'the 24h window does not warn that 2 of 3 verifiers agree');
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: join(outDir, 'dashboard.png'), fullPage: true });

  // Open the first orchestrator: charts with drawn paths.
  const first = after[0];
  await page.click(`#leaderboard tbody tr[data-address="${first}"] a`);
  await page.waitForFunction((a) => location.hash.startsWith('#/o/' + a), first);
  await page.waitForSelector('#charts svg path.line');
  const paths = await page.$$eval('#charts svg path.line', (ps) => ps.map((p) => p.getAttribute('d')));
  report.orchestrator = first;
  report.chart_count = await page.$$eval('#charts svg', (s) => s.length);
  report.chart_paths = paths.length;
  check(paths.length > 0 && paths.every((d) => /^M[\d.]+,[\d.]+( [ML][\d.]+,[\d.]+)+$/.test(d)), 'chart paths are missing or malformed');
  check(apiRequests.some((u) => u.includes('/v1/sla/orchestrators/' + first) && u.includes('window=24h')), 'the orchestrator request lost the window filter');
  check(await page.textContent('h2.addr') === first, 'the orchestrator page shows another address');
  await page.screenshot({ path: join(outDir, 'dashboard-orchestrator.png'), fullPage: true });

  // Back to the leaderboard through the link keeps the filter.
  await page.click('text=← leaderboard');
  await page.waitForSelector('#leaderboard tbody tr[data-address]');
  check(await page.inputValue('#f-window') === '24h', 'the filter was lost going back');

  // Switch the policy: the leaderboard re-asks with it (keeping the window),
  // shows its name, and the page URL keeps it like the other filters.
  const other = report.policy_options.find((p) => p !== report.policy_selected);
  const policyWanted = page.waitForRequest((r) => r.url().includes('/v1/sla/orchestrators?') && new URL(r.url()).searchParams.get('policy') === other);
  await page.selectOption('#f-policy', other);
  const policyReq = await policyWanted;
  report.policy_request = new URL(policyReq.url()).pathname + new URL(policyReq.url()).search;
  await page.waitForFunction((p) => document.querySelector('#policy .policy-name')?.textContent === p, other);
  report.policy_shown = await page.textContent('#policy .policy-name');
  report.policy_hash = await page.textContent('#policy .policy-hash');
  check(report.policy_hash !== report.policy_hash_before, 'the hash shown did not change with the policy');
  report.policy_hash_url = await page.evaluate(() => location.hash);
  check(new URLSearchParams(report.policy_hash_url.split('?')[1] || '').get('policy') === other, 'the page URL does not keep the policy');
  // The orchestrator page asks with the policy too.
  const firstAgain = (await addresses())[0];
  await page.click(`#leaderboard tbody tr[data-address="${firstAgain}"] a`);
  await page.waitForFunction(([p, a]) => document.querySelector('h2.addr')?.textContent === a
    && document.querySelector('#policy .policy-name')?.textContent === p, [other, firstAgain]);
  check(apiRequests.some((u) => u.includes('/v1/sla/orchestrators/' + firstAgain) && new URL(u).searchParams.get('policy') === other), 'the orchestrator request lost the policy');
  // Every SLA request carried a policy, the default one included.
  const sla = apiRequests.filter((u) => /\/v1\/(sla|network)\//.test(u));
  report.sla_requests_without_policy = sla.filter((u) => !new URL(u).searchParams.get('policy'));
  check(report.sla_requests_without_policy.length === 0, 'SLA requests without a policy: ' + report.sla_requests_without_policy.join(' '));

  report.console_errors = consoleErrors;
  check(consoleErrors.length === 0, 'console errors: ' + consoleErrors.join(' | '));
} catch (e) {
  problems.push('exception: ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' ') : String(e)));
} finally {
  await browser.close();
}
report.problems = problems;
report.ok = problems.length === 0;
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
