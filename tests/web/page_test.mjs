// Drives the qface serve page in Debian's chromium (playwright-core, no
// browser download). Run by tests/web/test_web.cpp with a JSON config (argv[2]):
//   {qface, chromium, out, token, serve: [args], files: {name: path}}
// Starts `qface serve` twice on 127.0.0.1 (free ports): with the admin token
// (environment variable) and read-only. Every decision shown by the page is
// compared with the JSON API's answer for the same files. Screenshots go to
// <out>/screenshots/. Prints one line per check; exits 1 when one fails.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const f = cfg.files;
const shots = path.join(cfg.out, 'screenshots');
fs.mkdirSync(shots, { recursive: true });
const t0 = Date.now();
let failures = 0;

function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures += 1;
  return ok;
}

// `qface serve --port 0`: resolves with the URL it prints.
function serve(name, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cfg.qface, [...cfg.serve, '--host', '127.0.0.1', '--port', '0'],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no URL after 60 s:\n${log}`)), 60000);
    const read = (chunk) => {
      log += chunk;
      const m = log.match(/serve: (http:\/\/127\.0\.0\.1:\d+)/);
      if (m && !proc.url) {
        proc.url = m[1];
        clearTimeout(timer);
        resolve(proc);
      }
    };
    servers.push(proc);
    proc.stdout.on('data', read);
    proc.stderr.on('data', read);
    proc.on('exit', (code) => { proc.exitCode_ = code; if (!proc.url) reject(new Error(`${name} exited ${code}:\n${log}`)); });
    proc.log = () => log;
  });
}

async function stop(proc) {
  if (proc.exitCode_ !== undefined) return proc.exitCode_;
  return new Promise((resolve) => { proc.on('exit', (code) => resolve(code)); proc.kill('SIGTERM'); });
}

async function json(server, route, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(server.url + route, body === undefined ? {} : { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}
const b64 = (file) => fs.readFileSync(file).toString('base64');

// Whatever happens, the servers do not outlive the script.
const servers = [];
const killAll = () => { for (const s of servers) if (s.exitCode_ === undefined) s.kill('SIGKILL'); };
process.on('exit', killAll);
const die = (e) => { console.log(`FAIL ${e.stack || e}`); for (const s of servers) console.log(s.log()); process.exit(1); };
process.on('uncaughtException', die);
process.on('unhandledRejection', die);
const watchdog = setTimeout(() => { console.log('FAIL the browser test ran past 150 s'); process.exit(2); }, 150000);
const [writable, readonly] = await Promise.all([
  serve('writable server', { QFACE_ADMIN_TOKEN: cfg.token }),
  serve('read-only server', { QFACE_ADMIN_TOKEN: '' })]);
console.log(`servers up after ${Date.now() - t0} ms: ${writable.url} ${readonly.url}`);

const profile = path.join(cfg.out, 'chromium-profile');
fs.rmSync(profile, { recursive: true, force: true });
const context = await chromium.launchPersistentContext(profile, {
  executablePath: cfg.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  viewport: { width: 1000, height: 820 },
});
// Offline: anything not addressed to the servers is refused and reported.
const foreign = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(writable.url) || url.startsWith(readonly.url) || url.startsWith('data:') || url.startsWith('blob:')) {
    return route.continue();
  }
  foreign.push(url);
  return route.abort();
});
const page = context.pages()[0] || await context.newPage();
const scriptErrors = [];
page.on('pageerror', (e) => scriptErrors.push(e.message));
page.on('dialog', (d) => d.accept());
const T = { timeout: 30000 };

async function ready(p, url) {
  await p.goto(url);
  await p.waitForSelector('body[data-ready="true"]', T);
}
const text = async (sel) => (await page.textContent(sel)) || '';
const visible = (sel) => page.isVisible(sel);
async function accessible(view) {
  const unlabeled = await page.$$eval('input, select', (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
  check(unlabeled.length === 0, `${view}: every input has a label (${unlabeled.join(', ') || 'all labelled'})`);
  const noAlt = await page.$$eval('img', (els) => els.filter((e) => !e.alt).length);
  check(noAlt === 0, `${view}: every image has alt text`);
}
async function shoot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

await ready(page, writable.url);
check((await text('#server-info')).includes('mobilefacenet'), 'the page shows the server it talks to');
check(/(SSD CNN|HOG) face detector/.test(await text('#server-info')), 'the page says which face detector runs');
await accessible('start');

// ---- Verify: a mated pair (byte-identical photos), a non-mated pair, the FAR selector.
const fars = await page.$$eval('#verify-far option', (os) => os.map((o) => Number(o.value)));
const calibration = (await json(writable, '/calibration')).body;
check(JSON.stringify(fars) === JSON.stringify(calibration.verify.fars), `FAR selector lists the calibration's FARs (${fars})`);

async function verify(a, b, far) {
  await page.setInputFiles('#verify-a', a);
  await page.setInputFiles('#verify-b', b);
  await page.selectOption('#verify-far', String(far));
  await page.click('#verify-go');
  await page.waitForSelector('#verify-result [data-decision]', T);
  await page.waitForFunction(() => [...document.querySelectorAll('#verify-result img')].every((i) => i.complete), null, T);
  const shown = await page.getAttribute('#verify-result [data-decision]', 'data-decision');
  const api = (await json(writable, '/verify', { a: b64(a), b: b64(b), far })).body;
  const expected = api.match ? 'match' : 'no-match';
  check(shown === expected, `verify ${path.basename(a)} / ${path.basename(b)} at FAR ${far}: page says ${shown}, `
    + `the JSON API ${expected} (cosine ${api.cosine.toFixed(4)}, threshold ${api.threshold.toFixed(4)})`);
  const warnings = await page.$$eval('#verify-result .warning', (w) => w.length);
  const recaptures = [api.a, api.b].filter((q) => q.recapture).length;
  check(warnings === recaptures, `verify: ${warnings} low-quality warnings for ${recaptures} photos below the gate`);
  check(await page.$$eval('#verify-result img.crop', (i) => i.filter((x) => x.naturalWidth === 112).length) === 2,
    'verify: both aligned crops are shown');
  check(await page.$$eval('#verify-result svg.overlay circle', (c) => c.length) === 10, 'verify: five points on each photo');
  return api;
}
const mated = await verify(f.alice, f.alice_copy, 0.001);
check(mated.match === true && mated.cosine > 0.9999, 'the mated (byte-identical) pair matches with cosine 1');
const nonmated = await verify(f.alice, f.bob, 0.001);
check(nonmated.match === false, 'the non-mated pair does not match at FAR 1e-3');
const quality = await page.$$eval('#verify-result meter', (m) => m.length);
check(quality === 4, `verify: calibrated quality and OFIQ meters for both photos (${quality})`);
await shoot('verify');
await page.selectOption('#verify-far', '0.1');  // re-runs the comparison
await page.waitForSelector('#verify-result [data-far="0.1"]', T);
const loose = (await json(writable, '/verify', { a: b64(f.alice), b: b64(f.bob), far: 0.1 })).body;
check((await page.getAttribute('#verify-result [data-decision]', 'data-decision')) === (loose.match ? 'match' : 'no-match'),
  `changing the FAR to 1e-1 re-decides as the JSON API does (${loose.match ? 'match' : 'no match'})`);
await accessible('verify');

// ---- Errors: a non-image and an oversized file; the server keeps serving.
await page.setInputFiles('#verify-a', f.not_image);
await page.setInputFiles('#verify-b', f.bob);
await page.click('#verify-go');
await page.waitForSelector('#verify-error:not([hidden])', T);
const notImage = await text('#verify-error');
check(notImage.includes('not a decodable image'), `a non-image is refused with the server's message: "${notImage}"`);
await page.setInputFiles('#verify-a', f.oversized);
await page.click('#verify-go');
await page.waitForFunction(() => /too large/.test(document.querySelector('#verify-error').textContent), null, T).catch(() => {});
const tooLarge = await text('#verify-error');
check(/too large/.test(tooLarge) && /limit/.test(tooLarge), `an oversized upload is refused (413): "${tooLarge}"`);
await shoot('verify-error');
check((await json(writable, '/health')).status === 200, 'the server still answers after the bad uploads');
await verify(f.alice, f.alice_copy, 0.001);
check(!(await visible('#verify-error')), 'a good request afterwards clears the error');

// ---- Search: the enrolled identity first for its own photo; "no match" for a stranger.
await page.click('#tab-search');
async function search(file) {
  await page.setInputFiles('#search-photo', file);
  await page.selectOption('#search-far', '0.001');
  await page.click('#search-go');
  await page.waitForSelector('#search-result .hits li', T);
  const names = await page.$$eval('#search-result .hits li', (li) => li.map((x) => x.dataset.name));
  const api = (await json(writable, '/search', { image: b64(file), k: 5, far: 0.001 })).body;
  check(JSON.stringify(names) === JSON.stringify(api.hits.map((h) => h.name)),
    `search ${path.basename(file)}: the page lists the JSON API's ranking (${names.join(', ')})`);
  return { names, api };
}
const dave = await search(f.dave);
check(dave.names[0] === 'dave' && dave.api.hits[0].score > 0.9999 && dave.api.match,
  `dave's enrolled photo finds dave first with cosine 1 (${dave.api.hits[0].score.toFixed(4)})`);
await page.waitForFunction(() => [...document.querySelectorAll('#search-result img.thumb')].every((i) => i.complete && i.naturalWidth === 64), null, T)
  .catch(() => {});
const thumbs = await page.$$eval('#search-result img.thumb', (i) => i.filter((x) => x.naturalWidth === 64).length);
check(thumbs >= 5, `search: enrolled crop thumbnails shown (${thumbs})`);
await accessible('search');
await shoot('search');
const stranger = await search(f.frank);
const noMatch = await text('#search-result');
check(!stranger.api.match && noMatch.includes('No match at this FAR'), 'a stranger: "No match at this FAR"');

// ---- Enroll: refused without the token, accepted with it; a non-image listed as rejected; then found.
await page.click('#tab-enroll');
check(!(await visible('#enroll-readonly')) && !(await page.isDisabled('#enroll-name')), 'enrolment controls are on');
await page.fill('#enroll-name', 'erin');
await page.setInputFiles('#enroll-photos', [f.erin, f.not_image]);
await page.fill('#enroll-token', '');
await page.click('#enroll-go');
await page.waitForSelector('#enroll-error:not([hidden])', T);
const refused = await text('#enroll-error');
check(refused.includes('admin token'), `enrolment without the token is refused: "${refused}"`);
check((await json(writable, '/gallery')).body.identities.every((i) => i.name !== 'erin'), 'nothing was enrolled');
await page.fill('#enroll-token', cfg.token);
await page.click('#enroll-go');
await page.waitForSelector('#enroll-result .verdict', T);
const enrolled = await text('#enroll-result');
check(enrolled.includes('Enrolled 1 photo as erin'), `enrolled with the token: "${enrolled.slice(0, 80)}…"`);
check(enrolled.includes(path.basename(f.not_image)) && enrolled.includes('not a decodable image'),
  'the rejected photo is listed with its reason');
await page.waitForSelector('#gallery-list li[data-name="erin"]', T);
await page.$$eval('#gallery-list img', (imgs) => imgs.forEach((i) => { i.loading = 'eager'; }));
await page.waitForFunction(() => [...document.querySelectorAll('#gallery-list img')].every((i) => i.complete && i.naturalWidth === 64), null, T);
check((await text('#server-info')).includes('gallery of 5 identities'), 'the header follows the gallery');
await accessible('enroll');
await shoot('enroll');
await page.click('#tab-search');
const erin = await search(f.erin);
check(erin.names[0] === 'erin' && erin.api.match, 'the new identity is found first for its own photo');
await page.click('#tab-enroll');
await page.waitForSelector('#gallery-list li[data-name="erin"]', T);
await page.click('#gallery-list li[data-name="erin"] button');
await page.waitForSelector('#gallery-list li[data-name="erin"]', { state: 'detached', ...T });
check((await json(writable, '/gallery')).body.identities.every((i) => i.name !== 'erin'), 'removed from the page: gone from the gallery');

// ---- The read-only server: controls off, the server refuses.
const ro = await context.newPage();
ro.on('pageerror', (e) => scriptErrors.push(e.message));
await ready(ro, readonly.url);
await ro.click('#tab-enroll');
await ro.waitForSelector('#gallery-list li', T);
check(await ro.isVisible('#enroll-readonly'), 'read-only server: the page says so');
check(await ro.isDisabled('#enroll-name') && await ro.isDisabled('#enroll-go'), 'read-only server: enrolment controls disabled');
check(await ro.$$eval('#gallery-list button', (b) => b.every((x) => x.disabled)), 'read-only server: removal disabled');
check((await json(readonly, '/enroll', { name: 'x', images: [b64(f.erin)] }, cfg.token)).status === 403,
  'read-only server: /enroll is refused (403) even with a token');
await ro.close();

// ---- Quality explorer: many photos sorted by quality, the norm histogram, the unusable ones listed.
await page.click('#tab-quality');
const many = [...cfg.quality_photos, f.blank, f.not_image];
await page.setInputFiles('#quality-photos', many);
await page.click('#quality-go');
await page.waitForSelector('#quality-result .grid li', T);
const norms = await page.$$eval('#quality-result .grid li', (li) => li.map((x) => Number(x.dataset.norm)));
check(norms.length === cfg.quality_photos.length, `quality: ${norms.length} photos rated`);
check(norms.every((n, i) => i === 0 || n <= norms[i - 1]), 'quality: the grid is sorted best first');
check(await page.$$eval('#quality-result svg rect.bin', (r) => r.length) >= 5, 'quality: the norm histogram is drawn');
const notRated = await text('#quality-result');
check(notRated.includes('no face') && notRated.includes(path.basename(f.not_image)), 'quality: faceless and unreadable photos listed');
await accessible('quality');
await shoot('quality');

// ---- Keyboard and phone width.
await page.focus('#tab-quality');
await page.keyboard.press('ArrowLeft');
check((await page.getAttribute('#tab-enroll', 'aria-selected')) === 'true', 'arrow keys move between the tabs');
await page.click('#tab-verify');
await page.setViewportSize({ width: 390, height: 844 });
const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
check(overflow <= 0, `phone width (390 px): no sideways scrolling (${overflow} px too wide)`);
await shoot('verify-phone');

check(scriptErrors.length === 0, `no script errors (${scriptErrors.join('; ') || 'none'})`);
check(foreign.length === 0, `no request left the servers (${foreign.join(', ') || 'none'})`);
await context.close();
const codes = [await stop(writable), await stop(readonly)];
check(codes.every((c) => c === 0), `both servers stop cleanly on SIGTERM (exit ${codes})`);
clearTimeout(watchdog);
console.log(`${failures === 0 ? 'all checks passed' : `${failures} checks failed`} in ${Date.now() - t0} ms`);
if (failures) console.log(`writable server log:\n${writable.log()}`);
process.exit(failures ? 1 : 0);
