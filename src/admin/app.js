// sanhook web admin: plain JavaScript, no framework, no build step; served by the binary itself
// (src/admin/mod.rs) under a strict Content-Security-Policy, so no inline code and no innerHTML
// with data: every element is built with el() below.
//
// It talks to the HTTP API (docs/reference.md §4) from the same origin, with
// `Content-Type: application/json` on every body (the API's `browsers` check) and, once an API
// call answers 401, `Authorization: Bearer <token>` with the token kept in sessionStorage (this tab
// only).
'use strict';

// ---------------------------------------------------------------------------------------------
// i18n: one dictionary, English and Simplified Chinese. `{0}`, `{1}` are arguments.
const I18N = {
  en: {
    language: 'Language', forgetToken: 'Forget token', tokenTitle: 'API token',
    openapi: 'API description (OpenAPI)',
    tokenAsk: 'This server needs its API token (server.token in config.toml).', token: 'Token',
    tokenKept: 'Kept for this browser tab only.', ok: 'OK', tokenForgotten: 'Token forgotten',
    tokenRefused: 'The server refused that token: check server.token and type it again.',
    navDashboard: 'Dashboard', navWebhooks: 'Webhooks', navTriggers: 'Trigger settings',
    navBindings: 'Binding', navDeliveries: 'Delivery log', navQuarantine: 'Quarantine',
    loading: 'Loading…', none: 'Nothing here yet.', save: 'Save', saved: 'Saved', cancel: 'Cancel',
    edit: 'Edit', delete: 'Delete', create: 'New webhook', back: 'Back', refresh: 'Refresh',
    name: 'Name', type: 'Type', target: 'Target', enabled: 'Enabled', sendType: 'Send type',
    pendingDead: 'Pending / dead', lastSuccess: 'Last success', lastError: 'Last error',
    actions: 'Actions', never: 'never', deliveries: 'Deliveries', bindings: 'Bindings',
    confirmDelete: 'Delete webhook "{0}"? Its pending deliveries end skipped.',
    deleted: 'Deleted', enabledOn: 'Enabled', enabledOff: 'Disabled',
    disabledReason: 'Disabled by sanhook: {0}',
    t_default: 'Generic webhook (JSON)', t_dinggroup: 'DingTalk group bot', t_dinguser: 'DingTalk work notice',
    t_wechatgroup: 'WeCom group bot', t_wechatuser: 'WeCom app message', t_feishugroup: 'Feishu / Lark group bot',
    t_feishuuser: 'Feishu / Lark app message',
    newWebhook: 'New webhook', editWebhook: 'Webhook {0}', f_name: 'Name', f_type: 'Type', f_url: 'URL',
    f_secret: 'Secret', f_secretHint: 'Write-only: ****** keeps the stored value.',
    f_secretDefaultHint: 'Optional: signs each request per Standard Webhooks (whsec_… or raw).',
    f_agentId: 'Agent ID', f_appKey: 'AppKey', f_appSecret: 'AppSecret', f_wechatCorpId: 'Corp ID',
    f_wechatCorpSecret: 'Corp secret', f_wechatAgentId: 'Agent ID', f_feishuAppId: 'App ID',
    f_feishuAppSecret: 'App secret', f_apiBase: 'API base', f_apiBaseHint: 'Optional: overrides [platforms] for this webhook (e.g. Lark beside Feishu).',
    f_domain: 'Domain', f_domainHint: 'Base URL for object links in messages.', f_sendType: 'Send type',
    f_sendSync: 'sync (at once)', f_sendAsync: 'async (at the next flush)', f_dingSync: 'DingTalk group bots are always sync.',
    f_products: 'Products', f_executions: 'Executions', f_idsHint: 'IDs separated by commas; empty = all.',
    f_params: 'Payload keys', f_contentType: 'Content-Type', f_enabled: 'Enabled', f_desc: 'Description',
    f_details: 'Details', f_detailsHint: 'Append the changes and the comment to the message.',
    f_ignoreActors: 'Ignore actors', f_ignoreHint: 'Accounts separated by commas, e.g. system.',
    f_triggers: 'Triggers', f_global: 'Global trigger settings', f_own: 'Own list for this webhook',
    f_template: 'Template', f_tplTitle: 'Title template', f_tplText: 'Text template', f_tplBody: 'Body template (JSON)',
    f_tplHint: 'MiniJinja; empty = the built-in message. Variables: objectType, objectID, objectName, actor, actorName, action, label, typeLabel, url, changes, text, lang…',
    preview: 'Preview', previewLive: 'Live preview of the form as it is now, saved or not (the sample event unless you give one). Nothing is sent.',
    previewNeedsSave: 'Send test sends the saved webhook: save it first.', testSaved: 'Send test sends the saved webhook: save your changes first.',
    previewField: 'No preview yet: the field “{0}” is not accepted: {1}', previewFail: 'No preview: {0}',
    eventJson: 'Event (JSON, optional)', eventHint: 'Empty: the sample event (Alice resolving bug 12). App types need a toList of bound accounts.',
    sendTest: 'Send test', testing: 'Sending…', testOk: 'Delivered: the receiver accepted the message.',
    testFail: 'Not delivered ({0}).', response: 'Response', request: 'Request', rateLimited: 'Rate-limited: try again in {0} s.',
    invalidJson: 'Not valid JSON: {0}', fieldErrors: 'The API refused it:',
    triggersTitle: 'Trigger settings', triggersIntro: 'Which actions of which objects fire webhooks that have no trigger list of their own (Sanplex: Admin > Notification Settings > Settings).',
    all: 'All', noneSel: 'None', extra: 'not in Sanplex\'s list',
    bindingsTitle: 'Binding', bindingsIntro: 'Work/app-message webhooks send to platform users bound to Sanplex accounts.',
    noAppWebhooks: 'No dinguser, wechatuser or feishuuser webhook yet.', webhook: 'Webhook',
    onlyUnbound: 'Only unbound users', directory: 'Platform directory (live)', userid: 'Platform user ID',
    departments: 'Departments', account: 'Sanplex account', bind: 'Bind', rebind: 'Re-bind', unbind: 'Unbind',
    boundTo: 'bound to {0}', bound: 'Bound accounts', confirmUnbind: 'Unbind {0}?', accountNeeded: 'Enter a Sanplex account first.',
    conflict: 'Platform user {0} is already bound to account {1}; it cannot also be bound to {2}. Unbind {1} first.',
    filter: 'Filter', search: 'Search',
    deliveriesTitle: 'Delivery log', allWebhooks: 'All webhooks', allStatuses: 'All statuses', status: 'Status',
    created: 'Created', event: 'Event', attempts: 'Attempts', lastStatus: 'HTTP', newer: '← Newer', older: 'Older →',
    newest: 'Newest', retry: 'Retry', retried: 'Re-queued', recover: 'Recover',
    recoverIntro: 'Re-queue every dead delivery of a webhook created since a time, in their original order.',
    since: 'Dead since', requeued: '{0} deliveries re-queued.', requeuedOne: '1 delivery re-queued.', sinceNeeded: 'Pick the time from which dead deliveries are re-queued.', requeuedNone: 'No dead delivery of that webhook since then: nothing re-queued.', pickWebhook: 'Pick a webhook.',
    delivery: 'Delivery {0}', lastAttempt: 'Last attempt', nextAttempt: 'Next attempt', progress: 'Recipients',
    served: 'Served', rejected: 'Refused by the platform', noRequest: 'Not sent yet.', attemptsNote: 'The request and response below are the last attempt\'s.',
    history: 'Attempts', historyNote: 'The last five, oldest first.', h_time: 'Time', h_status: 'HTTP status', h_error: 'Error',
    h_ok: 'accepted', h_noAnswer: 'no answer', noHistory: 'No attempt yet.',
    quarantineTitle: 'Quarantine', quarantineIntro: 'Input from files or the database that could not be ingested, newest first.',
    source: 'Source', file: 'File', offset: 'Offset', reason: 'Reason', raw: 'Raw',
    dashTitle: 'Dashboard', perMinute: 'Deliveries per minute by status, last hour',
    chartNote: 'Each bar counts the deliveries that reached a status in that minute: pending (created or re-queued), retrying (a first failed attempt, tried again later), delivered, dead or skipped; a delivery counts once in each status it reaches. Counted in memory since the server started.',
    startedAt: '(Started {0}.)',
    chartQuiet: 'No delivery changed status in the last hour.',
    queueDepth: 'Queue depth', latency: 'Latency (event → 2xx)', latencyMean: 'mean {0}', failingNow: 'Webhooks failing now',
    health: 'Health', healthOk: 'ok', autoRefresh: 'Refreshes every {0} s', updated: 'Updated {0}',
    noneFailing: 'None: every webhook\'s latest outcome is a success.',
    s_pending: 'pending', s_retrying: 'retrying', s_delivered: 'delivered', s_dead: 'dead', s_skipped: 'skipped',
    minutesAgo: '{0} min ago', now: 'now', error: 'Error', notFound: 'Not found',
    retryHint: 'Send it again now (the receiver gets the same webhook-id).', sendAgain: 'Send again',
    following: 'Not finished yet: this page follows it.', eventId: 'event', noResponse: 'No response (the platform was not reached).',
    bindThem: 'Bind accounts…',
    errorBefore: 'A later delivery succeeded.', showRaw: 'Show',
    testTo: 'Send to', testToNobody: '— nobody (give an event with a toList) —', testToHint: 'the sample event, to this bound account; accounts are bound on',
    f_ownHint: 'This webhook fires for the actions ticked here, whatever the global settings say (a new list starts as a copy of them; nothing ticked: it never fires).',
    f_secretBotHint: 'Optional: the bot\'s signing secret (its security setting “sign”); the message is signed with it.',
    noWebhooks: 'No webhooks yet.', noWebhooksHint: 'Create one with “New webhook”: a generic JSON endpoint, or a DingTalk, WeCom or Feishu / Lark bot or app.',
    f_enabledHint: 'Events fire this webhook', f_sendHint: 'async: queued and sent at the next flush (delivery.async_interval).',
    notSaved: 'Not saved: correct the field “{0}” above.', notSentYet: 'Nothing sent yet.', testResult: 'Test result',
    noneBound: 'No account is bound yet: type a Sanplex account beside a platform user below, then Bind.',
    noneFound: 'Nobody in the directory matches “{0}”.', noneUnbound: 'Everyone in the directory is bound.',
    noneInDirectory: 'The platform\'s directory lists nobody (check the app\'s visible range).',
    noDeliveries: 'No deliveries yet: they appear here once an event fires a webhook.', noDeliveriesFiltered: 'No delivery matches these filters.',
    noQuarantine: 'Nothing quarantined: every line and row was ingested.', src_tail: 'file (tail)', src_db: 'database',
  },
  'zh-cn': {
    language: '语言', forgetToken: '清除令牌', tokenTitle: 'API 令牌',
    openapi: 'API 说明（OpenAPI）',
    tokenAsk: '此服务器需要 API 令牌（config.toml 中的 server.token）。', token: '令牌',
    tokenKept: '仅保存在当前浏览器标签页。', ok: '确定', tokenForgotten: '已清除令牌',
    tokenRefused: '服务器拒绝了该令牌：请核对 server.token 后重新输入。',
    navDashboard: '概览', navWebhooks: 'Webhook', navTriggers: '触发设置',
    navBindings: '用户绑定', navDeliveries: '发送日志', navQuarantine: '隔离区',
    loading: '加载中…', none: '暂无数据。', save: '保存', saved: '已保存', cancel: '取消',
    edit: '编辑', delete: '删除', create: '新建 Webhook', back: '返回', refresh: '刷新',
    name: '名称', type: '类型', target: '目标', enabled: '启用', sendType: '发送方式',
    pendingDead: '待发 / 失败', lastSuccess: '最近成功', lastError: '最近错误',
    actions: '操作', never: '从未', deliveries: '发送记录', bindings: '绑定',
    confirmDelete: '删除 Webhook“{0}”？其待发送的消息将被跳过。',
    deleted: '已删除', enabledOn: '已启用', enabledOff: '已停用',
    disabledReason: '已被 sanhook 停用：{0}',
    t_default: '通用 Webhook（JSON）', t_dinggroup: '钉钉群机器人', t_dinguser: '钉钉工作通知',
    t_wechatgroup: '企业微信群机器人', t_wechatuser: '企业微信应用消息', t_feishugroup: '飞书 / Lark 群机器人',
    t_feishuuser: '飞书 / Lark 应用消息',
    newWebhook: '新建 Webhook', editWebhook: 'Webhook {0}', f_name: '名称', f_type: '类型', f_url: 'URL',
    f_secret: '密钥', f_secretHint: '只写：保留 ****** 即沿用已保存的值。',
    f_secretDefaultHint: '可选：按 Standard Webhooks 为每个请求签名（whsec_… 或原文）。',
    f_agentId: 'AgentId', f_appKey: 'AppKey', f_appSecret: 'AppSecret', f_wechatCorpId: '企业 ID',
    f_wechatCorpSecret: '应用 Secret', f_wechatAgentId: 'AgentId', f_feishuAppId: 'App ID',
    f_feishuAppSecret: 'App Secret', f_apiBase: 'API 地址', f_apiBaseHint: '可选：为此 Webhook 覆盖 [platforms] 中的地址（如与飞书并存的 Lark）。',
    f_domain: '域名', f_domainHint: '消息中对象链接的基础地址。', f_sendType: '发送方式',
    f_sendSync: '同步（立即发送）', f_sendAsync: '异步（下次定时发送）', f_dingSync: '钉钉群机器人只能同步发送。',
    f_products: '产品', f_executions: '执行', f_idsHint: '以逗号分隔的 ID；留空表示全部。',
    f_params: '消息字段', f_contentType: 'Content-Type', f_enabled: '启用', f_desc: '描述',
    f_details: '详情', f_detailsHint: '在消息后附上变更内容和备注。',
    f_ignoreActors: '忽略操作者', f_ignoreHint: '以逗号分隔的账号，如 system。',
    f_triggers: '触发动作', f_global: '使用全局触发设置', f_own: '此 Webhook 单独设置',
    f_template: '模板', f_tplTitle: '标题模板', f_tplText: '正文模板', f_tplBody: '请求体模板（JSON）',
    f_tplHint: 'MiniJinja 语法；留空使用内置消息。变量：objectType、objectID、objectName、actor、actorName、action、label、typeLabel、url、changes、text、lang…',
    preview: '预览', previewLive: '表单当前内容的实时预览（无论是否已保存；未填写事件时使用示例事件）。不会发送任何消息。',
    previewNeedsSave: '发送测试使用已保存的 Webhook：请先保存。', testSaved: '发送测试使用已保存的版本：请先保存修改。',
    previewField: '暂无预览：字段“{0}”未通过检查：{1}', previewFail: '无法预览：{0}',
    eventJson: '事件（JSON，可选）', eventHint: '留空：示例事件（Alice 解决了 Bug 12）。应用消息类型需要包含已绑定账号的 toList。',
    sendTest: '发送测试', testing: '发送中…', testOk: '发送成功：接收方已接收消息。',
    testFail: '发送失败（{0}）。', response: '响应', request: '请求', rateLimited: '已达发送频率上限：请 {0} 秒后再试。',
    invalidJson: 'JSON 格式错误：{0}', fieldErrors: 'API 拒绝了请求：',
    triggersTitle: '触发设置', triggersIntro: '没有单独设置触发动作的 Webhook，在这些对象的这些动作发生时发送（对应禅道：后台 > 通知设置 > 设置）。',
    all: '全选', noneSel: '全不选', extra: '不在禅道列表中',
    bindingsTitle: '用户绑定', bindingsIntro: '工作通知 / 应用消息类型的 Webhook 发送给与禅道账号绑定的平台用户。',
    noAppWebhooks: '还没有 dinguser、wechatuser 或 feishuuser 类型的 Webhook。', webhook: 'Webhook',
    onlyUnbound: '只看未绑定用户', directory: '平台通讯录（实时）', userid: '平台用户 ID',
    departments: '部门', account: '禅道账号', bind: '绑定', rebind: '重新绑定', unbind: '解除绑定',
    boundTo: '已绑定 {0}', bound: '已绑定的账号', confirmUnbind: '解除 {0} 的绑定？', accountNeeded: '请先填写禅道账号。',
    conflict: '平台用户 {0} 已绑定到账号 {1}，不能再绑定到 {2}。请先解除 {1} 的绑定。',
    filter: '筛选', search: '搜索',
    deliveriesTitle: '发送日志', allWebhooks: '全部 Webhook', allStatuses: '全部状态', status: '状态',
    created: '创建时间', event: '事件', attempts: '尝试次数', lastStatus: 'HTTP', newer: '← 较新', older: '较早 →',
    newest: '最新', retry: '重发', retried: '已重新排队', recover: '恢复',
    recoverIntro: '将某个 Webhook 自某时间以来创建的所有失败消息按原顺序重新排队。',
    since: '失败起始时间', requeued: '已重新排队 {0} 条。', requeuedOne: '已重新排队 1 条。', sinceNeeded: '请选择从哪个时间起重新排队失败的发送记录。', requeuedNone: '该 Webhook 在此时间之后没有失败的发送记录：未重新排队。', pickWebhook: '请选择 Webhook。',
    delivery: '发送记录 {0}', lastAttempt: '最近尝试', nextAttempt: '下次尝试', progress: '接收人',
    served: '已送达', rejected: '平台拒收', noRequest: '尚未发送。', attemptsNote: '下方的请求和响应为最近一次尝试的内容。',
    history: '尝试记录', historyNote: '最近五次，最早的在前。', h_time: '时间', h_status: 'HTTP 状态码', h_error: '错误',
    h_ok: '已接收', h_noAnswer: '无响应', noHistory: '尚未尝试。',
    quarantineTitle: '隔离区', quarantineIntro: '来自文件或数据库、无法导入的输入，最新的在前。',
    source: '来源', file: '文件', offset: '偏移', reason: '原因', raw: '原始内容',
    dashTitle: '概览', perMinute: '最近一小时每分钟各状态的发送量',
    chartNote: '每根柱子统计该分钟内进入各状态的发送记录：待发送（新建或重新排队）、重试中（首次尝试失败，稍后重试）、已送达、失败或已跳过；同一条记录在每个到达的状态各计一次。自服务器启动起在内存中统计。',
    startedAt: '（启动于 {0}。）',
    chartQuiet: '最近一小时没有发送记录改变状态。',
    queueDepth: '队列深度', latency: '延迟（事件 → 2xx）', latencyMean: '平均 {0}', failingNow: '正在失败的 Webhook',
    health: '健康状态', healthOk: '正常', autoRefresh: '每 {0} 秒自动刷新', updated: '更新于 {0}',
    noneFailing: '无：每个 Webhook 最近一次结果都是成功。',
    s_pending: '待发送', s_retrying: '重试中', s_delivered: '已送达', s_dead: '失败', s_skipped: '已跳过',
    minutesAgo: '{0} 分钟前', now: '现在', error: '错误', notFound: '未找到',
    retryHint: '立即重新发送（接收方收到相同的 webhook-id）。', sendAgain: '再次发送',
    following: '尚未完成：本页会自动跟进。', eventId: '事件', noResponse: '无响应（未能连接到平台）。',
    bindThem: '去绑定账号…',
    errorBefore: '之后已有发送成功。', showRaw: '展开',
    testTo: '发送给', testToNobody: '— 无（请填写带 toList 的事件）—', testToHint: '示例事件发给此已绑定账号；账号在此绑定：',
    f_ownHint: '此 Webhook 只在这里勾选的动作发生时发送，不受全局设置影响（新列表从全局设置复制；全部不勾选则永不发送）。',
    f_secretBotHint: '可选：机器人安全设置中的“加签”密钥，用于为消息签名。',
    noWebhooks: '还没有 Webhook。', noWebhooksHint: '点击“新建 Webhook”创建：通用 JSON 接口，或钉钉、企业微信、飞书 / Lark 的机器人或应用。',
    f_enabledHint: '事件触发此 Webhook', f_sendHint: '异步：先排队，在下次定时发送时发出（delivery.async_interval）。',
    notSaved: '未保存：请修改上方的“{0}”。', notSentYet: '尚未发送。', testResult: '测试结果',
    noneBound: '还没有绑定账号：在下方平台用户旁填写禅道账号，再点击绑定。',
    noneFound: '通讯录中没有匹配“{0}”的用户。', noneUnbound: '通讯录中的用户都已绑定。',
    noneInDirectory: '平台通讯录中没有用户（请检查应用的可见范围）。',
    noDeliveries: '还没有发送记录：事件触发 Webhook 后会显示在这里。', noDeliveriesFiltered: '没有符合筛选条件的发送记录。',
    noQuarantine: '隔离区为空：所有行都已导入。', src_tail: '文件（tail）', src_db: '数据库',
  },
};

const LANGS = ['en', 'zh-cn'];
function pickLang() {
  const saved = localStorage.getItem('sanhook.lang');
  if (LANGS.includes(saved)) return saved;
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
  return nav.toLowerCase().startsWith('zh') ? 'zh-cn' : 'en';
}
let lang = pickLang();

function t(key, ...args) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
  args.forEach((a, i) => { s = s.split('{' + i + '}').join(String(a)); });
  return s;
}

// ---------------------------------------------------------------------------------------------
// DOM helpers. Text always goes in as text nodes.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false || kid === '') continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}
const svgNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}
const main = () => document.getElementById('main');
// replaceChildren that takes nested arrays and skips null / false (the native one would print them).
function fill(node, ...kids) {
  node.replaceChildren(...kids.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  labelCells(node);
  return node;
}
function show(...nodes) {
  const m = main();
  fill(m, nodes);
}
// Each cell names its column (data-label), for the stacked layout of tables on a phone.
// A column whose cells are all numbers (td.num) has its heading aligned with them, on the right.
function labelCells(root) {
  root.querySelectorAll('table').forEach((tb) => {
    const ths = [...tb.querySelectorAll('thead th')];
    const heads = ths.map((th) => th.textContent);
    const rows = [...tb.querySelectorAll('tbody tr')];
    rows.forEach((tr) => [...tr.children].forEach((td, i) => { td.dataset.label = heads[i] || ''; }));
    ths.forEach((th, i) => { if (rows.length && rows.every((tr) => tr.children[i] && tr.children[i].classList.contains('num'))) th.classList.add('num'); });
  });
}
let toastTimer;
function toast(msg) {
  if (!msg) return;
  const tEl = document.getElementById('toast');
  tEl.textContent = msg;
  tEl.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => tEl.classList.remove('show'), 3000);
}
function fmtTime(s) {
  if (!s) return t('never');
  const d = new Date(s);
  if (isNaN(d)) return s;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function fmtClock(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function clamp(text) { return el('div', { class: 'clamp', title: text }, text); }
// The platform's verdict in Chinese for the codes admins meet most; the API's own words (English)
// stay beside it. Keys: platform name as the API writes it (DingTalk, WeCom, Feishu) + code.
const VERDICT_ZH = {
  'DingTalk 310000': '机器人拒绝了签名、关键词、时间戳或 IP：请检查 Webhook 的密钥、机器人的关键词和本机时钟。',
  'DingTalk 300001': '机器人的 access_token 不存在：请检查 Webhook 的 URL。',
  'DingTalk 130101': '发送太快，机器人被限流 10 分钟。',
  'DingTalk 40089': '请检查 Webhook 的 AppKey 和 AppSecret。',
  'DingTalk 60020': '本服务器的 IP 不在应用的白名单中。',
  'WeCom 93000': '机器人 key 无效：请检查 Webhook 的 URL。',
  'WeCom 45009': '调用频率超限。',
  'WeCom 40013': '请检查企业 ID（wechatCorpId）。',
  'WeCom 40001': '请检查应用 Secret（wechatCorpSecret）。',
  'WeCom 40056': '请检查 AgentId（wechatAgentId）。',
  'WeCom 60020': '本服务器的 IP 不在应用的可信 IP 中。',
  'Feishu 19021': '机器人拒绝了签名或时间戳：请检查 Webhook 的密钥和本机时钟。',
  'Feishu 19022': '本服务器的 IP 不在机器人的 IP 白名单中。',
  'Feishu 19024': '消息缺少机器人设置的关键词。',
  'Feishu 19001': '机器人 hook token 无效：请检查 Webhook 的 URL。',
  'Feishu 10003': '请检查 App ID 和 App Secret。',
};
function verdictWords(error) {
  if (lang !== 'zh-cn' || !error) return null;
  if (/^no bound recipients: the event has no toList/.test(error)) return el('div', { class: 'verdict-zh' }, '没有接收人：事件没有 toList。');
  const nb = /^no bound recipients: (.+?) not bound/.exec(error);
  if (nb) return el('div', { class: 'verdict-zh' }, `没有已绑定的接收人：${nb[1]} 未绑定到平台用户。`);
  if (/^HTTP 410\b/.test(error)) return el('div', { class: 'verdict-zh' }, '接收方返回 410：该地址已不存在，不再重试。');
  const gu = /^gave up after (\d+) attempts/.exec(error);
  if (gu) return el('div', { class: 'verdict-zh' }, `重试 ${gu[1]} 次后仍失败，已放弃。`);
  const m = /\b(DingTalk|WeCom|Feishu|Lark)\b\D{0,20}?(-?\d{3,})/.exec(error);
  const zh = m && VERDICT_ZH[(m[1] === 'Lark' ? 'Feishu' : m[1]) + ' ' + m[2]];
  return zh ? el('div', { class: 'verdict-zh' }, zh) : null;
}
function statusBadge(s) { return el('span', { class: 'badge ' + s }, t('s_' + s)); }
function pretty(body) {
  if (body === null || body === undefined) return '';
  if (typeof body !== 'string') return JSON.stringify(body, null, 2);
  try { return JSON.stringify(JSON.parse(body), null, 2); } catch (_) { return body; }
}
function errorBox(e) { return el('div', { class: 'error-box', role: 'alert' }, errorText(e)); }
function errorText(e) {
  if (e instanceof Stale) return '';
  if (e instanceof ApiError) return `${e.status}: ${(e.body && e.body.error) || e.message}`;
  return String(e && e.message ? e.message : e);
}

// ---------------------------------------------------------------------------------------------
// API calls. 401 → ask for the token (one dialog for all the calls waiting), then try again.
class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.error) || ('HTTP ' + status));
    this.status = status; this.body = body; this.retryAfter = retryAfter;
  }
}
const TOKEN_KEY = 'sanhook.token';
let tokenPrompt = null;
// `refused`: a token was sent and the API answered 401 all the same: the dialog says so.
function askToken(refused) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dlg = document.getElementById('token-dialog');
    const input = document.getElementById('token-input');
    document.getElementById('token-refused').hidden = !refused;
    input.value = '';
    const done = () => {
      const v = input.value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      dlg.removeEventListener('close', done);
      tokenPrompt = null;
      updateTokenButton();
      resolve(Boolean(v));
    };
    dlg.addEventListener('close', done);
    dlg.showModal();
    input.focus();
  });
  return tokenPrompt;
}
function updateTokenButton() {
  document.getElementById('forget').hidden = !sessionStorage.getItem(TOKEN_KEY);
}

// A page is rendered by an async function that awaits API calls; when the route changes while
// one is in flight (another page, a language switch), its answer must not paint the old page over
// the new one: the call rejects with Stale, which nobody reports. `anyRoute`: a call whose answer
// is wanted whatever page is shown (the catalog, shared by every page).
class Stale extends Error {}
let routeGen = 0;
async function api(method, path, body, raw, anyRoute) {
  const gen = routeGen;
  const current = () => { if (!anyRoute && gen !== routeGen) throw new Stale('the page changed'); };
  for (;;) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const opts = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    current();
    if (r.status === 401 && path.startsWith('/api/')) {
      sessionStorage.removeItem(TOKEN_KEY);
      updateTokenButton();
      if (await askToken(Boolean(token))) continue;
    }
    const text = await r.text();
    current();
    if (raw && r.ok) return text;
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
    if (!r.ok) throw new ApiError(r.status, data, r.headers.get('retry-after'));
    return data;
  }
}

// Object types and actions of Sanplex's settings page, with their names (GET /admin/catalog.json).
let catalogP = null;
function catalog() {
  if (!catalogP) catalogP = api('GET', '/admin/catalog.json', undefined, false, true).catch((e) => { catalogP = null; throw e; });
  return catalogP;
}
// Sanplex's English labels are mostly lower case ("opened") with a few capitalised ("Archived"):
// in a list of checkboxes they all start with a capital.
function capital(s) { return lang === 'en' && s ? s[0].toUpperCase() + s.slice(1) : s; }
function label(cat, kind, code) {
  const l = cat && cat.labels && cat.labels[kind] && cat.labels[kind][code];
  return l ? (l[lang] || l.en || code) : code;
}

// ---------------------------------------------------------------------------------------------
// Webhook types and their fields (src/webhook.rs, Webhook::validate).
const TYPES = ['default', 'dinggroup', 'dinguser', 'wechatgroup', 'wechatuser', 'feishugroup', 'feishuuser'];
const APP_TYPES = ['dinguser', 'wechatuser', 'feishuuser'];
const TYPE_FIELDS = {
  default: [['url', true], ['secret', false], ['contentType', false], ['params', false]],
  dinggroup: [['url', true], ['secret', false]],
  wechatgroup: [['url', true]],
  feishugroup: [['url', true], ['secret', false]],
  dinguser: [['agentId', true], ['appKey', true], ['appSecret', true], ['apiBase', false]],
  wechatuser: [['wechatCorpId', true], ['wechatCorpSecret', true], ['wechatAgentId', true], ['apiBase', false]],
  feishuuser: [['feishuAppId', true], ['feishuAppSecret', true], ['apiBase', false]],
};
const SECRET_FIELDS = ['secret', 'appSecret', 'wechatCorpSecret', 'feishuAppSecret'];
const DEFAULT_PARAMS = ['objectType', 'objectID', 'product', 'project', 'execution', 'action', 'actor', 'date', 'comment', 'text'];
const STATUSES = ['pending', 'retrying', 'delivered', 'dead', 'skipped'];
// The API's sample event (Alice resolving bug 12), for a test of an app type with a recipient.
const SAMPLE_EVENT = { objectType: 'bug', objectID: 12, product: ',1,', actor: 'alice', actorName: 'Alice', action: 'resolved', objectName: 'Login fails' };

function target(w) {
  if (w.url) return w.url; // the API masks credentials in URLs already
  if (w.type === 'dinguser') return 'DingTalk agent ' + (w.agentId || '?');
  if (w.type === 'wechatuser') return 'WeCom ' + (w.wechatCorpId || '?') + ' / ' + (w.wechatAgentId || '?');
  if (w.type === 'feishuuser') return 'Feishu app ' + (w.feishuAppId || '?');
  return '';
}

// ---------------------------------------------------------------------------------------------
// Pages. Each renders into <main>; `route()` picks one from location.hash.
let refreshTimer = null;

async function pageWebhooks() {
  show(el('h1', {}, t('navWebhooks')), el('p', { class: 'muted' }, t('loading')));
  const [hooks, stats] = await Promise.all([api('GET', '/api/v1/webhooks'), api('GET', '/api/v1/stats')]);
  const byId = new Map(stats.map((s) => [s.webhookId, s]));
  const rows = hooks.map((w) => {
    const s = byId.get(w.id) || {};
    // The last error is red while it is the latest outcome; after a later success it is history.
    const failingNow = s.lastFailureAt && (!s.lastSuccessAt || s.lastFailureAt > s.lastSuccessAt);
    const sw = el('input', {
      type: 'checkbox', checked: w.enabled, 'aria-label': t('enabled') + ': ' + w.name,
      onchange: async (ev) => {
        const box = ev.target;
        box.disabled = true;
        try {
          const body = Object.assign({}, w, { enabled: box.checked });
          delete body.disabledReason;
          Object.assign(w, await api('PUT', '/api/v1/webhooks/' + w.id, body));
          toast(box.checked ? t('enabledOn') : t('enabledOff'));
        } catch (e) { box.checked = !box.checked; toast(errorText(e)); }
        box.disabled = false;
      },
    });
    return el('tr', {},
      el('td', { class: 'name' }, el('a', { href: '#/webhooks/' + w.id, title: t('edit') }, w.name),
        w.sendType === 'async' ? el('div', { class: 'muted small' }, t('f_sendAsync')) : null,
        w.disabledReason ? el('div', { class: 'muted' }, t('disabledReason', w.disabledReason)) : null),
      el('td', { class: 'typename', title: w.type }, t('t_' + w.type)),
      el('td', { class: 'mono target' }, target(w)),
      el('td', {}, el('label', { class: 'switch' }, sw)),
      el('td', { class: 'num' }, `${(s.pending || 0) + (s.retrying || 0)} / `, el('span', { class: s.dead ? 'dead-count' : '' }, String(s.dead || 0))),
      el('td', { class: 'time' }, fmtTime(s.lastSuccessAt)),
      el('td', { class: failingNow ? 'err' : 'muted', title: failingNow ? null : t('errorBefore') }, s.lastError ? [failingNow ? verdictWords(s.lastError) : null, clamp(fmtTime(s.lastFailureAt) + ': ' + s.lastError)] : ''),
      el('td', {}, el('div', { class: 'row tight' },
        el('a', { class: 'button small', href: '#/deliveries?webhook=' + w.id, 'aria-label': t('deliveries') + ': ' + w.name }, t('deliveries')),
        APP_TYPES.includes(w.type) ? el('a', { class: 'button small', href: '#/bindings/' + w.id, 'aria-label': t('bindings') + ': ' + w.name }, t('bindings')) : null,
        el('button', { type: 'button', class: 'danger small', onclick: () => deleteWebhook(w), 'aria-label': t('delete') + ': ' + w.name }, t('delete')))));
  });
  show(
    el('div', { class: 'row' }, el('h1', {}, t('navWebhooks')), el('span', { class: 'spacer' }),
      el('a', { class: 'button primary', href: '#/webhooks/new' }, t('create'))),
    hooks.length === 0 ? el('div', { class: 'panel empty' }, el('p', {}, t('noWebhooks')), el('p', { class: 'muted' }, t('noWebhooksHint'))) : el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, ['name', 'type', 'target', 'enabled', 'pendingDead', 'lastSuccess', 'lastError', 'actions'].map((k) => el('th', { scope: 'col' }, t(k))))),
      el('tbody', {}, rows))));
}

async function deleteWebhook(w) {
  if (!window.confirm(t('confirmDelete', w.name))) return;
  try {
    await api('DELETE', '/api/v1/webhooks/' + w.id);
    toast(t('deleted'));
    if (location.hash === '#/webhooks') route(); else location.hash = '#/webhooks';
  } catch (e) { toast(errorText(e)); }
}

// The trigger matrix (object type × action), shared by the settings page and the webhook form.
// `selected` is {objectType: [action]}; returns {node, value()}.
function triggerMatrix(cat, selected) {
  const all = {};
  for (const [ty, acts] of Object.entries(cat.triggers)) all[ty] = acts.slice();
  for (const [ty, acts] of Object.entries(selected || {})) {
    all[ty] = all[ty] || [];
    for (const a of acts) if (!all[ty].includes(a)) all[ty].push(a);
  }
  const boxes = [];
  const cells = [];
  const collator = new Intl.Collator(lang === 'zh-cn' ? 'zh-Hans-CN' : 'en');
  for (const ty of Object.keys(all).sort((a, b) => collator.compare(label(cat, 'object', a), label(cat, 'object', b)))) {
    const mine = new Set((selected && selected[ty]) || []);
    const known = new Set(cat.triggers[ty] || []);
    const row = all[ty].map((a) => {
      const box = el('input', { type: 'checkbox', checked: mine.has(a) });
      box.dataset.type = ty; box.dataset.action = a;
      boxes.push(box);
      const words = label(cat, 'action', a).trim();
      return el('label', { title: ty + '.' + a + (known.has(a) ? '' : ' (' + t('extra') + ')') }, box, ' ', capital(words), words.toLowerCase() === a ? null : [' ', el('span', { class: 'code' }, a)]);
    });
    const setAll = (v) => () => row.forEach((l) => { l.querySelector('input').checked = v; });
    cells.push(el('div', { class: 'otype' }, label(cat, 'object', ty), el('span', { class: 'code muted mono' }, ty),
      el('span', { class: 'row' }, el('button', { type: 'button', class: 'link', onclick: setAll(true) }, t('all')),
        el('button', { type: 'button', class: 'link', onclick: setAll(false) }, t('noneSel')))));
    cells.push(el('div', { class: 'acts', role: 'group', 'aria-label': label(cat, 'object', ty) }, row));
  }
  return {
    node: el('div', { class: 'matrix' }, cells),
    value() {
      const out = {};
      for (const b of boxes) if (b.checked) (out[b.dataset.type] = out[b.dataset.type] || []).push(b.dataset.action);
      return out;
    },
  };
}

async function pageTriggers() {
  show(el('h1', {}, t('triggersTitle')), el('p', { class: 'muted' }, t('loading')));
  const [cat, cur] = await Promise.all([catalog(), api('GET', '/api/v1/settings/triggers')]);
  const m = triggerMatrix(cat, cur);
  const status = el('div', { role: 'status' });
  const save = el('button', {
    type: 'button', class: 'primary', onclick: async () => {
      save.disabled = true; fill(status);
      try { await api('PUT', '/api/v1/settings/triggers', m.value()); toast(t('saved')); } catch (e) { status.append(errorBox(e)); }
      save.disabled = false;
    },
  }, t('save'));
  show(el('h1', {}, t('triggersTitle')), el('p', { class: 'muted' }, t('triggersIntro')), status, m.node,
    el('div', { class: 'row end panel-foot' }, save));
}

// --- the webhook form ---
const PREVIEW_DEBOUNCE_MS = 400;
// A field's message beside it (.ferr) and its control marked; `focus` after a refused save only.
function markField(box, msg, focus) {
  box.querySelector('.ferr').textContent = msg;
  const ctl = box.querySelector('input, select, textarea');
  if (ctl) { ctl.classList.add('invalid'); if (focus) ctl.focus(); }
}
// The label of a .field box as the page shows it (the API's field name when it has none).
function fieldName(box, field) {
  const ctl = box && box.querySelector('input, select, textarea');
  const name = ctl && main().querySelector(`label[for="${CSS.escape(ctl.id)}"]`);
  return name ? name.textContent : field;
}
function fieldRow(key, labelText, control, opts) {
  opts = opts || {};
  const id = 'f-' + key.replace(/\W/g, '-');
  if (control.tagName && !control.id) control.id = id;
  return [
    el('label', { for: control.id || id, class: opts.required ? 'req' : '' }, labelText),
    el('div', { class: 'field', 'data-field': key }, control, opts.hint ? el('span', { class: 'hint' }, opts.hint) : null,
      el('span', { class: 'ferr', role: 'alert' })),
  ];
}
function ids(s) { return s.split(/[\s,，]+/).filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x)); }
function words(s) { return s.split(/[\s,，]+/).filter(Boolean); }

async function pageWebhook(id) {
  const isNew = id === 'new';
  show(el('h1', {}, isNew ? t('newWebhook') : t('editWebhook', id)), el('p', { class: 'muted' }, t('loading')));
  const [cat, w, globalTriggers] = await Promise.all([catalog(), isNew ? Promise.resolve({ type: 'default', enabled: true, sendType: 'sync' }) : api('GET', '/api/v1/webhooks/' + id),
    api('GET', '/api/v1/settings/triggers').catch(() => ({}))]);
  const inputs = {};
  const text = (k, type) => (inputs[k] = el('input', { type: type || 'text', value: w[k] || '', autocomplete: 'off', spellcheck: 'false' }));
  const typeSel = el('select', {}, TYPES.map((ty) => el('option', { value: ty, selected: ty === w.type }, ty + ' — ' + t('t_' + ty))));
  typeSel.disabled = false;
  const sendSel = el('select', {}, el('option', { value: 'sync' }, t('f_sendSync')), el('option', { value: 'async' }, t('f_sendAsync')));
  sendSel.value = w.sendType || 'sync';
  const enabled = el('input', { type: 'checkbox', checked: w.enabled !== false });
  const details = el('input', { type: 'checkbox', checked: Boolean(w.details) });
  const paramBoxes = DEFAULT_PARAMS.map((p) => el('input', { type: 'checkbox', value: p, checked: !w.params || w.params.length === 0 || w.params.includes(p), disabled: p === 'text' }));
  const tpl = w.template || {};
  const tplTitle = el('input', { type: 'text', value: tpl.title || '', spellcheck: 'false' });
  const tplText = el('textarea', { rows: 5, spellcheck: 'false' }); tplText.value = tpl.text || '';
  const tplBody = el('textarea', { rows: 7, spellcheck: 'false' }); tplBody.value = tpl.body || '';
  const own = w.actions !== undefined && w.actions !== null;
  const trigGlobal = el('input', { type: 'radio', name: 'trig', value: 'global', checked: !own });
  const trigOwn = el('input', { type: 'radio', name: 'trig', value: 'own', checked: own });
  // An own list starts as a copy of the global settings (an empty one would never fire).
  const matrix = triggerMatrix(cat, own ? w.actions : globalTriggers);
  const matrixWrap = el('div', {}, el('p', { class: 'hint muted' }, t('f_ownHint')), matrix.node);

  const formErr = el('div', { role: 'alert' });
  const specRow = (k, required) => {
    const secret = SECRET_FIELDS.includes(k);
    if (k === 'params') return fieldRow('params', t('f_params'), el('div', { class: 'checks', role: 'group' }, paramBoxes.map((b) => el('label', {}, b, ' ', b.value))));
    const input = text(k, secret ? 'password' : 'text');
    let hint = null;
    if (secret && !isNew) hint = t('f_secretHint');
    if (k === 'secret' && typeSel.value === 'default') hint = t('f_secretDefaultHint') + (isNew ? '' : ' ' + t('f_secretHint'));
    if (k === 'secret' && typeSel.value !== 'default') hint = t('f_secretBotHint') + (isNew ? '' : ' ' + t('f_secretHint'));
    if (k === 'apiBase') hint = t('f_apiBaseHint');
    if (k === 'contentType') input.placeholder = 'application/json';
    return fieldRow(k, t('f_' + k), input, { required, hint });
  };
  const typeBox = el('div', { class: 'form' });
  const chatBox = el('div', { class: 'form' });
  const tplBox = el('div', { class: 'form' });
  function layout() {
    const ty = typeSel.value;
    const kept = {};
    for (const [k, inp] of Object.entries(inputs)) kept[k] = inp.value;
    fill(typeBox, ...(TYPE_FIELDS[ty] || []).flatMap(([k, req]) => specRow(k, req)));
    for (const [k, v] of Object.entries(kept)) if (inputs[k]) inputs[k].value = v;
    sendSel.disabled = ty === 'dinggroup';
    sendSel.title = ty === 'dinggroup' ? t('f_dingSync') : '';
    sendHint.textContent = ty === 'dinggroup' ? t('f_dingSync') : t('f_sendHint');
    if (ty === 'dinggroup') sendSel.value = 'sync';
    const chat = ty !== 'default';
    fill(chatBox, ...(chat ? fieldRow('details', t('f_details'), el('label', { class: 'switch' }, details, t('f_detailsHint'))) : []));
    fill(tplBox, ...(chat
      ? [...fieldRow('template.title', t('f_tplTitle'), tplTitle), ...fieldRow('template.text', t('f_tplText'), tplText, { hint: t('f_tplHint') })]
      : fieldRow('template.body', t('f_tplBody'), tplBody, { hint: t('f_tplHint') })));
  }
  typeSel.addEventListener('change', layout);
  let sendHint = null;
  const syncTrig = () => { matrixWrap.hidden = !trigOwn.checked; };
  trigGlobal.addEventListener('change', syncTrig); trigOwn.addEventListener('change', syncTrig);

  const common = el('div', { class: 'form' },
    fieldRow('name', t('f_name'), text('name'), { required: true }),
    fieldRow('type', t('f_type'), typeSel),
    fieldRow('enabled', t('f_enabled'), el('label', { class: 'switch' }, enabled, t('f_enabledHint'))));
  const scope = el('div', { class: 'form' },
    fieldRow('sendType', t('f_sendType'), sendSel, { hint: ' ' }),
    fieldRow('domain', t('f_domain'), text('domain'), { hint: t('f_domainHint') }),
    fieldRow('products', t('f_products'), el('input', { type: 'text', id: 'f-products', value: (w.products || []).join(', ') }), { hint: t('f_idsHint') }),
    fieldRow('executions', t('f_executions'), el('input', { type: 'text', id: 'f-executions', value: (w.executions || []).join(', ') }), { hint: t('f_idsHint') }),
    fieldRow('ignoreActors', t('f_ignoreActors'), el('input', { type: 'text', id: 'f-ignoreActors', value: (w.ignoreActors || []).join(', ') }), { hint: t('f_ignoreHint') }),
    fieldRow('desc', t('f_desc'), text('desc')));
  sendHint = scope.querySelector('.field[data-field="sendType"] .hint');
  const trig = el('div', { class: 'form' }, fieldRow('actions', t('f_triggers'), el('div', { role: 'radiogroup', class: 'checks' },
    el('label', {}, trigGlobal, ' ', t('f_global')), el('label', {}, trigOwn, ' ', t('f_own')))));

  function body() {
    const ty = typeSel.value;
    const b = { name: inputs.name.value.trim(), type: ty, enabled: enabled.checked, sendType: sendSel.value, desc: inputs.desc.value };
    for (const [k] of TYPE_FIELDS[ty]) {
      if (k === 'params') {
        const chosen = paramBoxes.filter((x) => x.checked).map((x) => x.value);
        b.params = chosen.length === DEFAULT_PARAMS.length ? [] : chosen;
      } else b[k] = inputs[k].value.trim();
    }
    b.domain = inputs.domain.value.trim();
    b.products = ids(document.getElementById('f-products').value);
    b.executions = ids(document.getElementById('f-executions').value);
    b.ignoreActors = words(document.getElementById('f-ignoreActors').value);
    b.actions = trigOwn.checked ? matrix.value() : null;
    if (ty === 'default') { if (tplBody.value.trim()) b.template = { body: tplBody.value }; }
    else {
      b.details = details.checked;
      if (tplTitle.value.trim() || tplText.value.trim()) b.template = { title: tplTitle.value, text: tplText.value };
    }
    if (w.sanplexId !== undefined) b.sanplexId = w.sanplexId;
    return b;
  }
  function clearErrors() {
    fill(formErr);
    main().querySelectorAll('.ferr').forEach((x) => { x.textContent = ''; });
    main().querySelectorAll('.invalid').forEach((x) => x.classList.remove('invalid'));
  }
  // A 400 {"error", "field"}: the message beside that field (the whole form's top otherwise).
  function showError(e) {
    const field = e instanceof ApiError && e.body && e.body.field;
    const box = field && main().querySelector(`.field[data-field="${CSS.escape(field)}"]`);
    if (box) {
      markField(box, e.body.error, true);
      formErr.append(el('div', { class: 'error-box' }, t('notSaved', fieldName(box, field))));
    } else formErr.append(errorBox(e));
  }
  let savedBody = null;
  const saveBtn = el('button', { type: 'submit', class: 'primary' }, t('save'));
  const form = el('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearErrors();
      saveBtn.disabled = true;
      try {
        const saved = isNew ? await api('POST', '/api/v1/webhooks', body()) : await api('PUT', '/api/v1/webhooks/' + id, body());
        toast(t('saved'));
        if (isNew) location.hash = '#/webhooks/' + saved.id;
        else { Object.assign(w, saved); savedBody = JSON.stringify(body()); refreshPreview(); }
      } catch (e) { showError(e); }
      saveBtn.disabled = false;
    },
  },
  el('section', { class: 'panel' }, common, typeBox),
  el('section', { class: 'panel' }, scope, chatBox),
  el('section', { class: 'panel' }, trig, matrixWrap),
  el('section', { class: 'panel' }, el('h2', {}, t('f_template')), tplBox),
  formErr,
  el('div', { class: 'row end' }, el('a', { class: 'button', href: '#/webhooks' }, t('cancel')),
    isNew ? null : el('button', { type: 'button', class: 'danger', onclick: () => deleteWebhook(w) }, t('delete')), saveBtn));

  // Preview: live, of the form as it is (POST /api/v1/preview, nothing stored or sent), refreshed
  // PREVIEW_DEBOUNCE_MS after the last edit. Send test: the saved webhook (it is a real send).
  const eventBox = el('textarea', { rows: 4, spellcheck: 'false', id: 'f-event', placeholder: '{"objectType": "bug", "objectID": 12, "action": "resolved", "actor": "alice", "toList": ["bob"]}' });
  const previewOut = el('div', { id: 'preview-out', 'aria-live': 'polite' });
  const testOut = el('div', { 'aria-live': 'polite' }, el('p', { class: 'muted' }, t('notSentYet')));
  const dirtyNote = el('p', { class: 'hint warn', hidden: true }, t('testSaved'));
  // App types send to bound accounts only: "Send to" picks one of them for the sample event.
  const isApp = !isNew && APP_TYPES.includes(w.type);
  const toSel = el('select', { id: 'f-testTo', onchange: () => refreshPreview() }, el('option', { value: '' }, t('testToNobody')));
  if (isApp) {
    api('GET', `/api/v1/webhooks/${id}/bindings`).then((bs) => {
      toSel.append(...bs.map((b) => el('option', { value: b.account }, `${b.account} → ${b.userid}`)));
      if (bs.length) { toSel.value = bs[0].account; refreshPreview(); }
    }).catch(() => { /* the page changed, or no bindings to offer */ });
  }
  function eventBody() {
    const s = eventBox.value.trim();
    if (!s) return isApp && toSel.value ? JSON.stringify(Object.assign({}, SAMPLE_EVENT, { toList: [toSel.value] })) : undefined;
    JSON.parse(s); // throws with a message
    return s;
  }
  // Fields the user has edited: a preview's field error marks only those (a new, empty form is not
  // painted red before anything was typed); the sentence beside the preview names it anyway.
  const touched = new Set();
  let previewSeq = 0;
  let lastPreview = null;
  async function refreshPreview() {
    let req;
    try {
      const ev = eventBody();
      req = JSON.stringify(Object.assign({ webhook: body() }, isNew ? {} : { id: Number(id) }, ev === undefined ? {} : { event: JSON.parse(ev) }));
    } catch (e) { lastPreview = null; fill(previewOut, errorBox(t('invalidJson', e.message))); return; }
    dirtyNote.hidden = isNew || JSON.stringify(body()) === savedBody;
    if (req === lastPreview) return;
    lastPreview = req;
    const seq = ++previewSeq;
    previewOut.classList.add('busy');
    try {
      const p = await api('POST', '/api/v1/preview', req);
      if (seq !== previewSeq) return;
      // The draft passes the checks a save makes: no field is wrong any more.
      unmarkFields();
      fill(formErr);
      const r = p.request;
      fill(previewOut, el('div', { class: 'mono' }, (r.method || 'POST') + ' ' + r.url),
        el('pre', { class: 'headers' }, Object.entries(r.headers || {}).map(([k, v]) => k + ': ' + v).join('\n')),
        el('pre', { class: 'body' }, pretty(r.body)));
    } catch (e) {
      if (e instanceof Stale || seq !== previewSeq) return;
      lastPreview = null;
      unmarkFields();
      // A template that parses but does not render names no field: its message starts with it.
      const msg = (e instanceof ApiError && e.body && e.body.error) || '';
      const field = e instanceof ApiError && e.status === 400 && ((e.body && e.body.field) || (/^(template\.(?:title|text|body))\b/.exec(msg) || [])[1]);
      if (field) {
        const box = main().querySelector(`.field[data-field="${CSS.escape(field)}"]`);
        if (box && (touched.has(field) || !isNew)) markField(box, e.body.error, false);
        fill(previewOut, el('div', { class: 'verdict none preview-error' }, t('previewField', fieldName(box, field), e.body.error)));
      } else if (e instanceof ApiError && e.status === 400) fill(previewOut, el('div', { class: 'verdict none preview-error' }, t('previewFail', msg)));
      else fill(previewOut, errorBox(e));
    } finally { if (seq === previewSeq) previewOut.classList.remove('busy'); }
  }
  function unmarkFields() {
    form.querySelectorAll('.ferr').forEach((x) => { x.textContent = ''; });
    form.querySelectorAll('.invalid').forEach((x) => x.classList.remove('invalid'));
  }
  let debounce;
  const schedule = () => { clearTimeout(debounce); debounce = setTimeout(() => { if (previewOut.isConnected) refreshPreview(); }, PREVIEW_DEBOUNCE_MS); };
  const onEdit = (ev) => {
    const f = ev.target.closest && ev.target.closest('.field');
    if (f) touched.add(f.dataset.field);
    schedule();
  };
  form.addEventListener('input', onEdit);
  form.addEventListener('change', onEdit);
  eventBox.addEventListener('input', schedule);
  async function sendTest(btn) {
    btn.disabled = true;
    fill(testOut, el('p', { class: 'muted' }, t('testing')));
    try {
      const r = await api('POST', `/api/v1/webhooks/${id}/test`, eventBody());
      fill(testOut, el('div', { class: 'verdict ' + (r.ok ? 'ok' : 'bad'), role: 'status' },
        r.ok ? t('testOk') : [verdictWords(r.lastError), t('testFail', t('s_' + r.status)), ' ', r.lastError || '']),
      r.response ? [el('h3', {}, t('response'), ' ', String(r.response.status)), el('pre', {}, pretty(r.response.body))] : null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) fill(testOut, el('div', { class: 'verdict bad' }, t('rateLimited', e.retryAfter || '?'), ' ', e.body.error));
      else fill(testOut, errorBox(e instanceof SyntaxError ? t('invalidJson', e.message) : e));
    }
    btn.disabled = false;
  }
  const testBtn = el('button', { type: 'button', onclick: (ev) => sendTest(ev.currentTarget) }, t('sendTest'));
  const tryPanel = el('section', { class: 'panel', id: 'try' }, el('h2', {}, t('preview'), ' / ', t('sendTest')),
    el('p', { class: 'muted' }, t('previewLive')),
    isApp ? el('div', { class: 'row spaced' }, el('label', { for: 'f-testTo' }, t('testTo')), toSel,
      el('span', { class: 'hint muted' }, t('testToHint'), ' ', el('a', { href: '#/bindings/' + id }, t('bindingsTitle')))) : null,
    el('label', { for: 'f-event' }, t('eventJson')), eventBox, el('p', { class: 'hint muted' }, t('eventHint')),
    el('div', { class: 'two' },
      el('div', {}, el('h3', {}, t('request')), previewOut),
      el('div', {}, el('h3', {}, t('testResult')), isNew ? el('p', { class: 'muted' }, t('previewNeedsSave')) : [el('div', { class: 'row' }, testBtn), dirtyNote, testOut])));

  show(el('div', { class: 'row' }, el('h1', {}, isNew ? t('newWebhook') : t('editWebhook', id) + ' · ' + w.name), el('span', { class: 'spacer' }),
    isNew ? null : el('a', { class: 'button', href: '#/deliveries?webhook=' + id }, t('deliveries')),
    !isNew && APP_TYPES.includes(w.type) ? el('a', { class: 'button', href: '#/bindings/' + id }, t('bindings')) : null),
  w.disabledReason ? el('div', { class: 'error-box' }, t('disabledReason', w.disabledReason)) : null,
  form, tryPanel);
  layout();
  syncTrig();
  savedBody = JSON.stringify(body());
  fill(previewOut, el('p', { class: 'muted' }, t('loading')));
  await refreshPreview();
}

// --- binding ---
async function pageBindings(id) {
  show(el('h1', {}, t('bindingsTitle')), el('p', { class: 'muted' }, t('loading')));
  const hooks = (await api('GET', '/api/v1/webhooks')).filter((w) => APP_TYPES.includes(w.type));
  if (hooks.length === 0) { show(el('h1', {}, t('bindingsTitle')), el('p', { class: 'muted' }, t('noAppWebhooks'))); return; }
  const current = hooks.find((w) => String(w.id) === String(id)) || hooks[0];
  const sel = el('select', { id: 'b-webhook', onchange: () => { location.hash = '#/bindings/' + sel.value; } },
    hooks.map((w) => el('option', { value: w.id, selected: w.id === current.id }, `${w.name} (${t('t_' + w.type)}, #${w.id})`)));
  const unbound = el('input', { type: 'checkbox', id: 'b-unbound', checked: sessionStorage.getItem('sanhook.unbound') === '1' });
  const searchBox = el('input', { type: 'search', id: 'b-search', placeholder: t('search') });
  const status = el('div', { role: 'status' });
  const boundBox = el('section', { id: 'b-bound' });
  const dirBox = el('section', { id: 'b-directory' }, el('p', { class: 'muted' }, t('loading')));
  let bindings = [];
  let users = [];

  // A 409 {"error", "userid", "boundTo", "account"}: the sentence in the page's language.
  function conflictText(e) {
    const b = e.body || {};
    return b.userid && b.boundTo && b.account ? t('conflict', b.userid, b.boundTo, b.account) : errorText(e);
  }
  // Department names (departmentNames, same order as departments), the id where a name is empty.
  const deptNames = (u) => (u.departments || []).map((d, i) => ((u.departmentNames || [])[i] || String(d)));
  async function put(account, userid) {
    fill(status);
    try {
      bindings = await api('PUT', `/api/v1/webhooks/${current.id}/bindings`, { [account]: userid });
      toast(t('saved'));
      await reload();
    } catch (e) {
      fill(status, el('div', { class: 'error-box', role: 'alert' }, e instanceof ApiError && e.status === 409 ? conflictText(e) : errorText(e)));
    }
  }
  async function unbind(account) {
    if (!window.confirm(t('confirmUnbind', account))) return;
    fill(status);
    try { await api('DELETE', `/api/v1/webhooks/${current.id}/bindings/${encodeURIComponent(account)}`); toast(t('saved')); await reload(); } catch (e) { fill(status, errorBox(e)); }
  }
  function renderBound() {
    fill(boundBox, el('h2', {}, t('bound'), ` (${bindings.length})`), bindings.length === 0 ? el('p', { class: 'muted' }, t('noneBound')) :
      el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, t('account')), el('th', {}, t('userid')), el('th', {}, t('actions')))),
        el('tbody', {}, bindings.map((b) => el('tr', {}, el('td', {}, b.account), el('td', { class: 'mono' }, b.userid),
          el('td', {}, el('button', { type: 'button', class: 'danger', onclick: () => unbind(b.account) }, t('unbind')))))))));
  }
  function renderDir() {
    const owner = new Map(bindings.map((b) => [b.userid, b.account]));
    const q = searchBox.value.trim().toLowerCase();
    const shown = users.filter((u) => !q || [u.userid, u.name, ...(u.departments || []), ...deptNames(u)].join(' ').toLowerCase().includes(q));
    fill(dirBox, el('h2', {}, t('directory'), ` (${shown.length})`), shown.length === 0 ? el('p', { class: 'muted' }, q ? t('noneFound', searchBox.value.trim()) : unbound.checked ? t('noneUnbound') : t('noneInDirectory')) :
      el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, el('tr', {}, ['userid', 'name', 'departments', 'account', 'actions'].map((k) => el('th', {}, t(k))))),
        el('tbody', {}, shown.map((u) => {
          const acc = owner.get(u.userid);
          const input = el('input', { type: 'text', value: acc || '', 'aria-label': t('account') + ' — ' + (u.name || u.userid), size: 14 });
          const go = () => { const a = input.value.trim(); if (!a) { toast(t('accountNeeded')); input.focus(); return; } put(a, u.userid); };
          input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
          return el('tr', {}, el('td', { class: 'mono' }, u.userid), el('td', {}, u.name || ''), el('td', { title: (u.departments || []).join(', ') }, deptNames(u).join(', ')),
            el('td', {}, input, acc ? el('div', { class: 'muted' }, t('boundTo', acc)) : null),
            el('td', {}, el('div', { class: 'row' }, el('button', { type: 'button', class: 'primary', onclick: go }, acc ? t('rebind') : t('bind')),
              acc ? el('button', { type: 'button', class: 'danger', onclick: () => unbind(acc) }, t('unbind')) : null)));
        })))));
  }
  async function reload() {
    bindings = await api('GET', `/api/v1/webhooks/${current.id}/bindings`);
    renderBound();
    fill(dirBox, el('p', { class: 'muted' }, t('loading')));
    try {
      users = await api('GET', `/api/v1/webhooks/${current.id}/remote-users${unbound.checked ? '?unbound=true' : ''}`);
      renderDir();
    } catch (e) { fill(dirBox, el('h2', {}, t('directory')), errorBox(e)); }
  }
  unbound.addEventListener('change', () => { sessionStorage.setItem('sanhook.unbound', unbound.checked ? '1' : '0'); reload(); });
  searchBox.addEventListener('input', renderDir);
  show(el('h1', {}, t('bindingsTitle')), el('p', { class: 'muted' }, t('bindingsIntro')),
    el('div', { class: 'panel row' }, el('span', { class: 'group' }, el('label', { for: 'b-webhook' }, t('webhook')), sel),
      el('label', {}, unbound, ' ', t('onlyUnbound')), el('label', { class: 'sr', for: 'b-search' }, t('search')), searchBox,
      el('button', { type: 'button', onclick: reload }, t('refresh'))),
    status, boundBox, dirBox);
  await reload();
}

// --- delivery log ---
function hashQuery() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}
let recoverNote = null;
async function pageDeliveries() {
  const q = hashQuery();
  show(el('h1', {}, t('deliveriesTitle')), el('p', { class: 'muted' }, t('loading')));
  const [hooks, cat] = await Promise.all([api('GET', '/api/v1/webhooks'), catalog().catch(() => null)]);
  const names = new Map(hooks.map((w) => [w.id, w.name]));
  const params = new URLSearchParams();
  for (const k of ['webhook', 'status', 'before']) if (q.get(k)) params.set(k, q.get(k));
  const limit = 50;
  params.set('limit', String(limit));
  const rows = await api('GET', '/api/v1/deliveries?' + params);
  const whSel = el('select', { id: 'd-webhook' }, el('option', { value: '' }, t('allWebhooks')), hooks.map((w) => el('option', { value: w.id, selected: String(w.id) === q.get('webhook') }, `${w.name} (#${w.id})`)));
  const stSel = el('select', { id: 'd-status' }, el('option', { value: '' }, t('allStatuses')), STATUSES.map((s) => el('option', { value: s, selected: s === q.get('status') }, t('s_' + s))));
  const go = (extra) => {
    const p = new URLSearchParams();
    if (whSel.value) p.set('webhook', whSel.value);
    if (stSel.value) p.set('status', stSel.value);
    for (const [k, v] of Object.entries(extra || {})) if (v) p.set(k, v);
    location.hash = '#/deliveries' + (p.toString() ? '?' + p : '');
  };
  whSel.addEventListener('change', () => go());
  stSel.addEventListener('change', () => go());
  // "Newer" pages: the `before` values seen on the way back, kept in the hash.
  const trail = (q.get('trail') || '').split('.').filter(Boolean);
  const olderBtn = () => el('button', { type: 'button', disabled: rows.length < limit, onclick: () => go({ before: String(rows[rows.length - 1].id), trail: [...trail, q.get('before') || '0'].join('.') }) }, t('older'));
  const newerBtn = () => el('button', {
    type: 'button', disabled: !q.get('before'), onclick: () => {
      const prev = trail.slice(0, -1); const b = trail[trail.length - 1];
      go({ before: b && b !== '0' ? b : '', trail: prev.join('.') });
    },
  }, t('newer'));

  const table = rows.length === 0 ? el('p', { class: 'muted empty' }, q.get('webhook') || q.get('status') ? t('noDeliveriesFiltered') : t('noDeliveries')) : el('div', { class: 'table-wrap' }, el('table', {},
    el('thead', {}, el('tr', {}, ['#', t('created'), t('webhook'), t('event'), t('status'), t('attempts'), t('lastStatus'), t('lastError')].map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.map((d) => el('tr', {},
      el('td', {}, el('a', { href: '#/deliveries/' + d.id }, String(d.id))),
      el('td', { class: 'time' }, fmtTime(d.createdAt)),
      el('td', {}, names.get(d.webhookId) || '#' + d.webhookId),
      el('td', { title: `${d.objectType || ''} ${d.objectID || ''} ${d.action || ''}` }, eventText(cat, d)),
      el('td', {}, statusBadge(d.status)),
      el('td', { class: 'num' }, String(d.attempts)),
      el('td', { class: 'num' }, d.lastStatus ? String(d.lastStatus) : ''),
      el('td', { class: 'err' }, d.lastError ? el('div', {}, verdictWords(d.lastError), clamp(d.lastError), bindingLink(d)) : ''))))));

  // Recover: dead since a time.
  const recWh = el('select', { id: 'r-webhook' }, el('option', { value: '' }, '—'), hooks.map((w) => el('option', { value: w.id, selected: String(w.id) === q.get('webhook') }, `${w.name} (#${w.id})`)));
  const hourAgo = new Date(Date.now() - 3600e3);
  const local = new Date(hourAgo.getTime() - hourAgo.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  const recSince = el('input', { type: 'datetime-local', id: 'r-since', value: local });
  // The outcome of a Recover survives the list's reload (the re-queued ones leave the dead filter).
  const recOut = el('div', { role: 'status' }, recoverNote && recoverNote.node);
  const wasRecovered = Boolean(recoverNote);
  if (recoverNote) recWh.value = recoverNote.webhook;
  recoverNote = null;
  const recBtn = el('button', {
    type: 'button', onclick: async () => {
      fill(recOut);
      if (!recWh.value) { recOut.append(el('div', { class: 'error-box' }, t('pickWebhook'))); return; }
      const since = new Date(recSince.value);
      if (isNaN(since)) { recOut.append(el('div', { class: 'error-box' }, t('sinceNeeded'))); return; }
      try {
        const r = await api('POST', `/api/v1/webhooks/${recWh.value}/recover`, { since: since.toISOString() });
        const n = r.requeued;
        recoverNote = { webhook: recWh.value, node: el('div', { class: 'verdict ' + (n ? 'ok' : 'none') }, n === 0 ? t('requeuedNone') : n === 1 ? t('requeuedOne') : t('requeued', n)) };
        await route();
      } catch (e) { recOut.append(errorBox(e)); }
    },
  }, t('recover'));

  show(el('h1', {}, t('deliveriesTitle')),
    el('div', { class: 'panel row', role: 'search' }, el('span', { class: 'group' }, el('label', { for: 'd-webhook' }, t('webhook')), whSel),
      el('span', { class: 'group' }, el('label', { for: 'd-status' }, t('status')), stSel), el('span', { class: 'spacer' }),
      el('button', { type: 'button', onclick: () => go() }, t('newest')), newerBtn(), olderBtn()),
    el('details', { class: 'panel recover', open: q.get('status') === 'dead' || wasRecovered }, el('summary', {}, t('recover')), el('p', { class: 'muted' }, t('recoverIntro')),
      el('div', { class: 'row' }, el('span', { class: 'group' }, el('label', { for: 'r-webhook' }, t('webhook')), recWh), el('span', { class: 'group' }, el('label', { for: 'r-since' }, t('since')), recSince), recBtn), recOut),
    table,
    rows.length === limit ? el('div', { class: 'row end' }, newerBtn(), olderBtn()) : null);
}

// While a delivery is pending or retrying its page follows it (every DETAIL_REFRESH_S seconds)
// until it is delivered, dead or skipped, so a Retry shows its outcome without a reload.
const DETAIL_REFRESH_S = 2;
async function pageDelivery(id, again) {
  if (!again) show(el('h1', {}, t('delivery', id)), el('p', { class: 'muted' }, t('loading')));
  const [d, cat] = await Promise.all([api('GET', '/api/v1/deliveries/' + id), catalog().catch(() => null)]);
  let hookName = '#' + d.webhookId;
  try { hookName = (await api('GET', '/api/v1/webhooks/' + d.webhookId)).name + ' (#' + d.webhookId + ')'; } catch (_) { /* deleted */ }
  const out = el('div', { role: 'status' });
  // Dead or skipped: Retry is the point of the page. Delivered: it can be sent again, but that is
  // a second message to the receiver, so it is not the primary button.
  const finished = ['dead', 'skipped', 'delivered'].includes(d.status);
  const retryBtn = finished ? el('button', {
    type: 'button', class: d.status === 'delivered' ? '' : 'primary', title: t('retryHint'), onclick: async () => {
      try { await api('POST', `/api/v1/deliveries/${id}/retry`); toast(t('retried')); route(); } catch (e) { fill(out, errorBox(e)); }
    },
  }, d.status === 'delivered' ? t('sendAgain') : t('retry')) : el('span', { class: 'muted' }, t('following'));
  const kv = (pairs) => el('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  const p = d.progress || {};
  // Served / refused platform users, each with the account bound to it (when still bound).
  let accountOf = new Map();
  if (p.served || p.rejected) {
    try { accountOf = new Map((await api('GET', `/api/v1/webhooks/${d.webhookId}/bindings`)).map((b) => [b.userid, b.account])); } catch (_) { /* deleted */ }
  }
  const who = (u) => (accountOf.has(u) ? `${u} (${accountOf.get(u)})` : u);
  show(el('div', { class: 'row head' }, el('a', { class: 'button', href: '#/deliveries?webhook=' + d.webhookId }, t('back')), el('h1', {}, t('delivery', id)),
    el('span', { class: 'spacer' }), retryBtn),
  out,
  el('section', { class: 'panel' }, kv([
    [t('status'), statusBadge(d.status)], [t('webhook'), el('a', { href: '#/webhooks/' + d.webhookId }, hookName)],
    [t('event'), [eventText(cat, d), ' ', el('span', { class: 'muted mono' }, `(${t('eventId')} ${d.eventId})`)]],
    [t('created'), fmtTime(d.createdAt)], [t('attempts'), String(d.attempts)],
    [t('lastAttempt'), d.lastAttemptAt ? fmtTime(d.lastAttemptAt) : '—'], [t('nextAttempt'), d.nextAttemptAt ? fmtTime(d.nextAttemptAt) : '—'],
    [t('lastStatus'), d.lastStatus ? String(d.lastStatus) : '—'], d.lastError ? [t('lastError'), el('span', { class: 'err' }, verdictWords(d.lastError), d.lastError, bindingLink(d))] : null,
  ]), el('p', { class: 'muted' }, t('attemptsNote'))),
  historyTable(d),
  (p.served || p.rejected) ? el('section', { class: 'panel' }, el('h2', {}, t('progress')), kv([
    [t('served'), (p.served || []).map(who).join(', ') || '—'],
    [t('rejected'), (p.rejected || []).map((r) => `${who(r.userid)}: ${r.code} ${r.error}`).join('; ') || '—'],
  ])) : null,
  el('div', { class: 'two' },
    el('section', { class: 'panel' }, el('h2', {}, t('request')), d.request ? [el('div', { class: 'mono' }, (d.request.method || 'POST') + ' ' + d.request.url),
      el('pre', {}, Object.entries(d.request.headers || {}).map(([k, v]) => k + ': ' + v).join('\n')), el('pre', {}, pretty(d.request.body))] : el('p', { class: 'muted' }, t('noRequest'))),
    el('section', { class: 'panel' }, el('h2', {}, t('response')), d.response ? [el('div', {}, 'HTTP ', String(d.response.status)), el('pre', {}, pretty(d.response.body))] : el('p', { class: 'muted' }, d.request ? t('noResponse') : '—'))));
  if (!finished) {
    refreshTimer = setTimeout(() => {
      if (location.hash.replace(/^#\/?/, '') === 'deliveries/' + id) pageDelivery(id, true).catch(showFailure);
    }, DETAIL_REFRESH_S * 1000);
  }
}
// The delivery's last attempts (history: oldest first, at most five): time, HTTP status, error.
function historyTable(d) {
  const h = d.history || [];
  return el('section', { id: 'history' }, el('div', { class: 'row' }, el('h2', {}, t('history'), ` (${d.attempts})`), el('span', { class: 'muted small' }, h.length ? t('historyNote') : '')),
    h.length === 0 ? el('p', { class: 'muted' }, t('noHistory')) : el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, [t('h_time'), t('h_status'), t('h_error')].map((x) => el('th', { scope: 'col' }, x)))),
      el('tbody', {}, h.map((a) => el('tr', {},
        el('td', { class: 'time' }, fmtTime(a.at)),
        el('td', { class: 'code' }, a.status ? String(a.status) : el('span', { class: 'muted' }, t('h_noAnswer'))),
        el('td', { class: a.error ? 'err' : 'muted' }, a.error ? el('div', {}, verdictWords(a.error), clamp(a.error)) : t('h_ok'))))))));
}
// "Bug #12 resolved" in the page's language (the catalog's labels; the codes when it has none).
function eventText(cat, d) {
  const ty = label(cat, 'object', d.objectType || '');
  const act = label(cat, 'action', d.action || '').trim();
  return `${ty} #${d.objectID === undefined ? '' : d.objectID} ${act}`.trim();
}
// "no bound recipients" (an app webhook without bindings for the event's toList): where to fix it.
function bindingLink(d) {
  if (!/^no bound recipients: .* not bound/.test(d.lastError || '')) return null;
  return el('div', {}, el('a', { href: '#/bindings/' + d.webhookId }, t('bindThem')));
}

// --- quarantine ---
async function pageQuarantine() {
  show(el('h1', {}, t('quarantineTitle')), el('p', { class: 'muted' }, t('loading')));
  const items = await api('GET', '/api/v1/quarantine?limit=200');
  show(el('h1', {}, t('quarantineTitle')), el('p', { class: 'muted' }, t('quarantineIntro')),
    items.length === 0 ? el('p', { class: 'muted empty' }, t('noQuarantine')) : el('div', { class: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, ['#', t('source'), t('file'), t('offset'), t('reason'), t('raw')].map((h) => el('th', {}, h)))),
      el('tbody', {}, items.map((q) => el('tr', {}, el('td', {}, String(q.id)), el('td', { title: q.source }, t('src_' + q.source) === 'src_' + q.source ? q.source : t('src_' + q.source)), el('td', { class: 'mono' }, q.file || ''),
        el('td', { class: 'num' }, q.offset === undefined || q.offset === null ? '' : String(q.offset)), el('td', { class: 'err' }, q.reason || ''),
        el('td', {}, el('details', {}, el('summary', {}, t('showRaw')), el('pre', {}, q.raw || '')))))))));
}

// --- dashboard ---
// Per-minute counts come from GET /api/v1/stats/minutes (60 rows, oldest first: how many deliveries
// reached each status in each minute, kept in memory since the server started); queue depth and
// latency from GET /metrics (sanhook_queue_depth, sanhook_delivery_seconds); "failing now" from
// /api/v1/stats.
const DASH_REFRESH_S = 15;
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}
function fmtSecs(s) {
  if (!isFinite(s)) return '—';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  return (Number.isInteger(s) ? String(s) : s.toFixed(2)) + ' s';
}
function histQuantile(m, name, q) {
  const buckets = Object.entries(m).filter(([k]) => k.startsWith(name + '_bucket{'))
    .map(([k, v]) => [k.includes('+Inf') ? Infinity : Number(/le="([^"]+)"/.exec(k)[1]), v]).sort((a, b) => a[0] - b[0]);
  const total = m[name + '_count'] || 0;
  if (!total) return NaN;
  for (const [le, c] of buckets) if (c >= q * total) return le;
  return NaN;
}
function chart(buckets, width) {
  const W = Math.max(320, Math.min(960, Math.round(width || 960))), H = W < 600 ? 200 : 240, L = 32, R = 10, T = 10, B = 28;
  const every = W < 600 ? 20 : 10;
  const max = Math.max(1, ...buckets.map((b) => STATUSES.reduce((s, k) => s + (b[k] || 0), 0)));
  const nice = max <= 5 ? max : Math.ceil(max / 5) * 5;
  const bw = (W - L - R) / buckets.length;
  const y = (v) => H - B - (v / nice) * (H - T - B);
  const totals = STATUSES.map((s) => [s, buckets.reduce((n, b) => n + (b[s] || 0), 0)]).filter(([, n]) => n);
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': t('perMinute') + ': ' + (totals.length ? totals.map(([s, n]) => `${t('s_' + s)} ${n}`).join(', ') : t('chartQuiet')) });
  for (let i = 0; i <= 5; i++) {
    const v = Math.round((nice * i) / 5);
    g.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }), svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  buckets.forEach((b, i) => {
    let acc = 0;
    for (const s of STATUSES) {
      if (!b[s]) continue;
      const r = svg('rect', { class: s, x: L + i * bw + 1, width: Math.max(1, bw - 2), y: y(acc + b[s]), height: y(acc) - y(acc + b[s]) });
      r.append(svg('title', {}, `${fmtClock(new Date(b.t)).slice(0, 5)} ${t('s_' + s)}: ${b[s]}`));
      r.dataset.n = b[s];
      g.append(r);
      acc += b[s];
    }
    const ago = buckets.length - 1 - i;
    if (ago % every === 0) g.append(svg('text', { x: L + i * bw + bw / 2, y: H - 8, 'text-anchor': 'middle' }, ago === 0 ? t('now') : t('minutesAgo', ago)));
  });
  g.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (!totals.length) g.append(svg('text', { class: 'quiet', x: (L + W - R) / 2, y: (T + H - B) / 2, 'text-anchor': 'middle' }, t('chartQuiet')));
  return g;
}
async function pageDashboard() {
  if (!main().querySelector('.cards')) show(el('h1', {}, t('dashTitle')), el('p', { class: 'muted' }, t('loading')));
  const now = Date.now();
  const [metricsText, stats, hooks, health, minutes] = await Promise.all([
    api('GET', '/metrics', undefined, true), api('GET', '/api/v1/stats'), api('GET', '/api/v1/webhooks'),
    fetch('/healthz', { cache: 'no-store' }).then((r) => r.json()).catch(() => ({ status: '?' })),
    api('GET', '/api/v1/stats/minutes'),
  ]);
  const buckets = minutes.map((m) => Object.assign({ t: Date.parse(m.at) }, m));
  const m = parseMetrics(metricsText);
  const mean = (m.sanhook_delivery_seconds_sum || 0) / (m.sanhook_delivery_seconds_count || NaN);
  const p95 = histQuantile(m, 'sanhook_delivery_seconds', 0.95);
  const names = new Map(hooks.map((w) => [w.id, w]));
  const failing = stats.filter((s) => s.lastFailureAt && (!s.lastSuccessAt || s.lastFailureAt > s.lastSuccessAt) && names.get(s.webhookId) && names.get(s.webhookId).enabled !== false);
  const depth = m.sanhook_queue_depth || 0;
  show(el('div', { class: 'row' }, el('h1', {}, t('dashTitle')), el('span', { class: 'spacer' }),
    el('span', { class: 'muted' }, t('autoRefresh', DASH_REFRESH_S), ' · ', t('updated', fmtClock(new Date(now))))),
  el('div', { class: 'cards' },
    el('div', { class: 'card' }, el('div', { class: 'muted' }, t('health')), el('div', { class: 'big ' + (health.status === 'ok' ? 'ok' : 'bad') }, health.status === 'ok' ? t('healthOk') : String(health.status)), health.reason ? el('div', { class: 'err' }, health.reason) : null),
    el('div', { class: 'card' }, el('div', { class: 'muted' }, t('queueDepth')), el('div', { class: 'big' }, String(depth))),
    el('div', { class: 'card' }, el('div', { class: 'muted' }, t('latency')), el('div', { class: 'big' }, 'p95 ≤ ' + fmtSecs(p95)), el('div', { class: 'muted' }, t('latencyMean', fmtSecs(mean)))),
    el('div', { class: 'card' }, el('div', { class: 'muted' }, t('failingNow')), el('div', { class: 'big ' + (failing.length ? 'bad' : 'ok') }, String(failing.length)))),
  el('section', { class: 'panel chart' }, el('h2', {}, t('perMinute')), chart(buckets, main().clientWidth - 60),
    el('div', { class: 'legend' }, STATUSES.map((s) => el('span', {}, el('i', { class: s }), t('s_' + s), ' ',
      el('b', { class: 'n' }, String(buckets.reduce((n, b) => n + (b[s] || 0), 0)))))),
    el('p', { class: 'muted' }, t('chartNote'), health.startedAt ? ' ' + t('startedAt', fmtTime(health.startedAt)) : '')),
  el('section', {}, el('h2', {}, t('failingNow')), failing.length === 0 ? el('p', { class: 'muted' }, t('noneFailing')) :
    el('div', { class: 'table-wrap' }, el('table', {}, el('thead', {}, el('tr', {}, [t('name'), t('pendingDead'), t('lastSuccess'), t('lastError')].map((h) => el('th', {}, h)))),
      el('tbody', {}, failing.map((s) => el('tr', {}, el('td', {}, el('a', { href: '#/deliveries?webhook=' + s.webhookId }, s.name)),
        el('td', { class: 'num' }, `${s.pending + s.retrying} / ${s.dead}`), el('td', { class: 'time' }, fmtTime(s.lastSuccessAt)),
        el('td', { class: 'err' }, fmtTime(s.lastFailureAt), ': ', s.lastError || ''))))))));
  refreshTimer = setTimeout(() => { if (currentPage() === 'dashboard') pageDashboard().catch(showFailure); }, DASH_REFRESH_S * 1000);
}

// ---------------------------------------------------------------------------------------------
// Routing, header, language switch.
const NAV = [['dashboard', 'navDashboard'], ['webhooks', 'navWebhooks'], ['triggers', 'navTriggers'], ['bindings', 'navBindings'], ['deliveries', 'navDeliveries'], ['quarantine', 'navQuarantine']];
function currentPage() { return (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0]) || 'webhooks'; }
function renderNav() {
  const cur = currentPage();
  document.getElementById('nav').replaceChildren(...NAV.map(([p, k]) => el('a', { href: '#/' + p, 'aria-current': p === cur ? 'page' : false }, t(k))));
  document.documentElement.lang = lang === 'zh-cn' ? 'zh-CN' : 'en';
  document.querySelectorAll('[data-i18n]').forEach((x) => { x.textContent = t(x.dataset.i18n); });
  document.title = 'sanhook · ' + t((NAV.find(([p]) => p === cur) || [0, 'navWebhooks'])[1]);
}
function showFailure(e) { if (!(e instanceof Stale)) show(el('h1', {}, t('error')), errorBox(e)); }
async function route() {
  routeGen++;
  clearTimeout(refreshTimer);
  renderNav();
  const path = location.hash.replace(/^#\/?/, '').split('?')[0].split('/');
  try {
    switch (path[0] || 'webhooks') {
      case 'webhooks': await (path[1] ? pageWebhook(path[1]) : pageWebhooks()); break;
      case 'triggers': await pageTriggers(); break;
      case 'bindings': await pageBindings(path[1]); break;
      case 'deliveries': await (path[1] ? pageDelivery(path[1]) : pageDeliveries()); break;
      case 'quarantine': await pageQuarantine(); break;
      case 'dashboard': await pageDashboard(); break;
      default: show(el('h1', {}, t('notFound')));
    }
  } catch (e) { showFailure(e); }
}

document.addEventListener('DOMContentLoaded', () => {
  const langSel = document.getElementById('lang');
  langSel.value = lang;
  langSel.addEventListener('change', () => { lang = langSel.value; localStorage.setItem('sanhook.lang', lang); route(); });
  document.getElementById('forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); updateTokenButton(); toast(t('tokenForgotten')); });
  updateTokenButton();
  window.addEventListener('hashchange', () => { route(); main().focus({ preventScroll: true }); });
  if (!location.hash) history.replaceState(null, '', '#/webhooks');
  route();
});
