//! The web admin at `GET /` (docs/reference.md §4): one HTML page, a stylesheet and a script,
//! embedded in the binary (nothing fetched from elsewhere, no build step) and served with a strict
//! `Content-Security-Policy`. The page itself needs no token; it calls `/api/v1` like any client
//! (same origin, `Content-Type: application/json`, `Authorization: Bearer` once the API asks).
//!
//! `GET /admin/catalog.json` gives the page what the API does not list: every object type and
//! action of Sanplex's Notification Settings (the trigger matrix) and their names in English and
//! Simplified Chinese (fixtures/labels.tsv). It holds nothing secret, so it needs no token either.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Scripts and styles from this server only: no inline code, no other origin, no framing.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";

/// Registers `GET /` and `GET /admin/{file}` (and `HEAD` of both).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/", web::head().to(index))
        .route("/admin/catalog.json", web::get().to(catalog))
        .route("/admin/{file}", web::get().to(asset))
        .route("/admin/{file}", web::head().to(asset));
}

fn page(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("content-security-policy", CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("x-frame-options", "DENY"))
        .body(body)
}

async fn index() -> HttpResponse {
    page("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    match file.as_str() {
        "app.js" => page("text/javascript; charset=utf-8", APP_JS),
        "app.css" => page("text/css; charset=utf-8", APP_CSS),
        _ => HttpResponse::NotFound().json(json!({"error": "no such admin file"})),
    }
}

/// `{"triggers": {objectType: [action, ...]}, "labels": {"object"|"action": {code: {"en", "zh-cn"}}}}`.
async fn catalog() -> HttpResponse {
    let body = json!({
        "triggers": crate::route::default_triggers(),
        "labels": labels(),
    });
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-cache"))
        .json(body)
}

/// The labels notification text uses (`deliver::text`) as `{kind: {code: {"en", "zh-cn"}}}`.
fn labels() -> Value {
    let mut out: Map<String, Value> = Map::new();
    for (kind, code, en, zh) in crate::deliver::text::all_labels() {
        if let Value::Object(m) = out.entry(kind).or_insert_with(|| Value::Object(Map::new())) {
            m.insert(code.to_string(), json!({"en": en, "zh-cn": zh}));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_both_languages() {
        let l = labels();
        assert_eq!(l["object"]["bug"]["en"], "Bug");
        assert!(l["action"]["opened"]["zh-cn"].as_str().is_some());
    }
}
