//! The bearer token guard. With a token configured, every route but the health checks and the
//! dashboard's page and files (which hold no data) needs `Authorization: Bearer <token>`.
//! Tokens are compared as SHA-256 digests in constant time, so neither the content nor the
//! length of the configured token leaks through timing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Routes open without a token: liveness probes carry no data.
const OPEN: [&str; 2] = ["/api/health", "/api/v1/health"];

/// Lets a request through when no token is configured, the route is open, or it carries the
/// token; otherwise answers 401.
pub async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.server.api_token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if OPEN.contains(&path) || super::web::is_dashboard(path) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // The admin token is good for every route too.
    let admin = state.config.server.admin_token.as_deref();
    if given
        .is_some_and(|g| token_matches(g, expected) || admin.is_some_and(|a| token_matches(g, a)))
    {
        return next.run(request).await;
    }
    let e = ApiError::new(
        super::error::ErrorCode::Unauthorized,
        if given.is_none() {
            "this host needs an API token: send `Authorization: Bearer <token>`"
        } else {
            "the API token is not valid"
        },
    );
    e.for_path(path).into_response()
}

/// Whether `given` is the token, compared in constant time.
pub fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        assert!(token_matches("s3cret-token-0123", "s3cret-token-0123"));
        assert!(!token_matches("s3cret-token-0124", "s3cret-token-0123"));
        assert!(!token_matches("", "s3cret-token-0123"));
        assert!(!token_matches("s3cret-token-0123 ", "s3cret-token-0123"));
    }
}
