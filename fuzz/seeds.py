#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/ (not committed).

Sources: the sample events (shared samples/actions.ndjson when present, fixtures/actions.ndjson),
fixtures/events/cases.json, fixtures/config/, config.toml, README's webhook and template
examples, and a few hand-written webhooks and templates. `cargo fuzz cmin` then reduces
them, with what the fuzzer found, to the committed fuzz/corpus/<target>/.

    python3 fuzz/seeds.py [path/to/actions.ndjson]
"""
import glob
import hashlib
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def events():
    paths = sys.argv[1:] or [os.path.join(ROOT, "fixtures", "actions.ndjson")]
    lines = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            lines += [l.strip() for l in f if l.strip()]
    for l in lines:
        put("event_body", l)
    # Bodies: arrays, NDJSON, pretty-printed, with a BOM, CRLF, blank lines, changes.
    for n in (2, 5, 20):
        put("event_body", "[" + ",".join(lines[:n]) + "]")
        put("event_body", "\n".join(lines[n : 2 * n]) + "\n")
    put("event_body", json.dumps(json.loads(lines[0]), indent=2, ensure_ascii=False))
    put("event_body", "\ufeff" + "\r\n".join(lines[:3]) + "\r\n\r\n")
    put("event_body", "[\n" + ",\n".join(lines[3:6]) + "\n]\n")
    ev = json.loads(lines[0])
    ev["changes"] = [
        {"field": "status", "old": "active", "new": "resolved"},
        {"field": "pri", "old": 3, "new": None},
    ]
    ev["product"] = [1, "2", 0]
    ev["kanbanID"] = "7"
    put("event_body", json.dumps(ev, ensure_ascii=False))
    with open(os.path.join(ROOT, "fixtures", "events", "cases.json"), encoding="utf-8") as f:
        for case in json.load(f):
            put("event_body", case["input"])


def json_blocks(text):
    for block in re.findall(r"```json\n(.*?)\n```", text, re.S):
        try:
            yield json.loads(block)
        except ValueError:
            pass


def webhooks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    found = [v for v in json_blocks(readme) if isinstance(v, dict) and "name" in v]
    hand = [
        {"name": "a", "type": "default", "url": "http://x/", "params": ["objectType", "text"],
         "contentType": "application/x-www-form-urlencoded", "products": [1, 2],
         "executions": [5], "sendType": "async", "domain": "http://pm.example.com"},
        {"name": "d", "type": "dinggroup", "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
         "secret": "SEC1", "details": True, "ignoreActors": ["system"],
         "actions": {"bug": ["opened", "resolved"], "sanhook": ["storeError"]}},
        {"name": "du", "type": "dinguser", "agentId": "2800123", "appKey": "k", "appSecret": "s",
         "apiBase": "http://127.0.0.1:9/"},
        {"name": "wu", "type": "wechatuser", "wechatCorpId": "c", "wechatCorpSecret": "s",
         "wechatAgentId": "1000002"},
        {"name": "wg", "type": "wechatgroup", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"},
        {"name": "fg", "type": "feishugroup", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/tok",
         "template": {"title": "{{ title }}", "text": "{{ text }}"}},
        {"name": "fu", "type": "feishuuser", "feishuAppId": "cli_1", "feishuAppSecret": "******",
         "enabled": False, "desc": "x", "sanplexId": 3, "id": 9, "actions": {}},
        {"name": "b", "type": "default", "url": "http://u:p@x/", "template": {"body": "{\"t\": \"{{ text }}\"}"}},
        {"name": "n", "type": None, "actions": None, "template": None},
    ]
    for v in found + hand:
        put("webhook_json", json.dumps(v, ensure_ascii=False))
    put("webhook_json", '{"name": "bad", "type": "dingding"}')
    put("webhook_json", '{"name": "bad", "actions": {"bug": "opened"}}')
    put("webhook_json", "[1]")
    return found


def configs():
    paths = glob.glob(os.path.join(ROOT, "fixtures", "config", "*", "*.toml"))
    paths.append(os.path.join(ROOT, "config.toml"))
    for p in paths:
        with open(p, "rb") as f:
            put("config_toml", f.read())


def templates(readme_webhooks):
    sources = []
    for wh in readme_webhooks:
        t = wh.get("template") or {}
        for which, key in ((0, "title"), (1, "text"), (2, "body")):
            if key in t:
                sources.append((which, t[key]))
    hand = [
        (0, "[{{ typeLabel }}] {{ objectName }}"),
        (1, "{% for c in changes %}{{ c.label }}: {{ c.old }}→{{ c.new }};{% endfor %}"),
        (1, "{{ comment | striptags }} {{ toList | join(',') }} {{ mentions | length }}"),
        (1, "{% if kanbanID %}{{ kanbanID }}{% else %}{{ lang }}{% endif %}{{ date[:10] }}"),
        (1, "{% macro m(x) %}{{ x | upper }}{% endmacro %}{{ m(actor) }}{% set y = 3 %}{{ y * 2 }}"),
        (2, '{"text": "{{ text }}", "id": {{ objectID }}, "products": {{ product }}, "changes": {{ changes }}, "name": {{ objectName | tojson }}}'),
        (2, '{"title": "{{ title }}", "url": "{{ url }}", "label": "{{ label }}", "lang": "{{ lang }}"}'),
        (1, "{% for i in range(100) %}{% for j in range(100) %}x{% endfor %}{% endfor %}"),
        (1, "{{ 'x' * 1000 }}{{ range(10) | list | tojson }}{{ actor | replace('a', 'b') }}"),
        (0, "{% raw %}{{ x }}{% endraw %}{# comment #}{{ x | default('-') }}"),
    ]
    for which, src in sources + hand:
        put("template", bytes([which]) + src.encode())


events()
configs()
templates(webhooks())
for t in sorted(os.listdir(OUT)):
    print(t, len(os.listdir(os.path.join(OUT, t))))
