//! How a module declares its routes, once, for two uses: [`api_routes!`] makes `router()`, the
//! routes for serving (plain axum), and `documented()`, the same routes with their OpenAPI
//! operations (utoipa-axum; for the document, built on its first request). Serving never runs
//! the documentation's code: building every operation's schemas, or merely asking each for its
//! path, would fault in megabytes of the binary's pages in every host, for a document few ask
//! for. `declared()` lists what the router serves beside what the documentation says, so a
//! test holds the two to each other.

/// Declares a module's routes as `(method, "path", route_fn)`; each route function carries its
/// `#[utoipa::path]`. Makes `router()`, `documented()` and `declared()` of the module.
macro_rules! api_routes {
    ($( ($method:ident, $path:literal, $handler:ident) ),+ $(,)?) => {
        /// This module's routes, for serving.
        pub fn router() -> axum::Router<std::sync::Arc<crate::api::AppState>> {
            axum::Router::new()
                $( .route($path, axum::routing::$method($handler)) )+
        }

        /// This module's routes with their OpenAPI operations, for the document.
        pub fn documented()
        -> utoipa_axum::router::OpenApiRouter<std::sync::Arc<crate::api::AppState>> {
            utoipa_axum::router::OpenApiRouter::new()
                $( .routes(utoipa_axum::routes!($handler)) )+
        }

        /// Each route as served (method, path) beside its documentation's.
        #[cfg(test)]
        pub fn declared() -> Vec<crate::api::routes::Declared> {
            use utoipa::Path as _;
            vec![ $( pastey::paste! {
                (
                    (stringify!($method), $path),
                    (
                        serde_json::to_string(&[<__path_ $handler>]::methods()).unwrap_or_default(),
                        [<__path_ $handler>]::path(),
                    ),
                )
            } ),+ ]
        }
    };
}

pub(crate) use api_routes;

/// A route as served, `(method, path)`, beside its documentation's `(methods as JSON, path)`.
#[cfg(test)]
pub type Declared = ((&'static str, &'static str), (String, String));

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_served_where_its_documentation_says() {
        let all = [
            crate::api::compat::declared(),
            crate::api::plugins::declared(),
            crate::api::v1::declared(),
        ];
        let mut count = 0;
        for ((method, path), (documented_methods, documented_path)) in all.into_iter().flatten() {
            assert_eq!(path, documented_path, "{method} {path}");
            assert_eq!(
                documented_methods,
                format!(r#"["{method}"]"#),
                "{method} {path}"
            );
            count += 1;
        }
        let doc: serde_json::Value =
            serde_json::from_str(&crate::api::openapi_document(false)).unwrap_or_default();
        let operations: usize = doc["paths"].as_object().map_or(0, |paths| {
            paths
                .values()
                .filter_map(|p| p.as_object())
                .map(|p| p.len())
                .sum()
        });
        assert_eq!(
            count, operations,
            "every documented operation is served, once"
        );
    }
}
