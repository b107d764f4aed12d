//! The platform directory of a work/app-message webhook: `/api/v1/webhooks/{id}/remote-users`.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ApiError, AppState, ErrorBody};
use crate::deliver::RemoteUser;

pub(super) fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Query {
    /// `true`: only users not bound on this webhook.
    #[param(value_type = Option<bool>)]
    unbound: Option<String>,
}

/// Lists the directory live (all departments, all pages, each user once); `?unbound=true`
/// hides users already bound on this webhook.
#[utoipa::path(
    tag = "bindings", operation_id = "listRemoteUsers",
    params(("id" = u64, Path, description = "The webhook's id (dinguser, wechatuser, feishuuser)"), Query),
    responses(
        (status = 200, description = "The platform's directory, each user once", body = Vec<RemoteUser>),
        (status = 400, description = "Not an app type, or a bad `unbound`", body = ErrorBody),
        (status = 502, description = "The platform refused or could not be reached", body = ErrorBody),
    )
)]
#[get("/webhooks/{id}/remote-users")]
async fn list(
    state: web::Data<AppState>,
    id: web::Path<u64>,
    q: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let unbound = match q.unbound.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "query unbound: expected true or false, got {other:?}"
            )))
        }
    };
    let users = state.engine.remote_users(*id, unbound).await?;
    Ok(HttpResponse::Ok().json(users))
}
