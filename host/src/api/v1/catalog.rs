//! The service catalog over the API: the installed components with their source, version,
//! digest, signer and verification state, and the trusted keys (`GET /api/v1/catalog`); the
//! consent step (`POST /api/v1/catalog/inspect`, and `GET .../{name}/update` for the newest
//! version) before `POST /api/v1/catalog/install` with the reviewed digest; rollback and remove.
//! Everything but the listing needs the admin token (`server.admin_token`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Shared;
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorBody, ErrorCode};
use crate::api::json::{Body, Query, typed};
use crate::catalog::{CatalogError, Consent, Entry, Inspection, Outcome, Source, Verification};

crate::api::routes::api_routes! {
    (get, "/api/v1/catalog", list),
    (post, "/api/v1/catalog/inspect", inspect),
    (post, "/api/v1/catalog/install", install),
    (get, "/api/v1/catalog/{name}/update", update_check),
    (post, "/api/v1/catalog/{name}/rollback", rollback),
    (delete, "/api/v1/catalog/{name}", remove),
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let code = match &e {
            CatalogError::BadReference(_) => ErrorCode::BadReference,
            CatalogError::NotFound(_) => ErrorCode::ArtifactNotFound,
            CatalogError::Registry(_) => ErrorCode::RegistryUnavailable,
            CatalogError::Digest(_) => ErrorCode::DigestMismatch,
            CatalogError::TooLarge { .. } => ErrorCode::ArtifactTooLarge,
            CatalogError::NotAComponent(_) => ErrorCode::NotAComponent,
            CatalogError::Unsupported(_) => ErrorCode::UnsupportedComponent,
            CatalogError::Signature(_) => ErrorCode::SignatureRefused,
            CatalogError::Consent(_) => ErrorCode::ConsentRequired,
            CatalogError::NotInstalled(_) => ErrorCode::NotInstalled,
            CatalogError::Nothing(_) => ErrorCode::NothingToDo,
            CatalogError::Load(_) => ErrorCode::InstallFailed,
            CatalogError::Io(_) => ErrorCode::CatalogStorage,
        };
        ApiError::new(code, e.to_string())
    }
}

/// A trusted key, as configured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrustedKeyView {
    /// The operator's name for it: the signer shown for what it signed.
    pub name: String,
    /// Its key id (hex).
    pub key_id: String,
    /// The key (`ed25519:<base64>`).
    pub key: String,
    /// The plugin names it may sign.
    pub plugins: Vec<String>,
}

/// One installed component.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstalledView {
    /// The plugin.
    pub name: String,
    /// What the lockfile records: the installed version and the ones kept before it.
    pub entry: Entry,
    /// Whether the file and its signature hold now, and what does not.
    pub verification: Option<Verification>,
    /// The version the host is running, when it has loaded the plugin.
    pub running: Option<String>,
}

/// The catalog of this host's plugins folder.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogView {
    /// Components installed from the catalog.
    pub installed: Vec<InstalledView>,
    /// Components in the folder the catalog did not install, with their signature.
    pub other: Vec<Verification>,
    /// The trusted keys.
    pub trusted_keys: Vec<TrustedKeyView>,
    /// Whether every component in the folder must be signed by a trusted key.
    pub require_signatures: bool,
    /// Whether unsigned components may be installed.
    pub allow_unsigned: bool,
    /// Whether this caller may install (the admin token, or a host without tokens).
    pub can_install: bool,
}

/// What to inspect.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// A registry reference: `registry/repository:1.2.0`, or pinned `...@sha256:...`.
    pub reference: String,
    /// The name to install under, when not the component's own.
    #[serde(default)]
    pub name: Option<String>,
    /// Judge it as if unsigned components were allowed.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// What to install, with the operator's consent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// A registry reference (the `pinned` one of the inspection is best).
    pub reference: String,
    /// The name to install under, when not the component's own.
    #[serde(default)]
    pub name: Option<String>,
    /// The digest the operator reviewed: refused if the component is not those bytes.
    pub digest: String,
    /// The operator consents to what it requests.
    pub consent: bool,
    /// Install even when it is not signed by a trusted key.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// Which version to look for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// This version instead of the newest.
    pub version: Option<String>,
}

/// What a removal took away.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Removed {
    /// The plugin.
    pub name: String,
    /// The version that was installed.
    pub removed: crate::catalog::Installed,
}

/// Whether the caller holds the admin token; the catalog's changes need it.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let server = &state.config.server;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (&server.admin_token, &server.api_token) {
        (Some(admin), _) if given.is_some_and(|g| crate::api::auth::token_matches(g, admin)) => {
            Ok(())
        }
        (Some(_), _) => Err(ApiError::new(
            ErrorCode::Forbidden,
            "installing components needs the admin token: send `Authorization: Bearer <server.admin_token>`",
        )),
        (None, Some(_)) => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this host has an API token but no admin token: set server.admin_token to install components over the API",
        )),
        (None, None) => Ok(()),
    }
}

/// The installed components with their source, version, digest, signer and verification
/// state; the components the catalog did not install; the trusted keys.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "catalog", operation_id = "listCatalog",
    responses((status = 200, description = "The catalog of the plugins folder", body = CatalogView)))]
async fn list(State(state): Shared, headers: HeaderMap) -> Result<Json<CatalogView>, ApiError> {
    let catalog = &state.catalog;
    let lockfile = catalog.installed()?;
    let mut rows = catalog.verify()?;
    let installed = lockfile
        .plugins
        .into_iter()
        .map(|(name, entry)| {
            let verification = rows
                .iter()
                .position(|r| r.name == name && r.version.is_some())
                .map(|i| rows.remove(i));
            let running = state
                .runtime
                .plugin(&name)
                .map(|p| p.info().version.clone());
            InstalledView {
                name,
                entry,
                verification,
                running,
            }
        })
        .collect();
    let trusted_keys = state
        .runtime
        .trust()
        .keys()
        .iter()
        .map(|k| TrustedKeyView {
            name: k.name.clone(),
            key_id: k.key.id().to_owned(),
            key: k.key.line(),
            plugins: k.plugins.clone(),
        })
        .collect();
    Ok(Json(CatalogView {
        installed,
        other: rows,
        trusted_keys,
        require_signatures: state.config.pool.require_signatures,
        allow_unsigned: state.config.catalog.allow_unsigned,
        can_install: admin(&state, &headers).is_ok(),
    }))
}

/// Pulls a component and tells what it is, without running or installing it: name, version,
/// contract and support, signature and signer, what it requests beside what is granted, size
/// and digest, and what would stop it from installing. The consent step.
#[utoipa::path(post, path = "/api/v1/catalog/inspect", tag = "catalog", operation_id = "inspectComponent",
    request_body = InspectRequest,
    responses(
        (status = 200, description = "What it is; `problems` lists what stops it", body = Inspection),
        (status = 400, description = "`bad_reference`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the admin token is needed", body = ErrorBody),
        (status = 404, description = "`artifact_not_found`", body = ErrorBody),
        (status = 413, description = "`artifact_too_large`", body = ErrorBody),
        (status = 422, description = "`digest_mismatch` or `not_a_component`", body = ErrorBody),
        (status = 502, description = "`registry_unavailable`", body = ErrorBody),
    ))]
async fn inspect(
    State(state): Shared,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Inspection>, ApiError> {
    admin(&state, &headers)?;
    let request: InspectRequest = typed(body)?;
    let catalog = &state.catalog;
    let fetched = catalog.fetch(&registry_source(&request.reference)?).await?;
    Ok(Json(catalog.inspect(
        &fetched,
        request.name.as_deref(),
        request.allow_unsigned,
    )))
}

/// Only registry references over the API: a path would read the host's files.
fn registry_source(reference: &str) -> Result<Source, ApiError> {
    match Source::parse(reference)? {
        Source::Registry(r) => Ok(Source::Registry(r)),
        Source::File(_) => Err(ApiError::new(
            ErrorCode::BadReference,
            format!("`{reference}` is not a registry reference (files are installed with the CLI)"),
        )),
    }
}

/// Installs (or updates to) a component the operator reviewed: pulled again and held to the
/// reviewed digest, checked, compiled, placed in the plugins folder, recorded in the lockfile,
/// and loaded. Calls in flight on an earlier version finish on it.
#[utoipa::path(post, path = "/api/v1/catalog/install", tag = "catalog", operation_id = "installComponent",
    request_body = InstallRequest,
    responses(
        (status = 201, description = "Installed and loaded", body = Outcome),
        (status = 400, description = "`bad_reference`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`artifact_not_found`", body = ErrorBody),
        (status = 413, description = "`artifact_too_large`", body = ErrorBody),
        (status = 409, description = "`consent_required`: no consent, or the bytes are not the reviewed ones", body = ErrorBody),
        (status = 422, description = "`signature_refused`, `unsupported_component`, `digest_mismatch`, `install_failed`", body = ErrorBody),
        (status = 502, description = "`registry_unavailable`", body = ErrorBody),
    ))]
async fn install(
    State(state): Shared,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    let request: InstallRequest = typed(body)?;
    let catalog = &state.catalog;
    let fetched = catalog.fetch(&registry_source(&request.reference)?).await?;
    let consent = Consent {
        given: request.consent,
        digest: Some(request.digest),
        name: request.name,
        allow_unsigned: request.allow_unsigned,
    };
    let outcome = catalog.install(&fetched, &consent).await?;
    take_in(&state, &outcome.name).await;
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// Loads what was placed at once (the folder watch would, after `pool.watch_settle`).
async fn take_in(state: &AppState, name: &str) {
    if let Err(e) = state.runtime.load(name).await {
        tracing::warn!(plugin = %name, error = %e, "the installed component did not load");
    }
}

/// The newest version of an installed plugin in its repository (or `version`), inspected: the
/// consent step of an update. Install it with `POST /api/v1/catalog/install`.
#[utoipa::path(get, path = "/api/v1/catalog/{name}/update", tag = "catalog", operation_id = "checkUpdate",
    params(("name" = String, Path, description = "The installed plugin"), UpdateQuery),
    responses(
        (status = 200, description = "The version it would update to, inspected", body = Inspection),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 400, description = "`bad_reference`: not a semver version", body = ErrorBody),
        (status = 404, description = "`not_installed`, or `artifact_not_found`", body = ErrorBody),
        (status = 409, description = "`nothing_to_do`: it is the newest", body = ErrorBody),
        (status = 422, description = "`digest_mismatch` or `not_a_component`", body = ErrorBody),
        (status = 502, description = "`registry_unavailable`", body = ErrorBody),
    ))]
async fn update_check(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<UpdateQuery>,
) -> Result<Json<Inspection>, ApiError> {
    admin(&state, &headers)?;
    let catalog = &state.catalog;
    let source = catalog.update_source(&name, q.version.as_deref()).await?;
    let fetched = catalog.fetch(&source).await?;
    Ok(Json(catalog.inspect(&fetched, Some(&name), false)))
}

/// Puts back the version installed before (kept by digest), checked again, and loads it.
#[utoipa::path(post, path = "/api/v1/catalog/{name}/rollback", tag = "catalog", operation_id = "rollback",
    params(("name" = String, Path, description = "The installed plugin")),
    responses(
        (status = 200, description = "Rolled back and loaded", body = Outcome),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_installed`", body = ErrorBody),
        (status = 409, description = "`nothing_to_do`: no earlier version", body = ErrorBody),
    ))]
async fn rollback(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    admin(&state, &headers)?;
    let outcome = state.catalog.rollback(&name, false).await?;
    take_in(&state, &name).await;
    Ok(Json(outcome))
}

/// Removes an installed plugin: its file, its lockfile entry, its kept versions. Calls in
/// flight finish; new ones fail with `plugin_removed`.
#[utoipa::path(delete, path = "/api/v1/catalog/{name}", tag = "catalog", operation_id = "removeComponent",
    params(("name" = String, Path, description = "The installed plugin")),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_installed`", body = ErrorBody),
    ))]
async fn remove(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    admin(&state, &headers)?;
    let removed = state.catalog.remove(&name)?;
    state.runtime.remove(&name);
    Ok(Json(Removed { name, removed }))
}
