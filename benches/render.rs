//! What it costs to turn one action event into what goes on the wire: the text, the `default`
//! JSON body and its Standard Webhooks signature, and each chat platform's body and signature.
//! Deliveries are rendered at send time (CONTRACT: a corrected URL or secret applies to
//! retries), so this runs once per attempt.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sanhook::config::Lang;
use sanhook::deliver::digest;
use sanhook::deliver::{chat, payload, sign, text};
use sanhook::event::ActionEvent;
use sanhook::webhook::{Webhook, WebhookType, DEFAULT_PARAMS};

/// The first event of `shared/samples/actions.ndjson`, typical in size and content.
fn event() -> ActionEvent {
    ActionEvent {
        id: Some(100001),
        object_type: "bug".into(),
        object_id: 146,
        product: vec![1],
        project: 12,
        execution: 5,
        actor: "admin".into(),
        action: "confirmed".into(),
        date: "2026-11-20 09:00:35".into(),
        object_name: Some("导出报表时数据丢失".into()),
        actor_name: Some("Admin".into()),
        to_list: vec!["alice".into(), "bob".into()],
        mentions: vec!["13800000001".into()],
        ..ActionEvent::default()
    }
}

fn bench_default(c: &mut Criterion) {
    let ev = event();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut g = c.benchmark_group("default");
    g.bench_function("render_en", |b| {
        b.iter(|| text::render(black_box(&ev), "", "http://pm.example.com/", Lang::En))
    });
    g.bench_function("render_zh", |b| {
        b.iter(|| text::render(black_box(&ev), "", "http://pm.example.com/", Lang::ZhCn))
    });
    let r = text::render(&ev, "", "http://pm.example.com", Lang::En);
    g.bench_function("default_payload", |b| {
        b.iter(|| payload::default_payload(black_box(&ev), &DEFAULT_PARAMS, &r.text))
    });
    let body = payload::default_payload(&ev, &DEFAULT_PARAMS, &r.text);
    g.bench_function("standard_signature", |b| {
        b.iter(|| {
            payload::standard_webhooks_signature(
                secret,
                "msg_100001_7",
                1614265330,
                black_box(&body),
            )
        })
    });
    g.bench_function("render+payload+signature", |b| {
        b.iter(|| {
            let r = text::render(black_box(&ev), "", "http://pm.example.com", Lang::En);
            let body = payload::default_payload(&ev, &DEFAULT_PARAMS, &r.text);
            let sig =
                payload::standard_webhooks_signature(secret, "msg_100001_7", 1614265330, &body);
            (body, sig)
        })
    });
    g.finish();
}

fn bench_chat(c: &mut Criterion) {
    let ev = event();
    let r = text::render(&ev, "", "http://pm.example.com", Lang::ZhCn);
    let mut g = c.benchmark_group("chat");
    g.bench_function("dinggroup_body+signed_url", |b| {
        b.iter(|| {
            let body =
                chat::dingtalk_markdown(&r.title, &r.text, black_box(&ev.mentions)).to_string();
            let url = sign::dingtalk_signed_url(
                "https://oapi.dingtalk.com/robot/send?access_token=abc",
                "SEC000000000000000000000",
                1577836800000,
            );
            (body, url)
        })
    });
    g.bench_function("dinguser_body", |b| {
        b.iter(|| {
            let msg = chat::dingtalk_work_markdown(&r.title, black_box(&r.text), &ev.date);
            chat::dingtalk_work_body(2800123, &["u1", "u2"], msg).to_string()
        })
    });
    g.bench_function("wechatgroup_body", |b| {
        b.iter(|| chat::wecom_group(black_box(&r.text), &ev.mentions).to_string())
    });
    g.bench_function("wechatuser_body", |b| {
        b.iter(|| chat::wecom_app_body(&["u1", "u2"], 1000002, black_box(&r.text)).to_string())
    });
    g.bench_function("feishugroup_body+sign", |b| {
        b.iter(|| {
            let card = chat::feishu_card(&r.title, black_box(&r.text));
            let sign = sign::feishu_sign("test-secret", 1599360473);
            chat::feishu_group_body(card, Some(1599360473), Some(sign)).to_string()
        })
    });
    g.bench_function("feishuuser_body", |b| {
        b.iter(|| {
            let card = chat::feishu_card(&r.title, black_box(&r.text));
            chat::feishu_app_body("ou_123", &card).to_string()
        })
    });
    g.bench_function("dingtalk_sign", |b| {
        b.iter(|| sign::dingtalk_sign(black_box("SEC000000000000000000000"), 1577836800000))
    });
    g.bench_function("feishu_sign", |b| {
        b.iter(|| sign::feishu_sign(black_box("test-secret"), 1599360473))
    });
    g.finish();
}

/// A digest of 20 events (one DingTalk bot's minute), and fitting 100 waiting events into
/// digests: divide by the event count for the cost per event.
fn bench_digest(c: &mut Criterion) {
    let events: Vec<ActionEvent> = (0..100)
        .map(|i| ActionEvent {
            object_id: 146 + i,
            ..event()
        })
        .collect();
    let refs: Vec<&ActionEvent> = events.iter().collect();
    let mut g = c.benchmark_group("digest");
    for kind in [
        WebhookType::Dinggroup,
        WebhookType::Wechatgroup,
        WebhookType::Feishugroup,
    ] {
        let wh = Webhook {
            kind,
            secret: "test-secret".into(),
            ..Webhook::default()
        };
        g.bench_function(format!("{kind}_body_20_events"), |b| {
            b.iter(|| {
                digest::digest_body(
                    kind,
                    &wh,
                    black_box(&refs[..20]),
                    "http://pm.example.com",
                    Lang::ZhCn,
                )
                .to_string()
            })
        });
        g.bench_function(format!("{kind}_fits_of_100_events"), |b| {
            b.iter(|| {
                digest::digest_fits(
                    kind,
                    &wh,
                    black_box(&refs),
                    "http://pm.example.com",
                    Lang::ZhCn,
                )
            })
        });
    }
    g.finish();
}

/// Issue 8: an event at the 1,000-entry caps (mentions, toList, products) parsed, rendered for
/// a DingTalk bot, and 100 such events fitted into digests (mentions merged): what one hostile
/// event can cost the dispatch thread at most.
fn bench_crowded(c: &mut Criterion) {
    let n = sanhook::event::MAX_ENTRIES;
    let json = serde_json::json!({
        "id": 1, "objectType": "bug", "objectID": 146, "actor": "admin", "action": "confirmed",
        "mentions": (0..n).map(|i| format!("138{i:08}")).collect::<Vec<_>>(),
        "toList": (0..n).map(|i| format!("user{i}")).collect::<Vec<_>>(),
        "product": (1..=n as u64).collect::<Vec<_>>(),
    })
    .to_string();
    let mut g = c.benchmark_group("crowded");
    g.bench_function("parse_1000_of_each", |b| {
        b.iter(|| {
            let mut bytes = json.clone().into_bytes();
            sanhook::event::parse_event(black_box(&mut bytes), "2026-01-05 18:35:21")
        })
    });
    let ev = sanhook::event::parse_event(&mut json.clone().into_bytes(), "2026-01-05 18:35:21")
        .expect("parses");
    g.bench_function("dinggroup_body_1000_mentions", |b| {
        b.iter(|| {
            let r = text::render(black_box(&ev), "", "http://pm.example.com", Lang::En);
            chat::dingtalk_markdown(&r.title, &r.text, &ev.mentions).to_string()
        })
    });
    let events: Vec<ActionEvent> = (0..100)
        .map(|i| ActionEvent {
            object_id: i,
            mentions: (i * 500..i * 500 + n as u64)
                .map(|m| format!("138{m:08}"))
                .collect(),
            ..ev.clone()
        })
        .collect();
    let refs: Vec<&ActionEvent> = events.iter().collect();
    // WeCom counts only the text against its limit (the mentions travel beside it), so every
    // step of the search merges the mentions of up to 100 events: 50,500 distinct numbers.
    let wh = Webhook {
        kind: WebhookType::Wechatgroup,
        ..Webhook::default()
    };
    g.bench_function("wechatgroup_fits_of_100_events_1000_mentions_each", |b| {
        b.iter(|| {
            digest::digest_fits(
                WebhookType::Wechatgroup,
                &wh,
                black_box(&refs),
                "http://pm.example.com",
                Lang::En,
            )
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_default,
    bench_chat,
    bench_digest,
    bench_crowded
);
criterion_main!(benches);
