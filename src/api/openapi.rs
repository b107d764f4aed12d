//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the API (docs/reference.md §4).
//!
//! Paths and schemas come from the handlers themselves: each carries a `#[utoipa::path]` beside
//! its actix route attribute, and `utoipa_actix_web` collects them while [`super::api`] registers
//! them, so a route cannot be served without being described. What every operation can answer
//! because of the middleware (401, 403, 415, 408, 413, 503) is added here once.

use std::sync::OnceLock;

use actix_web::{get, App, HttpResponse};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};
use utoipa_actix_web::AppExt;

use super::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sanhook",
        description = "Webhook dispatch for Sanplex (ZenTao): action events in, signed \
                       notifications out to generic endpoints and DingTalk, WeCom and Lark. \
                       Errors are `{\"error\": message, ...}`; the other keys name where \
                       (`field`, `key`, `index`, `line`, `column`). With `server.token` set, \
                       every `/api/v1` call but this document needs `Authorization: Bearer`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "events", description = "Action events in"),
        (name = "webhooks", description = "Webhooks, their preview, test and recovery"),
        (name = "bindings", description = "Accounts bound to platform users (app types)"),
        (name = "settings", description = "Global trigger settings"),
        (name = "deliveries", description = "The delivery log, retries and the async outbox"),
        (name = "operations", description = "Health, metrics, quarantine, counts"),
    )
)]
struct Doc;

/// Adds the bearer scheme and the answers the middleware gives to every operation. Applied
/// after the paths are collected (a `modifiers(...)` of the derive would run before).
struct Common;

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error(description));
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for Common {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("server.token"))
                    .build(),
            ),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            let guarded = path.starts_with("/api/") && path != "/api/v1/openapi.json";
            for op in operations(item) {
                if guarded {
                    op.security = Some(vec![SecurityRequirement::new("bearer", [""; 0])]);
                    add(op, "401", "Missing or wrong bearer token");
                    add(op, "403", "The Origin header is not this server");
                }
                if op.request_body.is_some() {
                    add(op, "400", "The body is not valid");
                    add(op, "408", "The body was not sent in time");
                    add(op, "413", "The body is larger than server.max_body");
                    add(op, "415", "The body is not JSON (or NDJSON for events)");
                }
                if path.contains('{') {
                    add(op, "404", "No such object");
                }
                if guarded {
                    add(
                        op,
                        "503",
                        "The store cannot commit (Retry-After says when to try again)",
                    );
                }
            }
        }
    }
}

/// An OpenAPI link: the answer `status` of operation `from` gives the parameters of every
/// operation under `under` (`(name, runtime expression)`), so that clients and test generators
/// such as schemathesis can chain calls.
struct Chain {
    from: &'static str,
    status: &'static str,
    under: &'static str,
    params: &'static [(&'static str, &'static str)],
}

/// Where the ids that the `{id}` and `{account}` operations take come from: a created webhook,
/// a page of the log, a binding.
const CHAINS: &[Chain] = &[
    Chain {
        from: "createWebhook",
        status: "201",
        under: "/api/v1/webhooks/{id}",
        params: &[("id", "$response.body#/id")],
    },
    Chain {
        from: "listDeliveries",
        status: "200",
        under: "/api/v1/deliveries/{id}",
        params: &[("id", "$response.body#/0/id")],
    },
    Chain {
        from: "putBindings",
        status: "200",
        under: "/api/v1/webhooks/{id}/bindings/{account}",
        params: &[
            ("id", "$request.path.id"),
            ("account", "$response.body#/0/account"),
        ],
    },
];

fn add_links(api: &mut OpenApi) {
    for chain in CHAINS {
        let targets: Vec<String> = api
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| path.starts_with(chain.under))
            .flat_map(|(_, item)| operations(item).filter_map(|op| op.operation_id.clone()))
            .filter(|id| id != chain.from)
            .collect();
        for item in api.paths.paths.values_mut() {
            for op in operations(item) {
                if op.operation_id.as_deref() != Some(chain.from) {
                    continue;
                }
                if let Some(RefOr::T(response)) = op.responses.responses.get_mut(chain.status) {
                    for target in &targets {
                        let mut link = LinkBuilder::new().operation_id(target.clone());
                        for (name, value) in chain.params {
                            link = link.parameter(*name, *value);
                        }
                        response.links.insert(target.clone(), link.build().into());
                    }
                }
            }
        }
    }
}

/// The description, built once from the same registration that serves the routes.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut api) = App::new()
            .into_utoipa_app()
            .openapi(Doc::openapi())
            .configure(super::api)
            .split_for_parts();
        Common.modify(&mut api);
        add_links(&mut api);
        api.to_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "the description failed: {e}"}}"#))
    })
}

/// The OpenAPI 3.1 description of this API (no token needed).
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/api/v1/openapi.json")]
pub(super) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
