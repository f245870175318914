//! Components as OCI artifacts, in the CNCF Wasm layout (the one wkg, Spin and wasmCloud use):
//! an image manifest (`application/vnd.oci.image.manifest.v1+json`) whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the component
//! (`application/wasm`), with what the component is as OCI annotations. Talked to with
//! `oci-client`; pulls are bounded in size and checked against their digests.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use oci_client::Client;
pub use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::CatalogError;

/// The manifest's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config's media type (CNCF Wasm artifact layout).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component layer's media type.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may be silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A registry reference the catalog takes: `registry/repository:tag` or `...@sha256:...`.
pub fn parse_reference(text: &str) -> Result<Reference, CatalogError> {
    Reference::from_str(text.trim()).map_err(|e| {
        CatalogError::BadReference(format!("`{text}` is not a registry reference: {e}"))
    })
}

/// The version a tag names, when it is semver (`1.2.0`, or `v1.2.0`).
pub fn tag_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// A client of OCI registries, with the operator's settings.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

/// Credentials for a registry.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// User name and password (or token), when the registry wants them.
    pub basic: Option<(String, String)>,
}

impl Credentials {
    /// From `SCHEDULEZERO_REGISTRY_USERNAME` and `SCHEDULEZERO_REGISTRY_PASSWORD`, when set.
    pub fn from_env() -> Self {
        match (
            std::env::var("SCHEDULEZERO_REGISTRY_USERNAME"),
            std::env::var("SCHEDULEZERO_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) if !user.is_empty() => Self {
                basic: Some((user, password)),
            },
            _ => Self::default(),
        }
    }
}

/// What a push published.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The reference pushed to.
    pub reference: String,
    /// The manifest's digest (pin it: `<repository>@<digest>`).
    pub manifest_digest: String,
    /// The component's digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A component pulled from a registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component's bytes.
    pub wasm: Vec<u8>,
    /// The manifest's digest: what the reference resolved to.
    pub manifest_digest: String,
    /// The layer's digest (the component's SHA-256).
    pub digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Registry {
    /// A client; registries named in `plain_http` (`HOST:PORT`) are reached over HTTP.
    pub fn new(plain_http: &[String], credentials: &Credentials) -> Result<Self, CatalogError> {
        crate::install_crypto_provider();
        let config = ClientConfig {
            protocol: if plain_http.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(plain_http.to_vec())
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| {
            CatalogError::Registry(format!("cannot set up the registry client: {e}"))
        })?;
        let auth = match &credentials.basic {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self { client, auth })
    }

    /// Publishes a component at `reference` (its tag must be semver): the config describing the
    /// component, the component as the one layer, the annotations on the manifest.
    pub async fn push(
        &self,
        reference: &Reference,
        wasm: Vec<u8>,
        config: serde_json::Value,
        annotations: BTreeMap<String, String>,
    ) -> Result<Pushed, CatalogError> {
        let size = wasm.len() as u64;
        let digest = sha256_digest(&wasm);
        let layer = ImageLayer::new(wasm, WASM_MEDIA_TYPE.to_owned(), None);
        let config = Config::new(
            serde_json::to_vec(&config).unwrap_or_default(),
            CONFIG_MEDIA_TYPE.to_owned(),
            None,
        );
        let mut manifest =
            OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
        manifest.media_type = Some(MANIFEST_MEDIA_TYPE.to_owned());
        let manifest_digest = sha256_digest(&serde_json::to_vec(&manifest).unwrap_or_default());
        self.client
            .push(reference, &[layer], config, &self.auth, Some(manifest))
            .await
            .map_err(|e| registry_error(reference, &e))?;
        // The digest the registry knows it by (it may have reserialised nothing, but ask).
        let manifest_digest = match self
            .client
            .fetch_manifest_digest(reference, &self.auth)
            .await
        {
            Ok(d) => d,
            Err(_) => manifest_digest,
        };
        Ok(Pushed {
            reference: reference.whole(),
            manifest_digest,
            digest,
            size,
        })
    }

    /// Pulls the component at `reference`: the manifest first (its layout checked, the layer's
    /// size against `max_bytes`), then the layer, streamed, cut off past its announced size,
    /// and checked against its digest.
    pub async fn pull(
        &self,
        reference: &Reference,
        max_bytes: u64,
    ) -> Result<Pulled, CatalogError> {
        let (manifest, manifest_digest) = self
            .client
            .pull_manifest(reference, &self.auth)
            .await
            .map_err(|e| registry_error(reference, &e))?;
        if let Some(pinned) = reference.digest()
            && pinned != manifest_digest
        {
            return Err(CatalogError::Digest(format!(
                "the registry answered manifest {manifest_digest} for {pinned}"
            )));
        }
        let OciManifest::Image(manifest) = manifest else {
            return Err(CatalogError::NotAComponent(format!(
                "{} is an image index, not a component",
                reference.whole()
            )));
        };
        if manifest.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(CatalogError::NotAComponent(format!(
                "{} has config {}, not a WebAssembly component's ({CONFIG_MEDIA_TYPE})",
                reference.whole(),
                manifest.config.media_type
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(CatalogError::NotAComponent(format!(
                "{} has {} layers; a component artifact has one",
                reference.whole(),
                manifest.layers.len()
            )));
        };
        if layer.media_type != WASM_MEDIA_TYPE {
            return Err(CatalogError::NotAComponent(format!(
                "{}'s layer is {}, not {WASM_MEDIA_TYPE}",
                reference.whole(),
                layer.media_type
            )));
        }
        let announced = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if announced > max_bytes {
            return Err(CatalogError::TooLarge {
                size: announced,
                limit: max_bytes,
            });
        }
        let mut stream = self
            .client
            .pull_blob_stream(reference, layer)
            .await
            .map_err(|e| registry_error(reference, &e))?;
        let mut wasm = Vec::with_capacity(announced as usize);
        while let Some(chunk) = stream.stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // Every byte is in: the client's own digest check failed; ours, below, says
                // what the bytes are.
                Err(_) if wasm.len() as u64 == announced => break,
                Err(e) => {
                    return Err(CatalogError::Registry(format!(
                        "the download of {} was interrupted: {e}",
                        reference.whole()
                    )));
                }
            };
            if (wasm.len() + chunk.len()) as u64 > announced {
                return Err(CatalogError::Digest(format!(
                    "the registry sent more than the {announced} bytes the manifest announces"
                )));
            }
            wasm.extend_from_slice(&chunk);
        }
        if (wasm.len() as u64) < announced {
            return Err(CatalogError::Registry(format!(
                "the download of {} ended after {} of {announced} bytes",
                reference.whole(),
                wasm.len()
            )));
        }
        let digest = sha256_digest(&wasm);
        if digest != layer.digest {
            return Err(CatalogError::Digest(format!(
                "the component's bytes hash to {digest}, the manifest says {}",
                layer.digest
            )));
        }
        Ok(Pulled {
            wasm,
            manifest_digest,
            digest,
            annotations: manifest.annotations.unwrap_or_default(),
        })
    }

    /// The tags of `reference`'s repository.
    pub async fn tags(&self, reference: &Reference) -> Result<Vec<String>, CatalogError> {
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        // Pages of 1000, at most 20 of them.
        for _ in 0..20 {
            let page = self
                .client
                .list_tags(reference, &self.auth, Some(1000), last.as_deref())
                .await
                .map_err(|e| registry_error(reference, &e))?;
            let full = page.tags.len() >= 1000;
            last = page.tags.last().cloned();
            tags.extend(page.tags);
            if !full {
                break;
            }
        }
        Ok(tags)
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn registry_error(
    reference: &Reference,
    e: &oci_client::errors::OciDistributionError,
) -> CatalogError {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::ImageManifestNotFoundError(_) => {
            CatalogError::NotFound(format!("{} is not in the registry", reference.whole()))
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                use oci_client::errors::OciErrorCode as C;
                matches!(e.code, C::ManifestUnknown | C::NameUnknown | C::BlobUnknown)
            }) =>
        {
            CatalogError::NotFound(format!(
                "{} is not in the registry ({envelope})",
                reference.whole()
            ))
        }
        E::DigestError(_) => CatalogError::Digest(format!("{}: {e}", reference.whole())),
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            CatalogError::Registry(format!(
                "registry {} refused the credentials (SCHEDULEZERO_REGISTRY_USERNAME, SCHEDULEZERO_REGISTRY_PASSWORD): {e}",
                reference.resolve_registry()
            ))
        }
        _ => CatalogError::Registry(format!("registry {}: {e}", reference.resolve_registry())),
    }
}
