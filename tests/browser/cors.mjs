// Cross-origin fetch() calls from real Chromium pages, for the C8 tests.
// Input (env): GATEWAY (http://127.0.0.1:G), ORIGINS (JSON list of page URLs
// on different origins). Output (stdout): one JSON object, per origin, per
// case: { ok, status, body } or { error }.
import { chromium } from 'playwright-core';

const gateway = process.env.GATEWAY;
const origins = JSON.parse(process.env.ORIGINS);

const cases = {
  simple_get: { path: '/api/whoami', init: {} },
  credentialed_get: { path: '/api/whoami', init: { credentials: 'include' } },
  preflighted_put: {
    path: '/api/whoami',
    init: { method: 'PUT', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: '{}' },
  },
  disallowed_header: { path: '/api/whoami', init: { headers: { 'X-Admin': '1' } } },
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const results = {};
try {
  const context = await browser.newContext();
  await context.addCookies([{ name: 'sid', value: 'browser-session', domain: '127.0.0.1', path: '/' }]);
  for (const origin of origins) {
    const page = await context.newPage();
    await page.goto(origin);
    results[origin] = await page.evaluate(
      async ({ gateway, cases }) => {
        const out = {};
        for (const [name, c] of Object.entries(cases)) {
          try {
            const res = await fetch(gateway + c.path, c.init);
            out[name] = { ok: true, status: res.status, body: await res.text() };
          } catch (e) {
            out[name] = { error: String(e) };
          }
        }
        return out;
      },
      { gateway, cases },
    );
    await page.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results) + '\n');
