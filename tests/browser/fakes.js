// Local fakes for the browser test, on 127.0.0.1 only (node's http module, nothing else):
// - a receiver for `default` webhooks that answers what the test commands (200, 410, 500) and
//   checks the Standard Webhooks signature when given the secret;
// - a DingTalk group bot (`/robot/send`) that checks the access_token, the signature
//   (docs/platforms.md: HMAC-SHA256 keyed by the secret over "{ms}\n{secret}", Base64, URL-encoded
//   once, 1 hour of skew) and the markdown body, and answers errcode 0 or 310000 / 300001;
// - WeCom (`[platforms] wecom`): gettoken, department/list, user/simplelist and message/send, with
//   the token, agent id and body checked as the real one does.
// Each records what it was sent, so the test can wait for a request and look at it.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');

// A server on 127.0.0.1:0 whose handler gets (req, url, body, json); resolves with its base URL.
function serve(name, handler) {
  const requests = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://127.0.0.1');
      let json = null;
      try { json = body ? JSON.parse(body) : null; } catch (_) { json = undefined; }
      let status = 200;
      let answer;
      try {
        [status, answer] = handler(req, url, body, json);
      } catch (e) {
        status = 500; answer = { error: `${name} fake: ${e.message}` };
      }
      const rec = { method: req.method, path: url.pathname, query: url.searchParams, headers: req.headers, body, json, status, answer };
      requests.push(rec);
      for (const w of waiters.splice(0)) w();
      const out = typeof answer === 'string' ? answer : JSON.stringify(answer);
      res.writeHead(status, { 'content-type': typeof answer === 'string' ? 'text/plain' : 'application/json' });
      res.end(out);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const base = `http://127.0.0.1:${server.address().port}`;
      resolve({
        name, base, server, requests,
        // Resolves with the first request (from `from` on) that `pred` accepts; rejects after `ms`.
        waitFor(pred, what, ms = 15000, from = 0) {
          return new Promise((res2, rej2) => {
            const timer = setTimeout(() => rej2(new Error(`${name} fake: no ${what} within ${ms} ms; got ${requests.length} request(s): ` +
              requests.map((r) => `${r.method} ${r.path} → ${r.status}`).join(', '))), ms);
            const check = () => {
              const hit = requests.slice(from).find(pred);
              if (hit) { clearTimeout(timer); res2(hit); } else waiters.push(check);
            };
            check();
          });
        },
        close() { return new Promise((r) => server.close(() => r())); },
      });
    });
  });
}

// The `default` receiver. `mode` is the status it answers; `secret` (whsec_…) makes it check
// webhook-signature and answer 401 on a mismatch.
async function receiver() {
  const state = { mode: 200, secret: '' };
  const fake = await serve('receiver', (req, url, body) => {
    if (state.secret) {
      const id = req.headers['webhook-id'];
      const ts = req.headers['webhook-timestamp'];
      const sig = req.headers['webhook-signature'] || '';
      const key = state.secret.startsWith('whsec_') ? Buffer.from(state.secret.slice(6), 'base64') : Buffer.from(state.secret);
      const want = 'v1,' + crypto.createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
      if (!id || !ts || !sig.split(' ').includes(want)) return [401, { error: 'bad signature' }];
    }
    if (state.mode === 410) return [410, 'gone'];
    if (state.mode === 500) return [500, 'receiver down (test)'];
    return [200, { ok: true }];
  });
  return Object.assign(fake, { state, url: fake.base + '/hook' });
}

// A DingTalk group bot: bots maps access_token → secret ('' = unsigned).
async function dingtalk() {
  const bots = new Map();
  const fake = await serve('dingtalk', (req, url, body, json) => {
    if (req.method !== 'POST' || url.pathname !== '/robot/send') return [404, { errcode: 404, errmsg: 'not found' }];
    const token = url.searchParams.get('access_token');
    if (!bots.has(token)) return [200, { errcode: 300001, errmsg: 'token is not exist' }];
    const secret = bots.get(token);
    if (secret) {
      const ts = url.searchParams.get('timestamp');
      // The raw query: the sign must be URL-encoded exactly once.
      const rawSign = /[?&]sign=([^&]*)/.exec(req.url);
      if (!ts || !rawSign) return [200, { errcode: 310000, errmsg: 'sign not match (missing timestamp or sign)' }];
      if (Math.abs(Date.now() - Number(ts)) > 3600e3) return [200, { errcode: 310000, errmsg: 'invalid timestamp' }];
      const want = crypto.createHmac('sha256', secret).update(`${ts}\n${secret}`).digest('base64');
      // Encoded once: no raw + / = (a + would read as a space), and one decoding gives the Base64.
      if (/[+/=]/.test(rawSign[1]) || decodeURIComponent(rawSign[1]) !== want) return [200, { errcode: 310000, errmsg: 'sign not match' }];
    }
    if (!json || json.msgtype !== 'markdown' || !json.markdown || !json.markdown.title || !json.markdown.text) {
      return [200, { errcode: 40035, errmsg: 'missing markdown title or text' }];
    }
    if (Buffer.byteLength(body) > 20000) return [200, { errcode: 460101, errmsg: 'message too large' }];
    return [200, { errcode: 0, errmsg: 'ok' }];
  });
  return Object.assign(fake, {
    bot(token, secret) { bots.set(token, secret || ''); return `${fake.base}/robot/send?access_token=${token}`; },
  });
}

// WeCom: one app (corpid, secret, agentid) and a directory of departments and users.
async function wecom({ corpid, secret, agentid, departments, users }) {
  const tokens = new Set();
  let n = 0;
  const withToken = (url, f) => (tokens.has(url.searchParams.get('access_token'))
    ? f() : [200, { errcode: 40014, errmsg: 'invalid access_token' }]);
  const fake = await serve('wecom', (req, url, body, json) => {
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /cgi-bin/gettoken') {
      if (url.searchParams.get('corpid') !== corpid) return [200, { errcode: 40013, errmsg: 'invalid corpid' }];
      if (url.searchParams.get('corpsecret') !== secret) return [200, { errcode: 40001, errmsg: 'invalid credential' }];
      const tok = `wecom-token-${++n}`;
      tokens.add(tok);
      return [200, { errcode: 0, errmsg: 'ok', access_token: tok, expires_in: 7200 }];
    }
    if (route === 'GET /cgi-bin/department/list') {
      return withToken(url, () => [200, { errcode: 0, errmsg: 'ok', department: departments.map(([id, name, parentid]) => ({ id, name, parentid })) }]);
    }
    if (route === 'GET /cgi-bin/user/simplelist') {
      return withToken(url, () => {
        const d = Number(url.searchParams.get('department_id'));
        if (!departments.some(([id]) => id === d)) return [200, { errcode: 60003, errmsg: 'department not found' }];
        const list = users.filter(([, , ds]) => ds.includes(d)).map(([userid, name, ds]) => ({ userid, name, department: ds }));
        return [200, { errcode: 0, errmsg: 'ok', userlist: list }];
      });
    }
    if (route === 'POST /cgi-bin/message/send') {
      return withToken(url, () => {
        if (!json || json.agentid !== agentid) return [200, { errcode: 40056, errmsg: 'invalid agentid' }];
        if (json.msgtype !== 'markdown' || !json.markdown || !json.markdown.content) return [200, { errcode: 40035, errmsg: 'invalid markdown' }];
        const to = String(json.touser || '').split('|').filter(Boolean);
        const known = new Set(users.map(([u]) => u));
        const invalid = to.filter((u) => !known.has(u));
        if (to.length === 0 || invalid.length === to.length) return [200, { errcode: 81013, errmsg: 'user & party & tag all invalid' }];
        return [200, { errcode: 0, errmsg: 'ok', invaliduser: invalid.join('|'), msgid: `msg-${Date.now()}` }];
      });
    }
    return [404, { errcode: 404, errmsg: 'not found' }];
  });
  return fake;
}

module.exports = { receiver, dingtalk, wecom };
