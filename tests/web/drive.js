// Drives logagg's web timeline in a real headless Chromium and checks what it shows.
// Run by tests/daemon/web.rs, which starts the daemon and writes the logs:
//
//   node tests/web/drive.js <page url> <artefact dir> <expectations as JSON>
//
// Exits 0 when every check passed, else 1 with the failed check on stderr. A screenshot
// is saved after each step (and on failure) in the artefact dir.
'use strict';

const fs = require('fs');
const path = require('path');

const [url, artefacts, expectJson] = process.argv.slice(2);
if (!url || !artefacts || !expectJson) {
  console.error('usage: node tests/web/drive.js <url> <artefact dir> <expectations JSON>');
  process.exit(2);
}
const expect = JSON.parse(expectJson);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.error(`playwright-core is not installed (npm ci in the repository): ${e.message}`);
  process.exit(1);
}
if (!fs.existsSync(chromiumPath)) {
  console.error(`${chromiumPath} does not exist: install Debian's chromium`);
  process.exit(1);
}

const TIMEOUT = 15000;
let step = 0;
let page;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function shot(name) {
  step += 1;
  const file = path.join(artefacts, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
}

/** Waits until `fn(arg)` is truthy in the page; fails with `what` after TIMEOUT. */
async function waitFor(what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: TIMEOUT, polling: 100 });
  } catch (e) {
    throw new Error(`timed out waiting for: ${what}`);
  }
  console.log(`ok: ${what}`);
}

/** The list's rows as {service, kind, stream, cls, text}. */
const rows = () => page.$$eval('#list .rec', (els) => els.map((e) => ({
  service: e.dataset.service,
  kind: e.dataset.kind,
  stream: e.dataset.stream,
  cls: e.className,
  who: e.querySelector('.who') ? e.querySelector('.who').className : null,
  text: e.textContent,
})));

async function main() {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    // Root in CI: Chromium's sandbox needs user namespaces that containers often lack.
    args: ['--no-sandbox'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // The browser logs every 401 and 404 as an error; those are answers, not bugs.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        consoleErrors.push(`console: ${m.text()}`);
      }
    });

    // The daemon runs with api.token set and answers 401 without it: the page must ask
    // for it and send it on every API request, the SSE follow too (recorded here).
    const apiRequests = [];
    await context.route(/\/api\//, (route) => {
      const req = route.request();
      apiRequests.push({ url: req.url(), auth: req.headers().authorization });
      return route.fallback();
    });

    // 1. The page, its token prompt, the token kept.
    const resp = await page.goto(`${url}#range=15m`);
    check(resp.status() === 200, `GET / answers 200 (got ${resp.status()})`);
    await page.waitForSelector('#token-dialog[open]', { timeout: TIMEOUT });
    console.log('ok: the token prompt shows on a 401');
    await shot('token-prompt');
    await page.fill('#token', expect.token);
    await page.click('#token-dialog button[type=submit]');
    await waitFor('the list loads once the token is given',
      () => document.documentElement.dataset.list === 'ready');
    check(await page.evaluate(() => localStorage.getItem('logagg.token')) === expect.token,
      'the token is kept in localStorage');

    // 2. The list: both services in their CLI colours, err lines marked, the crash as a
    //    separator.
    await waitFor('the first page of the list is shown',
      () => document.querySelectorAll('#list .rec').length >= 43);
    let list = await rows();
    for (const [service, cls] of Object.entries(expect.services)) {
      const mine = list.filter((r) => r.service === service && r.kind === 'line');
      check(mine.length > 0, `the list has lines of ${service}`);
      check(mine.every((r) => r.who.split(' ').includes(cls)),
        `${service} is drawn in the CLI's colour ${cls}`);
    }
    const errs = list.filter((r) => r.stream === 'err');
    check(errs.length === 2 && errs.every((r) => r.cls.split(' ').includes('err')),
      'the two err lines are marked err');
    const markers = list.filter((r) => r.kind === 'marker');
    check(markers.length === 1 && markers[0].text.includes(expect.crash)
      && markers[0].cls.split(' ').includes('crash'),
      `the crash is a separator in the list: "${expect.crash}"`);
    const order = list.map((r) => r.text.slice(0, 23));
    check(order.every((t, i) => i === 0 || order[i - 1] <= t), 'the list is oldest first');

    // 3. The chart (from /api/histogram): both services and the crash marker.
    await waitFor('the chart shows bars of api and worker', () => {
      const s = new Set([...document.querySelectorAll('#chart rect[data-service]')]
        .map((r) => r.dataset.service));
      return s.has('api') && s.has('worker');
    });
    await waitFor('the chart shows the crash marker of worker',
      () => document.querySelector('#chart .marker.crash[data-service="worker"]') !== null);
    const toggles = await page.$$eval('#services .svc', (els) => els.map((e) => ({
      service: e.dataset.service, cls: e.className, count: Number(e.dataset.count),
    })));
    check(JSON.stringify(toggles.map((t) => t.service)) === JSON.stringify(['api', 'worker']),
      `one toggle per service (${toggles.map((t) => t.service)})`);
    for (const t of toggles) {
      check(t.cls.split(' ').includes(expect.services[t.service]),
        `the toggle of ${t.service} has its colour`);
    }
    const counts = Object.fromEntries(toggles.map((t) => [t.service, t.count]));
    check(counts.api === 30, `the chart counts 30 api records (${counts.api})`);
    await shot('timeline');
    if (expect.docs_screenshot) {
      await page.screenshot({ path: expect.docs_screenshot });
      console.log(`screenshot: ${expect.docs_screenshot}`);
    }

    // 4. A service toggle filters chart and list.
    await page.click('#services .svc[data-service="api"]');
    await waitFor('hiding api leaves only worker in the list', () => {
      const r = [...document.querySelectorAll('#list .rec')];
      return document.documentElement.dataset.list === 'ready' && r.length > 0
        && r.every((e) => e.dataset.service === 'worker');
    });
    check(await page.$('#chart rect[data-service="api"]') === null, 'hiding api removes its bars');
    await shot('api-hidden');
    await page.click('#services .svc[data-service="api"]');
    await waitFor('showing api again brings its lines back', () =>
      [...document.querySelectorAll('#list .rec')].some((e) => e.dataset.service === 'api'));

    // 5. The search box narrows the list to the expected lines.
    await page.fill('#q', expect.search.q);
    await page.press('#q', 'Enter');
    await waitFor(`the search "${expect.search.q}" narrows the list`, (n) =>
      document.documentElement.dataset.list === 'ready'
      && document.querySelectorAll('#list .rec').length === n, expect.search.lines.length);
    list = await rows();
    const msgs = list.map((r) => r.text);
    for (const [i, line] of expect.search.lines.entries()) {
      check(msgs[i].endsWith(line), `search hit ${i} is "${line}"`);
    }
    check(list.every((r) => r.service === 'worker' && r.stream === 'err'),
      'the search hits are worker\'s err lines');
    check(apiRequests.some((r) => r.url.includes('/api/search')
      && new URL(r.url).searchParams.get('q') === expect.search.q),
      'the list came from /api/search with the query');
    check(apiRequests.some((r) => r.url.includes('/api/histogram')
      && new URL(r.url).searchParams.get('q') === expect.search.q),
      'the chart was asked again with the query');
    await shot('search');
    await page.fill('#q', '');
    await page.press('#q', 'Enter');
    await waitFor('clearing the search brings every line back', () =>
      document.documentElement.dataset.list === 'ready'
      && document.querySelectorAll('#list .rec').length >= 43);

    // 6. Live mode: a new line appears at the end; a reader scrolled up stays put.
    await page.check('#live');
    await waitFor('live mode follows /api/tail', () => document.documentElement.dataset.list === 'live');
    check(apiRequests.some((r) => r.url.includes('/api/tail') && r.auth === `Bearer ${expect.token}`),
      'the SSE follow sends the token');
    fs.appendFileSync(expect.live.file, `${expect.live.lines[0]}\n`);
    await waitFor(`the new line "${expect.live.lines[0]}" appears last`, (line) => {
      const last = [...document.querySelectorAll('#list .rec')].pop();
      return last && last.textContent.endsWith(line) && last.dataset.service === 'api';
    }, expect.live.lines[0]);
    const scroll = () => page.$eval('#list', (l) => ({
      top: l.scrollTop, max: l.scrollHeight - l.clientHeight,
    }));
    let s = await scroll();
    check(s.max > 0 && s.max - s.top < 30, 'the list follows the end while the reader is there');
    await shot('live');
    await page.$eval('#list', (l) => { l.scrollTop = 40; });
    fs.appendFileSync(expect.live.file, `${expect.live.lines[1]}\n`);
    await waitFor(`the second line "${expect.live.lines[1]}" arrives`, (line) =>
      [...document.querySelectorAll('#list .rec')].some((e) => e.textContent.endsWith(line)),
    expect.live.lines[1]);
    s = await scroll();
    check(s.top === 40, `a reader scrolled up keeps the position (scrollTop ${s.top})`);
    check(await page.isVisible('#new-below'), 'the "new below" button tells of the new line');
    await shot('live-scrolled-up');
    await page.click('#new-below');
    s = await scroll();
    check(s.max - s.top < 30, '"new below" jumps to the end');

    // 7. Drag across the chart to zoom: a custom range, live mode off.
    const box = await (await page.$('#chart')).boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await waitFor('dragging across the chart zooms to a custom range', () =>
      location.hash.includes('range=custom') && !document.getElementById('custom').hidden
      && !document.getElementById('live').checked);
    await waitFor('the zoomed list loads', () => ['ready', 'failed'].includes(document.documentElement.dataset.list));
    await shot('zoomed');

    check(consoleErrors.length === 0, `no script errors (${consoleErrors.join('; ')})`);
    await context.close();
  } catch (e) {
    if (page) {
      await page.screenshot({ path: path.join(artefacts, 'failure.png') }).catch(() => {});
      const html = await page.content().catch(() => '');
      fs.writeFileSync(path.join(artefacts, 'failure.html'), html);
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log('all checks passed');
}, (e) => {
  console.error(e.message || e);
  process.exit(1);
});
