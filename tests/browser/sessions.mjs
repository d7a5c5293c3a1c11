// Cookie sessions, CSRF and hardened cookies (C25 C10 C9) in real Chromium.
// Input (env): GATEWAY (http://localhost:G: a secure context, so Chromium
// keeps Secure and __Host- cookies over plain HTTP), OTHER (a page on
// another site). Output (stdout): one JSON object of observations.
import { chromium } from 'playwright-core';

const gateway = process.env.GATEWAY;
const other = process.env.OTHER;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // A page of the gateway's own origin (the upstream answers it).
  await page.goto(gateway + '/public/page');
  Object.assign(out, await page.evaluate(async () => {
    const r = {};
    const call = async (path, init) => {
      const res = await fetch(path, init);
      return { status: res.status, body: await res.text() };
    };
    const login = await call('/auth/session', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'bob', password: 'bob-password' }),
    });
    r.login = login;
    const csrf = JSON.parse(login.body).csrf_token;
    r.cookie_visible_to_js = document.cookie;
    r.get = await call('/api/x');
    r.post_without_token = await call('/api/x', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    r.post_with_token = await call('/api/x', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf } });
    r.upstream_cookie = await call('/set-cookie', { method: 'POST', headers: { 'X-CSRF-Token': csrf } });
    r.cookie_visible_after_upstream = document.cookie;
    r.csrf = csrf;
    return r;
  }));
  const cookies = await context.cookies(gateway);
  out.jar = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path }));

  // Another site: a credentialed fetch and a form post to the gateway,
  // even with the stolen token in the form. SameSite=Lax keeps the cookie
  // home; the CSRF checks would refuse it anyway.
  const evil = await context.newPage();
  await evil.goto(other);
  out.cross_site_fetch = await evil.evaluate(async ({ gateway, csrf }) => {
    try {
      const res = await fetch(gateway + '/api/x', { method: 'POST', credentials: 'include', mode: 'no-cors', body: 'csrf=' + csrf });
      return { type: res.type };
    } catch (e) {
      return { error: String(e) };
    }
  }, { gateway, csrf: out.csrf });
  const nav = evil.waitForNavigation();
  await evil.evaluate(({ gateway }) => {
    const f = document.createElement('form');
    f.method = 'POST';
    f.action = gateway + '/api/x';
    document.body.appendChild(f);
    f.submit();
  }, { gateway });
  await nav;
  out.cross_site_form = { body: await evil.evaluate(() => document.body.innerText) };

  // Logout from the app's own page.
  out.logout = await page.evaluate(async (csrf) => {
    const res = await fetch('/auth/session', { method: 'DELETE', headers: { 'X-CSRF-Token': csrf } });
    const after = await fetch('/api/x');
    return { status: res.status, after: after.status };
  }, out.csrf);
  out.jar_after_logout = (await context.cookies(gateway)).map((c) => c.name);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
