//! The platform directory of a work/app-message webhook: `/api/v1/webhooks/{id}/remote-users`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{ApiError, AppState};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/{id}/remote-users", web::get().to(list));
}

#[derive(Deserialize)]
struct Query {
    unbound: Option<String>,
}

/// Lists the directory live (all departments, all pages, each user once); `?unbound=true`
/// hides users already bound on this webhook.
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
