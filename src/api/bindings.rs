//! User bindings of work/app-message webhooks: `/api/v1/webhooks/{id}/bindings[/{account}]`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{parse_json, read_body, ApiError, AppState};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/{id}/bindings", web::get().to(list))
        .route("/webhooks/{id}/bindings", web::put().to(put))
        .route(
            "/webhooks/{id}/bindings/{account}",
            web::delete().to(delete),
        );
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

async fn list(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    app_webhook(&state, *id)?;
    let rows = state.engine.bindings(*id).await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(account, userid)| json!({"account": account, "userid": userid}))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn put(
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
                    json!({"key": account}),
                ))
            }
        }
    }
    state.engine.bind(*id, changes).await?;
    list(state, id).await
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, account) = path.into_inner();
    app_webhook(&state, id)?;
    state.engine.unbind(id, &account).await?;
    Ok(HttpResponse::NoContent().finish())
}
