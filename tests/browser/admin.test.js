// The web admin in a real browser (headless Debian chromium through playwright-core), against the
// real `sanhook` binary and local fakes of a receiver, a DingTalk group bot and WeCom.
//
//   node admin.test.js [path/to/sanhook]     (.ci/browser.sh runs it inside a loopback-only netns)
//
// Environment: SANHOOK_BIN (else argv[2], else target/debug/sanhook under CARGO_TARGET_DIR),
// CHROMIUM (default /usr/bin/chromium), SHOTS_DIR (default target/browser-shots in the repo).
// Plain node, no test framework: the first failed expectation ends the run with a message and
// exit status 1; everything it started (sanhook, chromium, the fakes) is stopped first.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { chromium } = require('playwright-core');
const fakes = require('./fakes');

const REPO = path.resolve(__dirname, '../..');
const TARGET = process.env.CARGO_TARGET_DIR ? path.resolve(REPO, process.env.CARGO_TARGET_DIR) : path.join(REPO, 'target');
const BIN = path.resolve(process.env.SANHOOK_BIN || process.argv[2] || path.join(TARGET, 'debug/sanhook'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(process.env.SHOTS_DIR || path.join(REPO, 'target/browser-shots'));
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const STEP_MS = 10000;
// server.token: the page asks for it (the API answers 401 without it).
const TOKEN = 'browser-test-token-0123456789';

// ---------------------------------------------------------------------------------------------
// Expectations and waiting (conditions, never fixed sleeps).
class Failure extends Error {}
function expect(cond, msg) { if (!cond) throw new Failure(msg); }
async function until(probe, what, ms = STEP_MS) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { last = await probe(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Failure(`timed out after ${ms} ms waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    await new Promise((r) => setTimeout(r, 100));
  }
}
let stepName = 'start';
// For the failure report: the page (a screenshot of where it failed) and sanhook's log.
const failure = { page: null, log: null };
const t0 = Date.now();
function step(name) {
  stepName = name;
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${name}`);
}

// ---------------------------------------------------------------------------------------------
// Everything started is stopped at the end, whatever happens.
const cleanups = [];
let cleaning = false;
async function cleanup() {
  if (cleaning) return;
  cleaning = true;
  for (const f of cleanups.reverse()) { try { await f(); } catch (_) { /* best effort */ } }
}
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    interrupted = true;
    console.error(`\nbrowser test interrupted (${sig}) at step "${stepName}"`);
    cleanup().finally(() => process.exit(130));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function startSanhook(dir, fk) {
  const port = await freePort();
  const config = path.join(dir, 'config.toml');
  const q = (s) => JSON.stringify(s);
  fs.writeFileSync(config, [
    '[server]', `listen = ${q('127.0.0.1:' + port)}`, `token = ${q(TOKEN)}`,
    '[storage]', `path = ${q(path.join(dir, 'data/sanhook.redb'))}`,
    '[sanplex]', 'base_url = "http://127.0.0.1:9/zentao"',
    '[delivery]', 'retry_schedule = ["1s", "1s"]', 'timeout = "5s"', 'workers = 1',
    '[platforms]', `dingtalk = ${q(fk.dingtalk.base)}`, `wecom = ${q(fk.wecom.base)}`, 'feishu = "http://127.0.0.1:9"',
    '[[tail]]', `path = ${q(path.join(dir, 'actions/*.ndjson'))}`, 'start_at = "beginning"',
    '',
  ].join('\n'));
  const logPath = path.join(dir, 'sanhook.log');
  const log = fs.openSync(logPath, 'w');
  const child = spawn(BIN, ['serve', '--config', config], {
    stdio: ['ignore', log, log],
    env: Object.assign({}, process.env, { SANHOOK_LOG: 'info', NO_COLOR: '1' }),
  });
  let exited = null;
  child.on('exit', (code, sig) => { exited = sig || code; });
  cleanups.push(() => new Promise((r) => { if (exited !== null) return r(); child.once('exit', r); child.kill('SIGKILL'); }));
  const base = `http://127.0.0.1:${port}`;
  await until(async () => {
    if (exited !== null) throw new Failure(`sanhook exited (${exited}) before answering; its log:\n${fs.readFileSync(logPath, 'utf8').slice(-3000)}`);
    const r = await fetch(base + '/healthz').catch(() => null);
    return r && r.ok;
  }, 'sanhook to answer /healthz', 30000);
  return { base, logPath, child };
}

// The API from the test itself (no Origin header: a script, not a page).
function apiOf(base) {
  return async (method, p, body) => {
    const r = await fetch(base + p, {
      method, headers: Object.assign({ authorization: `Bearer ${TOKEN}` }, body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Failure(`${method} ${p} → ${r.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

function event(id, objectID, extra) {
  return Object.assign({
    id, objectType: 'bug', objectID, product: ',1,', actor: 'alice', actorName: 'Alice', action: 'resolved',
    date: '2026-01-05 18:35:21', objectName: `Login fails #${objectID}`,
  }, extra || {});
}

// ---------------------------------------------------------------------------------------------
async function main() {
  expect(fs.existsSync(BIN), `no sanhook binary at ${BIN} (build it: cargo build, or pass its path)`);
  expect(fs.existsSync(CHROMIUM), `no chromium at ${CHROMIUM} (apt-get install chromium)`);
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.unlinkSync(path.join(SHOTS, f));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sanhook-browser-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));

  step('fakes: receiver, DingTalk bot, WeCom');
  const receiver = await fakes.receiver();
  const dingtalk = await fakes.dingtalk();
  const wecom = await fakes.wecom({
    corpid: 'ww-test-corp', secret: 'wecom-corp-secret', agentid: 1000002,
    departments: [[1, 'Acme', 0], [2, 'R&D', 1], [3, 'Sales', 1]],
    users: [['zhangsan', '张三', [2]], ['lisi', '李四', [2, 3]], ['wangwu', '王五', [3]], ['maria', 'Maria Silva', [3]]],
  });
  for (const f of [receiver, dingtalk, wecom]) cleanups.push(() => f.close());

  // Two bad lines in a tailed file: the quarantine page then has something to show.
  fs.mkdirSync(path.join(dir, 'actions'));
  fs.writeFileSync(path.join(dir, 'actions/2026-01-05.ndjson'),
    '{"id": 7001, "objectType": "bug", "objectID": 5, "actor": "alice"\n' +
    JSON.stringify({ id: 7002, objectType: 'story', objectID: 'forty-two', actor: 'bob', action: 'opened' }) + '\n');

  step(`sanhook: ${BIN}`);
  const sanhook = await startSanhook(dir, { dingtalk, wecom });
  failure.log = sanhook.logPath;
  const api = apiOf(sanhook.base);
  const origin = sanhook.base;

  step('chromium: headless, temporary profile, no background networking');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--no-first-run',
      '--disable-sync', '--disable-default-apps', '--no-default-browser-check', '--disable-domain-reliability'],
  });
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ viewport: DESKTOP, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  failure.page = page;

  // The page must fetch nothing from elsewhere and raise no error (a CSP refusal is one).
  const problems = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:')) problems.push(`request to another origin: ${u}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  // confirm() for unbind / delete: accepted.
  page.on('dialog', (d) => d.accept());
  const noProblems = () => {
    // A 4xx the test provokes on purpose (a bad URL, no token yet, a conflict) logs "Failed to
    // load resource"; those are expected.
    const real = problems.filter((p) => !/Failed to load resource: the server responded with a status of (400|401|409)/.test(p));
    expect(real.length === 0, 'the page had problems:\n  ' + real.join('\n  '));
  };

  const shots = [];
  async function shot(name, full = true, settled = true) {
    // Nothing is loading any more (unless `settled` is false: a dialog in front of a page that
    // waits for it); the toast (it fades by itself after 3 s) is taken away rather than waited
    // for, and the page is scrolled to its top (the header is sticky).
    if (settled) await page.waitForFunction(() => ![...document.querySelectorAll('main p.muted')].some((p) => /Loading|加载中/.test(p.textContent)));
    await page.evaluate(() => { document.getElementById('toast').classList.remove('show'); window.scrollTo(0, 0); });
    const file = path.join(SHOTS, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: full, animations: 'disabled' });
    shots.push(file);
  }
  async function goto(hash, ready) {
    await page.goto(origin + '/' + hash);
    if (ready) await page.locator(ready).first().waitFor();
  }
  // No horizontal scrolling at the current width (phone layouts).
  async function fitsWidth(what) {
    const over = await page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll('main *')].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.right > w + 1 && !e.closest('pre');
      }).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className} (right ${Math.round(e.getBoundingClientRect().right)})`);
      return { scroll: document.documentElement.scrollWidth, w, wide };
    });
    expect(over.scroll <= over.w && over.wide.length === 0,
      `${what}: wider than the ${over.w} px screen (scrollWidth ${over.scroll}): ${over.wide.join(', ')}`);
  }
  // Keyboard only: Tab until the focused element matches `sel` (and has the text `text`, when
  // given), at most `max` presses.
  async function tabTo(sel, max = 60, text) {
    for (let i = 0; i < max; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(([s, tx]) => {
        const e = document.activeElement;
        return e && e.matches(s) && (tx === undefined || e.textContent.trim() === tx);
      }, [sel, text])) return;
    }
    const at = await page.evaluate(() => document.activeElement && document.activeElement.outerHTML.slice(0, 120));
    throw new Failure(`Tab did not reach ${sel} in ${max} presses (focus is on ${at})`);
  }
  // The visible focus ring: the focused element draws an outline (or a box-shadow).
  async function focusVisible(what) {
    const ring = await page.evaluate(() => {
      const e = document.activeElement;
      const s = getComputedStyle(e);
      return { outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0, shadow: s.boxShadow !== 'none', tag: e.tagName };
    });
    expect(ring.outline || ring.shadow, `${what}: the focused ${ring.tag} shows no focus ring`);
  }
  const fieldError = (field) => page.locator(`.field[data-field="${field}"] .ferr`);

  // ---- the token dialog -----------------------------------------------------------------------
  step('The token dialog (server.token is set), answered with the keyboard');
  await goto('#/webhooks', '#token-dialog[open]');
  expect(await page.evaluate(() => document.activeElement.id) === 'token-input', 'the token dialog does not focus its input');
  await shot('token-dialog', false, false);
  // A wrong token first: the dialog comes back and says it was refused.
  await page.keyboard.type('not-the-token');
  await page.keyboard.press('Enter');
  await page.locator('#token-refused').waitFor();
  await page.locator('#token-dialog[open]').waitFor();
  await shot('token-dialog-refused', false, false);
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await until(async () => !(await page.locator('#token-dialog').evaluate((d) => d.open)), 'the token dialog to close');
  await page.locator('#forget').waitFor();

  // ---- Webhooks: empty list -------------------------------------------------------------------
  step('Webhooks: the empty list');
  await goto('#/webhooks', 'main h1');
  // The footer's link to the OpenAPI description (served without a token).
  const oaHref = await page.locator('footer a', { hasText: 'API description (OpenAPI)' }).getAttribute('href');
  const oa = await (await fetch(origin + oaHref)).json();
  expect(/^3\.1/.test(oa.openapi || ''), `the footer's OpenAPI link gives ${JSON.stringify(oa).slice(0, 200)}`);
  await page.getByRole('link', { name: 'New webhook' }).first().waitFor();
  await page.locator('main .empty', { hasText: 'No webhooks yet' }).waitFor();
  await shot('webhooks-empty');

  // ---- a `default` webhook through the form, with a field error corrected ---------------------
  step('New default webhook: a bad URL is refused beside its field, then corrected');
  await page.getByRole('link', { name: 'New webhook' }).first().click();
  await page.waitForURL(/#\/webhooks\/new$/);
  await page.locator('#f-name').fill('CI receiver');
  expect(await page.locator('#f-type').inputValue() === 'default', 'a new webhook is not of type default');
  await page.locator('#f-url').fill('receiver.local/hook');
  const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  await page.locator('#f-secret').fill(whsec);
  await page.locator('#f-products').fill('1');
  // The live preview (POST /api/v1/preview, nothing saved): the refused URL as a sentence beside
  // it, and the URL field (edited) marked, before Save is pressed.
  await page.locator('#preview-out .preview-error', { hasText: 'URL' }).waitFor();
  await fieldError('url').filter({ hasText: /http/ }).waitFor();
  expect(await page.locator('#f-url').evaluate((e) => e.classList.contains('invalid')), 'the preview does not mark the refused URL');
  await shot('webhook-new-preview-error');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('main .error-box', { hasText: 'Not saved' }).waitFor();
  await fieldError('url').filter({ hasText: /http/ }).waitFor();
  expect(await page.locator('#f-url').evaluate((e) => e.classList.contains('invalid') && document.activeElement === e),
    'the refused URL field is neither marked nor focused');
  expect(await page.locator('.ferr:not(:empty)').count() === 1, 'more than one field shows an error');
  await shot('webhook-new-field-error');
  await page.locator('#f-url').fill(receiver.url);
  // Corrected: the preview shows the request the form would send (not saved yet).
  await page.locator('#preview-out .mono', { hasText: receiver.url }).waitFor();
  await page.locator('#preview-out pre.body', { hasText: '"objectType": "bug"' }).waitFor();
  expect(await page.locator('#f-url').evaluate((e) => !e.classList.contains('invalid')) && await fieldError('url').textContent() === '',
    'the URL is still marked after the preview accepted it');
  expect((await api('GET', '/api/v1/webhooks')).length === 0, 'the preview stored a webhook');
  receiver.state.secret = whsec;
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/#\/webhooks\/\d+$/);
  const ciId = Number(/#\/webhooks\/(\d+)$/.exec(page.url())[1]);
  await page.locator('main h1', { hasText: 'CI receiver' }).waitFor();
  expect(await fieldError('url').textContent() === '', 'the URL error is still shown after a good save');
  const savedCi = await api('GET', `/api/v1/webhooks/${ciId}`);
  expect(savedCi.url === receiver.url && savedCi.secret === '******' && savedCi.products.join() === '1',
    `the saved webhook is not what the form said: ${JSON.stringify(savedCi)}`);

  step('Send test to the local receiver (signed)');
  let from = receiver.requests.length;
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.locator('.verdict.ok').waitFor();
  const tested = await receiver.waitFor((r) => r.path === '/hook', 'test request', STEP_MS, from);
  expect(tested.status === 200, `the receiver refused the test (${tested.status}: ${JSON.stringify(tested.answer)}), signature headers ${tested.headers['webhook-signature']}`);
  expect(tested.json && tested.json.objectType === 'bug' && /Alice resolved/.test(tested.json.text), `test payload: ${tested.body}`);
  // An edited body template shows in the live preview before it is saved (the secret stays
  // masked: with the id, ****** stands for the stored one).
  await page.locator('#preview-out pre.body', { hasText: '"objectType"' }).waitFor();
  await page.locator('#f-template-body').fill('{"said": "{{ actorName }} did {{ action }} on #{{ objectID }}"}');
  await page.locator('#preview-out pre.body', { hasText: '"said": "Alice did resolved on #12"' }).waitFor();
  await page.locator('#preview-out pre.headers', { hasText: 'webhook-signature' }).waitFor();
  expect(await page.locator('main .hint.warn').isVisible(), 'no note that Send test sends the saved webhook');
  expect(!(await api('GET', `/api/v1/webhooks/${ciId}`)).template, 'the preview saved the template');
  await shot('webhook-edit-live-preview');
  // A template that does not parse: the field is marked, the sentence names it.
  await page.locator('#f-template-body').fill('{"said": "{{ actorName "}');
  await page.locator('#preview-out .preview-error', { hasText: 'Body template' }).waitFor();
  expect(await page.locator('#f-template-body').evaluate((e) => e.classList.contains('invalid')), 'the refused template is not marked');
  await page.locator('#f-template-body').fill('');
  await page.locator('#preview-out pre.body', { hasText: 'Alice resolved' }).waitFor();
  expect(await page.locator('#f-template-body').evaluate((e) => !e.classList.contains('invalid')), 'the emptied template is still marked');

  // ---- a `dinggroup` webhook with the keyboard only -------------------------------------------
  step('New dinggroup webhook, keyboard only (Tab / typing / arrows / Enter)');
  const dingUrl = dingtalk.bot('ding-token-1', 'SEC0123456789abcdef0123456789abcdef');
  await goto('#/webhooks', 'main table');
  await page.locator('body').focus();
  await tabTo('main a[href="#/webhooks/new"]');
  await focusVisible('the New webhook link');
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/webhooks\/new$/);
  await page.locator('#f-name').waitFor();
  await tabTo('#f-name');
  await focusVisible('the name field');
  await page.keyboard.type('Dev group');
  await tabTo('#f-type');
  await page.keyboard.press('ArrowDown');
  expect(await page.locator('#f-type').inputValue() === 'dinggroup', 'ArrowDown on the type did not choose dinggroup');
  await tabTo('#f-url');
  await page.keyboard.type(dingUrl);
  await tabTo('#f-secret');
  await page.keyboard.type('SEC0123456789abcdef0123456789abcdef');
  expect(await page.locator('#f-sendType').isDisabled(), 'a dinggroup webhook offers async');
  await focusVisible('the secret field');
  await shot('webhook-new-dinggroup-keyboard', false);
  await page.keyboard.press('Enter');
  await page.waitForURL(/#\/webhooks\/\d+$/);
  const dingId = Number(/#\/webhooks\/(\d+)$/.exec(page.url())[1]);
  await page.locator('main h1', { hasText: 'Dev group' }).waitFor();
  from = dingtalk.requests.length;
  await page.locator('main').focus();
  await tabTo('main button', 80, 'Send test');
  await focusVisible('the Send test button');
  await page.keyboard.press('Enter');
  await page.locator('.verdict.ok').waitFor();
  const dingSent = await dingtalk.waitFor((r) => r.path === '/robot/send', 'bot message', STEP_MS, from);
  expect(dingSent.answer.errcode === 0, `the DingTalk fake refused the test: ${JSON.stringify(dingSent.answer)}`);
  await shot('webhook-dinggroup-test-sent');

  // ---- a `wechatuser` webhook (mouse) ---------------------------------------------------------
  step('New wechatuser webhook');
  await goto('#/webhooks/new', '#f-name');
  await page.locator('#f-name').fill('WeCom app');
  await page.locator('#f-type').selectOption('wechatuser');
  await page.locator('#f-wechatCorpId').fill('ww-test-corp');
  await page.locator('#f-wechatCorpSecret').fill('wecom-corp-secret');
  await page.locator('#f-wechatAgentId').fill('1000002');
  // Its own trigger list: the matrix opens in the form (then back to the global settings).
  await page.getByLabel('Own list for this webhook').check();
  await page.locator('form .matrix input[data-type="bug"]').first().waitFor();
  await shot('webhook-new-wechatuser-own-triggers');
  await page.getByLabel('Global trigger settings').check();
  expect(await page.locator('form .matrix').isHidden(), 'the matrix stays after choosing the global settings');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(/#\/webhooks\/\d+$/);
  const wcId = Number(/#\/webhooks\/(\d+)$/.exec(page.url())[1]);

  step('Webhooks: the list with three webhooks');
  await goto('#/webhooks', 'main table');
  expect(await page.locator('main tbody tr').count() === 3, 'the list does not show three webhooks');
  await shot('webhooks-list');

  // ---- trigger settings -----------------------------------------------------------------------
  step('Trigger settings');
  await goto('#/triggers', '.matrix');
  const bugResolved = page.locator('.matrix input[data-type="bug"][data-action="resolved"]');
  expect(await bugResolved.isChecked(), 'bug/resolved is not a default trigger');
  await shot('triggers');
  await page.locator('.matrix input[data-type="todo"][data-action="edited"]').uncheck();
  await page.getByRole('button', { name: 'Save' }).click();
  await until(async () => !((await api('GET', '/api/v1/settings/triggers')).todo || []).includes('edited'), 'todo/edited to leave the saved triggers');
  expect((await api('GET', '/api/v1/settings/triggers')).bug.includes('resolved'), 'saving the matrix dropped bug/resolved');

  // ---- an event, its deliveries in the log ----------------------------------------------------
  step('An event: its deliveries in the log');
  from = receiver.requests.length;
  const posted = await api('POST', '/api/v1/events', event(1001, 101, { toList: ['bob'] }));
  expect(posted.accepted === 1 && posted.deliveries === 3, `POST /events: ${JSON.stringify(posted)}`);
  await receiver.waitFor((r) => r.json && r.json.objectID === '101', 'the event at the receiver', STEP_MS, from);
  await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${ciId}&status=delivered`)).length === 1, 'the delivery to be delivered');
  await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${dingId}&status=delivered`)).length === 1, 'the bot delivery to be delivered');
  await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${wcId}&status=skipped`)).length === 1, 'the app delivery (nobody bound) to be skipped');
  await goto('#/deliveries', 'main tbody tr');
  expect(await page.locator('main tbody tr').count() === 3, 'the log does not list the three deliveries');
  expect(await page.locator('main tbody .badge.delivered').count() === 2, 'the log does not show two delivered');
  await shot('deliveries');
  const ciDelivery = (await api('GET', `/api/v1/deliveries?webhook=${ciId}`))[0];
  await page.locator(`main a[href="#/deliveries/${ciDelivery.id}"]`).click();
  await page.locator('main h2', { hasText: 'Request' }).waitFor();
  await page.locator('main pre', { hasText: 'webhook-signature' }).waitFor();
  await shot('delivery-detail-delivered');

  // ---- a dead delivery, retried ---------------------------------------------------------------
  step('A dead delivery (410), retried from its detail');
  receiver.state.mode = 410;
  await api('POST', '/api/v1/events', event(1002, 102));
  const dead = await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${ciId}&status=dead`))[0], 'a dead delivery');
  await goto('#/deliveries', 'main tbody tr');
  await page.locator('#d-status').selectOption('dead');
  await page.waitForURL(/status=dead/);
  await page.locator('main tbody .badge.dead').first().waitFor();
  expect(await page.locator('main tbody tr').count() === 1, 'the dead filter does not show exactly the dead one');
  await shot('deliveries-dead');
  await page.locator(`main a[href="#/deliveries/${dead.id}"]`).click();
  await page.locator('main .badge.dead').waitFor();
  await page.locator('main', { hasText: '410' }).waitFor();
  // Its attempts: the 410 row in the history table.
  await page.locator('#history tbody tr', { hasText: '410' }).first().waitFor();
  expect(await page.locator('#history tbody tr').count() === dead.attempts, `the history does not list the ${dead.attempts} attempt(s)`);
  await shot('delivery-detail-dead');
  receiver.state.mode = 200;
  from = receiver.requests.length;
  await page.getByRole('button', { name: 'Retry' }).click();
  await receiver.waitFor((r) => r.json && r.json.objectID === '102' && r.status === 200, 'the retried delivery', STEP_MS, from);
  await page.locator('main .badge.delivered').waitFor({ timeout: 15000 });
  await until(async () => (await page.locator('#history tbody tr').count()) === dead.attempts + 1, 'the retry in the history');
  expect(/410/.test(await page.locator('#history tbody tr').first().textContent()) && /200/.test(await page.locator('#history tbody tr').last().textContent()),
    `the history is not 410 then 200: ${await page.locator('#history tbody').textContent()}`);
  await shot('delivery-detail-retried');

  // ---- binding from the WeCom directory -------------------------------------------------------
  step('Binding: the WeCom directory, bind, a conflict, only unbound');
  await goto(`#/bindings/${wcId}`, '#b-directory td.mono');
  const row = (userid) => page.locator('#b-directory tbody tr', { has: page.locator('td.mono', { hasText: new RegExp(`^${userid}$`) }) });
  await row('zhangsan').waitFor();
  // Department names (departmentNames), not ids.
  expect(/R&D, Sales/.test(await row('lisi').textContent()), `the directory shows no department names for lisi: ${await row('lisi').textContent()}`);
  expect(await page.locator('#b-directory th', { hasText: /^Departments$/ }).count() === 1, 'the directory column is not "Departments"');
  await shot('bindings-directory');
  await row('zhangsan').locator('input').fill('bob');
  await row('zhangsan').getByRole('button', { name: 'Bind' }).click();
  await page.locator('main', { hasText: 'bound to bob' }).waitFor();
  let bindings = await api('GET', `/api/v1/webhooks/${wcId}/bindings`);
  expect(bindings.length === 1 && bindings[0].account === 'bob' && bindings[0].userid === 'zhangsan', `bindings: ${JSON.stringify(bindings)}`);
  // Another account for zhangsan while bob holds it: a 409 as a sentence naming both.
  await row('zhangsan').locator('input').fill('carol');
  await row('zhangsan').getByRole('button', { name: 'Re-bind' }).click();
  await page.locator('main .error-box', { hasText: 'already bound to account bob' }).waitFor();
  const conflict = await page.locator('main .error-box').textContent();
  expect(/carol/.test(conflict) && !/\{|"error"/.test(conflict), `the conflict is not a sentence: ${conflict}`);
  await shot('bindings-conflict');
  await page.locator('#b-unbound').check();
  await until(async () => (await row('zhangsan').count()) === 0 && (await row('lisi').count()) === 1, 'only unbound users in the directory');
  await page.locator('#b-unbound').uncheck();
  await row('zhangsan').waitFor();

  step('An event to bob reaches zhangsan through WeCom');
  from = wecom.requests.length;
  await api('POST', '/api/v1/events', event(1003, 103, { toList: ['bob'] }));
  const sent = await wecom.waitFor((r) => r.path === '/cgi-bin/message/send', 'an app message', STEP_MS, from);
  expect(sent.json.touser === 'zhangsan' && sent.answer.errcode === 0, `WeCom got ${sent.body} → ${JSON.stringify(sent.answer)}`);
  const wcDelivery = await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${wcId}&status=delivered`))[0], 'the app delivery');
  await goto(`#/deliveries/${wcDelivery.id}`, 'main .badge.delivered');
  await page.locator('main h2', { hasText: 'Recipients' }).waitFor();
  await shot('delivery-detail-recipients');

  step('Send test of the app webhook to a bound account');
  await goto(`#/webhooks/${wcId}`, '#f-testTo');
  await page.locator('#f-testTo option[value="bob"]').waitFor({ state: 'attached' });
  expect(await page.locator('#f-testTo').inputValue() === 'bob', 'the test is not offered to the bound account');
  from = wecom.requests.length;
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.locator('.verdict.ok').waitFor();
  const appTest = await wecom.waitFor((r) => r.path === '/cgi-bin/message/send', 'the test app message', STEP_MS, from);
  expect(appTest.json.touser === 'zhangsan', `the test went to ${appTest.json.touser}`);
  await page.locator('main pre', { hasText: '"touser": "zhangsan"' }).first().waitFor();
  await shot('webhook-wechatuser-test-sent');

  // ---- quarantine and dashboard ---------------------------------------------------------------
  step('Quarantine');
  await until(async () => (await api('GET', '/api/v1/quarantine')).length === 2, 'the two bad tailed lines in the quarantine', 15000);
  await goto('#/quarantine', 'main tbody tr');
  expect(await page.locator('main tbody tr').count() === 2, 'the quarantine does not list two entries');
  await page.locator('main tbody tr details summary').first().click();
  await shot('quarantine');

  step('Dashboard, with a webhook failing now (the receiver answers 500)');
  receiver.state.mode = 500;
  await api('POST', '/api/v1/events', event(1004, 104));
  const failed = await until(async () => (await api('GET', `/api/v1/deliveries?webhook=${ciId}&status=dead`))[0], 'the 500s to end dead (retry_schedule 1s, 1s)', 15000);
  expect(failed.attempts === 3 && /500/.test(failed.lastError), `the failing delivery: ${JSON.stringify(failed)}`);
  // Its three attempts in its history: two retrying, the last one giving up.
  await goto(`#/deliveries/${failed.id}`, '#history tbody tr');
  expect(await page.locator('#history tbody tr', { hasText: '500' }).count() === 3, `the history of the 500s: ${await page.locator('#history').textContent()}`);
  await shot('delivery-detail-dead-after-retries');
  await goto('#/dashboard', '.cards');
  await page.locator('.chart svg rect.delivered').first().waitFor();
  // GET /stats/minutes: bars for the deliveries of this run, the totals in the chart's label.
  const label = await page.locator('.chart svg').getAttribute('aria-label');
  expect(/delivered [1-9]/.test(label) && /dead [1-9]/.test(label) && /retrying [1-9]/.test(label), `the chart's label: ${label}`);
  expect(await page.locator('.chart svg rect').count() >= 3, 'the chart has fewer than three bars');
  await page.locator('.chart p', { hasText: 'since the server started' }).waitFor();
  await page.locator('main section table a', { hasText: 'CI receiver' }).waitFor();
  await shot('dashboard');

  // ---- phone width ----------------------------------------------------------------------------
  step('Phone width (390×844): no sideways scrolling');
  await page.setViewportSize(PHONE);
  for (const [hash, ready, name] of [
    ['#/webhooks', 'main tbody tr', 'phone-webhooks'],
    [`#/webhooks/${ciId}`, '#f-url', 'phone-webhook-edit'],
    ['#/deliveries', 'main tbody tr', 'phone-deliveries'],
    [`#/deliveries/${dead.id}`, 'main .badge', 'phone-delivery-detail'],
    [`#/bindings/${wcId}`, 'main td.mono', 'phone-bindings'],
    ['#/triggers', '.matrix', 'phone-triggers'],
    ['#/dashboard', '.cards', 'phone-dashboard'],
  ]) {
    await goto(hash, ready);
    await fitsWidth(name);
    await shot(name);
  }
  await page.setViewportSize(DESKTOP);

  // ---- 简体中文 ---------------------------------------------------------------------------------
  step('Language switch: 简体中文 on every page, no English left');
  await goto('#/webhooks', 'main tbody tr');
  await page.locator('#lang').selectOption('zh-cn');
  await page.locator('#nav a', { hasText: '发送日志' }).waitFor();
  await page.locator('main h1', { hasText: 'Webhook' }).waitFor();
  expect(await page.evaluate(() => document.documentElement.lang) === 'zh-CN', 'the page language is not zh-CN');
  // English UI strings (the dictionary's values) left on a Chinese page.
  const untranslated = () => page.evaluate(() => {
    const zh = I18N['zh-cn'];
    const en = Object.entries(I18N.en).filter(([k, v]) => zh[k] !== v && /[A-Za-z]{3,}\s+[A-Za-z]{3,}/.test(v) && !/[{}]/.test(v)).map(([, v]) => v);
    const text = document.body.innerText;
    return en.filter((v) => text.includes(v));
  });
  for (const [hash, ready, name] of [
    ['#/webhooks', 'main tbody tr', 'zh-webhooks'],
    [`#/webhooks/${dingId}`, '#f-url', 'zh-webhook-edit'],
    ['#/webhooks/new', '#preview-out .preview-error', 'zh-webhook-new'],
    ['#/triggers', '.matrix', 'zh-triggers'],
    [`#/bindings/${wcId}`, 'main td.mono', 'zh-bindings'],
    ['#/deliveries', 'main tbody tr', 'zh-deliveries'],
    [`#/deliveries/${dead.id}`, 'main .badge', 'zh-delivery-detail'],
    ['#/quarantine', 'main tbody tr', 'zh-quarantine'],
    ['#/dashboard', '.cards', 'zh-dashboard'],
  ]) {
    await goto(hash, ready);
    const left = await untranslated();
    expect(left.length === 0, `${name}: English left after switching to 简体中文: ${left.join(' | ')}`);
    await shot(name);
  }
  expect(await page.evaluate(() => localStorage.getItem('sanhook.lang')) === 'zh-cn', 'the language is not kept');
  await page.locator('#lang').selectOption('en');
  await page.locator('#nav a', { hasText: 'Delivery log' }).waitFor();

  step('Recover: the dead deliveries of a webhook since a time, re-queued and delivered');
  receiver.state.mode = 200;
  from = receiver.requests.length;
  // Right after the language switch re-rendered the dashboard: its late answers must not paint
  // the dashboard over the delivery log (they did, before api() learnt to drop stale answers).
  await goto('#/deliveries?status=dead', 'main tbody .badge.dead');
  expect(await page.locator('main h1').textContent() === 'Delivery log', 'another page painted over the delivery log');
  expect(await page.locator('details.recover').evaluate((d) => d.open), 'the Recover panel is not open on the dead filter');
  await page.locator('#r-webhook').selectOption(String(ciId));
  await page.locator('details.recover button', { hasText: 'Recover' }).click();
  await page.locator('details.recover .verdict.ok', { hasText: '1 delivery re-queued' }).waitFor();
  await page.locator('main p.empty', { hasText: 'No delivery matches' }).waitFor();
  expect(await page.locator('#r-webhook').inputValue() === String(ciId), 'the Recover webhook is not kept after the reload');
  await shot('deliveries-recovered');
  await receiver.waitFor((r) => r.json && r.json.objectID === '104' && r.status === 200, 'the recovered delivery', STEP_MS, from);
  await until(async () => (await api('GET', `/api/v1/deliveries/${failed.id}`)).status === 'delivered', 'the recovered delivery to be delivered');

  step('Forget token: the next API call asks again');
  await page.locator('#forget').click();
  await page.locator('#forget').waitFor({ state: 'hidden' });
  await goto('#/webhooks', '#token-dialog[open]');

  noProblems();
  return shots;
}

main().then(async (shots) => {
  await cleanup();
  console.log(`\nbrowser test passed in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${shots.length} screenshots in ${SHOTS}:`);
  for (const s of shots) console.log('  ' + path.basename(s));
  process.exit(0);
}, async (e) => {
  if (interrupted) return; // the signal handler ends the run
  console.error(`\nbrowser test FAILED at step "${stepName}": ${e instanceof Failure ? e.message : e.stack || e}`);
  if (failure.page) {
    const file = path.join(SHOTS, 'FAILED.png');
    try { await failure.page.screenshot({ path: file, fullPage: true, timeout: 5000 }); console.error(`the page when it failed: ${file} (${failure.page.url()})`); } catch (_) { /* closed */ }
  }
  if (failure.log) {
    try { console.error(`sanhook's log (last 40 lines):\n${fs.readFileSync(failure.log, 'utf8').trimEnd().split('\n').slice(-40).join('\n')}`); } catch (_) { /* gone */ }
  }
  await cleanup();
  process.exit(1);
});
