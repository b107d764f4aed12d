//! User bindings of work/app-message webhooks: `/api/v1/webhooks/{id}/bindings[/{account}]`.

use actix_web::http::StatusCode;
use actix_web::{delete, get, put, web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{parse_json, read_body, ApiError, AppState, ErrorBody};

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(bind).service(unbind);
}

/// An account bound to a platform user.
#[derive(Serialize, ToSchema)]
struct Binding {
    /// The Sanplex account.
    account: String,
    /// The platform's user id (Lark: the `open_id`).
    userid: String,
}

fn app_webhook(state: &AppState, id: u64) -> Result<(), ApiError> {
    let wh = state.engine.webhook(id)?;
    if !wh.kind.is_app() {
        return Err(ApiError::bad(format!(
            "webhook {id} is of type {}; bindings apply to dinguser, wechatuser and feishuuser",
            wh.kind
        )));
    }
    Ok(())
}

async fn bindings(state: &AppState, id: u64) -> Result<HttpResponse, ApiError> {
    let rows = state.engine.bindings(id).await?;
    let out: Vec<Binding> = rows
        .into_iter()
        .map(|(account, userid)| Binding { account, userid })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// The accounts bound on a work/app-message webhook.
#[utoipa::path(
    tag = "bindings", operation_id = "listBindings",
    params(("id" = u64, Path, description = "The webhook's id (dinguser, wechatuser, feishuuser)")),
    responses(
        (status = 200, description = "Every binding", body = Vec<Binding>),
        (status = 400, description = "The webhook is not of an app type", body = ErrorBody),
    )
)]
#[get("/webhooks/{id}/bindings")]
async fn list(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    app_webhook(&state, *id)?;
    bindings(&state, *id).await
}

/// Binds or re-binds accounts: `{"account": "userid", ...}`. A platform user is bound to one
/// account at most within a webhook.
#[utoipa::path(
    tag = "bindings", operation_id = "putBindings",
    params(("id" = u64, Path, description = "The webhook's id (dinguser, wechatuser, feishuuser)")),
    request_body(content = BTreeMap<String, String>, description = "account → platform user id"),
    responses(
        (status = 200, description = "Every binding after the change", body = Vec<Binding>),
        (status = 400, description = "Not an app type, or a user id that is not a non-empty string (`field`: the account)", body = ErrorBody),
        (status = 409, description = "The platform user is bound to another account: the message names both, and `userid`, `boundTo` and `account` give them", body = ErrorBody),
    )
)]
#[put("/webhooks/{id}/bindings")]
async fn bind(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    app_webhook(&state, *id)?;
    let body = read_body(payload, state.engine.config().server.max_body).await?;
    let v = parse_json(&body)?;
    let obj = v.as_object().ok_or_else(|| {
        ApiError::bad("bindings must be an object {\"account\": \"userid\", ...}")
    })?;
    let mut changes = Vec::with_capacity(obj.len());
    for (account, userid) in obj {
        match userid.as_str() {
            Some(u) if !u.is_empty() && !account.is_empty() => {
                changes.push((account.clone(), u.to_string()))
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("binding for {account:?}: expected a non-empty platform user id string, got {userid}"),
                    json!({"field": account}),
                ))
            }
        }
    }
    state.engine.bind(*id, changes).await?;
    bindings(&state, *id).await
}

/// Unbinds an account.
#[utoipa::path(
    tag = "bindings", operation_id = "deleteBinding",
    params(
        ("id" = u64, Path, description = "The webhook's id"),
        ("account" = String, Path, description = "The Sanplex account"),
    ),
    responses(
        (status = 204, description = "Unbound"),
        (status = 400, description = "The webhook is not of an app type", body = ErrorBody),
    )
)]
#[delete("/webhooks/{id}/bindings/{account}")]
async fn unbind(
    state: web::Data<AppState>,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, account) = path.into_inner();
    app_webhook(&state, id)?;
    state.engine.unbind(id, &account).await?;
    Ok(HttpResponse::NoContent().finish())
}
