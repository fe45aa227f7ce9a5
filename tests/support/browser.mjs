// A real browser through authgate: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core. Logs in at the provider's pages, checks what the upstream saw, logs out
// through the provider's confirmation page, and checks the old session is gone.
//   node browser.mjs <gateway-url> <issuer> <screenshot-dir>
// Prints one JSON line with what it saw; exits non-zero on an unexpected page.
import { chromium } from 'playwright-core';

const [, , gateway, issuer, shots] = process.argv;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (r.url().startsWith(`${issuer}/session/end`) && seen.endSessionHint === undefined) {
      seen.endSessionHint = url.searchParams.has('id_token_hint');
    }
  });
  await page.goto(`${gateway}/`);
  seen.loginPage = page.url().startsWith(issuer);
  await page.fill('input[name=login]', 'alice');
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  await page.waitForURL(`${issuer}/**`);
  await page.click('button[type=submit]'); // consent
  await page.waitForURL(`${gateway}/**`);
  seen.backAt = new URL(page.url()).pathname;
  seen.heading = await page.textContent('h1');
  seen.body = await page.textContent('body');
  await page.screenshot({ path: `${shots}/logged-in.png`, fullPage: true });
  const logoutCookie = (await context.cookies()).find((c) => c.name === '_authgate_logout');
  seen.logoutCookiePath = logoutCookie && logoutCookie.path;

  await page.goto(`${gateway}/oauth2/logout`);
  seen.endSessionPage = page.url().startsWith(`${issuer}/session/end`);
  await page.click('button[value=yes], button[name=logout]');
  await page.waitForURL(`${gateway}/logged-out**`);
  seen.loggedOutAt = new URL(page.url()).pathname;
  await page.goto(`${gateway}/`);
  seen.afterLogout = page.url().startsWith(issuer) ? 'login page' : page.url();
  await page.screenshot({ path: `${shots}/after-logout.png` });
  console.log(JSON.stringify(seen));
} catch (err) {
  console.log(JSON.stringify({ ...seen, error: String(err) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
