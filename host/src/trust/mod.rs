//! Who made a component: Ed25519 signatures embedded in the component, in the format of
//! wasmsign2 (a custom section named `signature`, first in the file, holding one SHA-256 hash of
//! every byte after it and the signatures of that hash), and the operator's trusted keys, each
//! allowed to sign some plugin names.
//!
//! A signature covers the whole component after its 8-byte preamble: code, the capabilities
//! manifest, the package metadata, every custom section. Signing is the vendor's last step: any
//! change afterwards (a byte, a section added or stripped) makes it fail. The checks beyond
//! wasmsign2's own (this host's rules, docs/catalog.md): the file must be a component (the
//! preamble is not hashed), the signature must cover the whole file with one hash (wasmsign2's
//! partial signatures, `signature_delimiter` sections, would let a file cut at a delimiter still
//! verify), and a key verifies only for the names it is trusted for.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmsign2::reexports::ct_codecs::{Base64, Decoder, Encoder};
use wasmsign2::{KeyPair, Module, Section};

/// The preamble of a WebAssembly component (a core module's differs in its version bytes).
pub const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// The prefix of a public key written on one line (`ed25519:<base64 of its 32 bytes>`).
const KEY_PREFIX: &str = "ed25519:";

/// Why a key or a signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// A key that cannot be read.
    #[error("{0}")]
    Key(String),
    /// A file that cannot be signed.
    #[error("{0}")]
    Sign(String),
}

/// A public key, with its key id (wasmsign2's: HMAC-SHA256("key_id", key), first 12 bytes).
#[derive(Clone)]
pub struct PublicKey {
    key: wasmsign2::PublicKey,
    id: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    fn new(key: wasmsign2::PublicKey) -> Self {
        let key = key.attach_default_key_id();
        let id = hex::encode(key.key_id().map(Vec::as_slice).unwrap_or_default());
        Self { key, id }
    }

    /// Reads a key written on one line (`ed25519:...`, as `plugins keygen` prints it) or in any
    /// form wasmsign2 writes (PEM, DER, raw).
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let text = text.trim();
        if let Some(b64) = text.strip_prefix(KEY_PREFIX) {
            let raw = Base64::decode_to_vec(b64, None)
                .map_err(|_| TrustError::Key("the key after `ed25519:` is not base64".into()))?;
            if raw.len() != 32 {
                return Err(TrustError::Key(format!(
                    "an Ed25519 public key has 32 bytes, this one {}",
                    raw.len()
                )));
            }
            let mut bytes = vec![0x01];
            bytes.extend_from_slice(&raw);
            return wasmsign2::PublicKey::from_bytes(&bytes)
                .map(Self::new)
                .map_err(|e| TrustError::Key(format!("not an Ed25519 public key: {e}")));
        }
        wasmsign2::PublicKey::from_any(text.as_bytes())
            .map(Self::new)
            .map_err(|_| {
                TrustError::Key(
                    "not a public key: write `ed25519:<base64>` as `plugins keygen` prints it, or a PEM public key"
                        .into(),
                )
            })
    }

    /// Reads a key file (the `.pub` file of `plugins keygen`, or any of wasmsign2's forms).
    pub fn from_file(path: &Path) -> Result<Self, TrustError> {
        let data = std::fs::read(path)
            .map_err(|e| TrustError::Key(format!("cannot read {}: {e}", path.display())))?;
        match std::str::from_utf8(&data) {
            Ok(text) => Self::parse(text),
            Err(_) => wasmsign2::PublicKey::from_any(&data)
                .map(Self::new)
                .map_err(|e| {
                    TrustError::Key(format!("{} is not a public key: {e}", path.display()))
                }),
        }
    }

    /// The key on one line: `ed25519:<base64>`.
    pub fn line(&self) -> String {
        let raw = self.key.to_bytes();
        format!(
            "{KEY_PREFIX}{}",
            Base64::encode_to_string(&raw[1..]).unwrap_or_default()
        )
    }

    /// The key id, in hex (what a signature names its key by).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A new key pair: the secret key's PEM (keep it private), the public key.
pub fn generate() -> (String, PublicKey) {
    let pair = KeyPair::generate();
    (pair.sk.to_pem(), PublicKey::new(pair.pk))
}

/// A secret key, read from the file `plugins keygen` wrote.
pub struct SecretKey(wasmsign2::SecretKey);

impl SecretKey {
    /// Reads a secret key file (PEM, DER or raw, as wasmsign2 writes them).
    pub fn from_file(path: &Path) -> Result<Self, TrustError> {
        let data = std::fs::read(path)
            .map_err(|e| TrustError::Key(format!("cannot read {}: {e}", path.display())))?;
        wasmsign2::SecretKey::from_any(&data)
            .map(Self)
            .map_err(|e| TrustError::Key(format!("{} is not a secret key: {e}", path.display())))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        let pk = wasmsign2::PublicKey {
            pk: self.0.sk.public_key(),
            key_id: None,
        };
        PublicKey::new(pk)
    }
}

/// Signs a component: its signature section (replacing one it had) comes first, and covers
/// every byte after it.
pub fn sign(wasm: &[u8], key: &SecretKey) -> Result<Vec<u8>, TrustError> {
    if !is_component(wasm) {
        return Err(TrustError::Sign(
            "not a WebAssembly component (a core module, or not WebAssembly)".into(),
        ));
    }
    let module = Module::deserialize(&mut Cursor::new(wasm))
        .map_err(|e| TrustError::Sign(format!("cannot read the component's sections: {e}")))?;
    if module.sections.iter().any(Section::is_signature_delimiter) {
        return Err(TrustError::Sign(
            "the component holds signature_delimiter sections (partial signatures); remove them"
                .into(),
        ));
    }
    let public = key.public();
    let key_id = public.key.key_id().cloned();
    let signed = key
        .0
        .sign(module, key_id.as_ref())
        .map_err(|e| TrustError::Sign(format!("cannot sign: {e}")))?;
    let mut out = Vec::with_capacity(wasm.len() + 256);
    signed
        .serialize(&mut out)
        .map_err(|e| TrustError::Sign(format!("cannot write the signed component: {e}")))?;
    Ok(out)
}

/// Whether the bytes start with a component's preamble.
pub fn is_component(wasm: &[u8]) -> bool {
    wasm.starts_with(&COMPONENT_PREAMBLE)
}

/// A key the operator trusts, for some plugin names.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The operator's name for it (`acme`): the signer shown for what it signed.
    pub name: String,
    /// The key.
    pub key: PublicKey,
    /// The plugin names it may sign: exact names, or prefixes ending in `*` (`acme-*`); `*` is
    /// every name.
    pub plugins: Vec<String>,
}

impl TrustedKey {
    /// Whether the key may sign plugin `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }
}

/// The operator's trusted keys.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
}

/// Where a trusted key comes from, as the configuration file gives it.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The key itself.
    Inline(String),
    /// A file holding it.
    File(PathBuf),
}

impl TrustStore {
    /// The store of these keys (name, where the key is, the names it may sign), read now.
    pub fn new(
        keys: impl IntoIterator<Item = (String, KeySource, Vec<String>)>,
    ) -> Result<Self, TrustError> {
        let mut out = Vec::new();
        for (name, source, plugins) in keys {
            let key = match &source {
                KeySource::Inline(text) => PublicKey::parse(text),
                KeySource::File(path) => PublicKey::from_file(path),
            }
            .map_err(|e| TrustError::Key(format!("trusted key `{name}`: {e}")))?;
            let plugins = if plugins.is_empty() {
                vec!["*".to_owned()]
            } else {
                plugins
            };
            out.push(TrustedKey { name, key, plugins });
        }
        Ok(Self { keys: out })
    }

    /// The keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Checks a component's signature for plugin `name` against the trusted keys.
    pub fn verify(&self, wasm: &[u8], name: &str) -> Verdict {
        let signature = match read_signature(wasm) {
            Ok(Some(s)) => s,
            Ok(None) => return Verdict::Unsigned,
            Err(reason) => return Verdict::Invalid { reason },
        };
        // The hash first: a changed file is told as such, whoever signed it.
        let actual = Sha256::digest(&wasm[signature.covered_from..]);
        if actual.as_slice() != signature.hash.as_slice() {
            return Verdict::Invalid {
                reason: "the component's bytes do not match its signature: it was changed after it was signed".into(),
            };
        }
        let named: Vec<&TrustedKey> = self
            .keys
            .iter()
            .filter(|k| signature.key_ids.iter().any(|id| id == k.key.id()))
            .collect();
        // A signature without a key id is tried against every key.
        let candidates: Vec<&TrustedKey> = if signature.key_ids.iter().any(String::is_empty) {
            self.keys.iter().collect()
        } else {
            named
        };
        let mut refused = None;
        for trusted in candidates {
            if trusted
                .key
                .key
                .verify(&mut Cursor::new(wasm), None)
                .is_err()
            {
                refused.get_or_insert(trusted.name.clone());
                continue;
            }
            if !trusted.allows(name) {
                return Verdict::NotAllowed {
                    key: trusted.name.clone(),
                    key_id: trusted.key.id().to_owned(),
                    plugin: name.to_owned(),
                };
            }
            return Verdict::Verified {
                key: trusted.name.clone(),
                key_id: trusted.key.id().to_owned(),
            };
        }
        match refused {
            Some(key) => Verdict::Invalid {
                reason: format!(
                    "the signature does not verify with the trusted key `{key}` it names"
                ),
            },
            None => Verdict::UnknownSigner {
                key_ids: signature.key_ids,
            },
        }
    }
}

/// The signature section of a component, as far as this host checks it.
struct Signature {
    /// The signed hash of the bytes after the section.
    hash: Vec<u8>,
    /// Where the covered bytes start.
    covered_from: usize,
    /// The key ids the signatures name (empty for a signature that names none).
    key_ids: Vec<String>,
}

/// Reads the signature section: `None` for a component without one; the reason for one this
/// host does not accept.
fn read_signature(wasm: &[u8]) -> Result<Option<Signature>, String> {
    if !is_component(wasm) {
        return Err("not a WebAssembly component".into());
    }
    let mut reader = Cursor::new(wasm);
    let stream = Module::init_from_reader(&mut reader)
        .map_err(|e| format!("cannot read the component: {e}"))?;
    let mut first = None;
    for (i, section) in Module::iterate(stream)
        .map_err(|e| format!("cannot read the component: {e}"))?
        .enumerate()
    {
        let section = section.map_err(|e| format!("cannot read the component's sections: {e}"))?;
        if let Section::Custom(custom) = &section {
            if custom.is_signature_delimiter() {
                return Err("the component is signed in parts (signature_delimiter sections); this host accepts only a signature of the whole component".into());
            }
            if custom.is_signature_header() {
                if i != 0 {
                    return Err("a signature section that is not the first section".into());
                }
                first = Some(
                    custom
                        .signature_data()
                        .map_err(|_| "the signature section cannot be read".to_owned())?,
                );
            }
        }
    }
    let Some(data) = first else {
        return Ok(None);
    };
    // The covered bytes start after the first section as written (its size as encoded, which
    // need not be the shortest encoding).
    let covered_from = first_section_end(wasm).ok_or("the signature section cannot be read")?;
    let [signed] = data.signed_hashes_set.as_slice() else {
        return Err("the signature holds several sets of hashes (a partial signature)".into());
    };
    let [hash] = signed.hashes.as_slice() else {
        return Err("the signature holds several hashes (a partial signature)".into());
    };
    if signed.signatures.is_empty() {
        return Err("the signature section holds no signature".into());
    }
    Ok(Some(Signature {
        hash: hash.clone(),
        covered_from,
        key_ids: signed
            .signatures
            .iter()
            .map(|s| s.key_id.as_deref().map(hex::encode).unwrap_or_default())
            .collect(),
    }))
}

/// Where the first section after the preamble ends: its id byte, its LEB128 size, its payload.
fn first_section_end(wasm: &[u8]) -> Option<usize> {
    let mut at = 9;
    let mut size: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *wasm.get(at)?;
        at += 1;
        size |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let end = at.checked_add(usize::try_from(size).ok()?)?;
            return (end <= wasm.len()).then_some(end);
        }
    }
    None
}

/// What a component's signature says, against the trusted keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// No signature.
    #[default]
    Unsigned,
    /// Signed by a trusted key that may sign this name.
    Verified {
        /// The trusted key's name.
        key: String,
        /// Its key id (hex).
        key_id: String,
    },
    /// Signed, by no key the operator trusts.
    UnknownSigner {
        /// The key ids the signature names (hex).
        key_ids: Vec<String>,
    },
    /// Signed by a trusted key that is not trusted for this name.
    NotAllowed {
        /// The trusted key's name.
        key: String,
        /// Its key id (hex).
        key_id: String,
        /// The plugin name.
        plugin: String,
    },
    /// A signature that does not hold: the bytes changed, or it is malformed.
    Invalid {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// The trusted key that signed it, when verified.
    pub fn signer(&self) -> Option<&str> {
        match self {
            Self::Verified { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether it verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsigned => f.write_str("not signed"),
            Self::Verified { key, key_id } => write!(f, "signed by `{key}` (key {key_id})"),
            Self::UnknownSigner { key_ids } => {
                let ids: Vec<&str> = key_ids
                    .iter()
                    .map(|k| if k.is_empty() { "without a key id" } else { k })
                    .collect();
                write!(
                    f,
                    "signed by a key this host does not trust (key {})",
                    ids.join(", ")
                )
            }
            Self::NotAllowed {
                key,
                key_id,
                plugin,
                ..
            } => write!(
                f,
                "signed by `{key}` (key {key_id}), which is not trusted for the name `{plugin}`"
            ),
            Self::Invalid { reason } => write!(f, "bad signature: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: its preamble, and a custom section.
    fn component() -> Vec<u8> {
        let mut wasm = COMPONENT_PREAMBLE.to_vec();
        // custom section (id 0), size 6: name "ab" (len 2) + 3 bytes.
        wasm.extend_from_slice(&[0, 6, 2, b'a', b'b', 1, 2, 3]);
        wasm
    }

    fn store(key: &PublicKey, plugins: &[&str]) -> TrustStore {
        TrustStore::new([(
            "acme".to_owned(),
            KeySource::Inline(key.line()),
            plugins.iter().map(|s| (*s).to_owned()).collect(),
        )])
        .unwrap()
    }

    fn pair() -> (SecretKey, PublicKey) {
        let (pem, public) = generate();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, pem).unwrap();
        (SecretKey::from_file(&path).unwrap(), public)
    }

    #[test]
    fn a_signed_component_verifies_for_the_names_its_key_may_sign() {
        let (secret, public) = pair();
        assert_eq!(secret.public().line(), public.line());
        let signed = sign(&component(), &secret).unwrap();
        let trust = store(&public, &["acme-*"]);
        assert_eq!(
            trust.verify(&signed, "acme-report"),
            Verdict::Verified {
                key: "acme".into(),
                key_id: public.id().into()
            }
        );
        assert!(matches!(
            trust.verify(&signed, "other"),
            Verdict::NotAllowed { .. }
        ));
        assert_eq!(trust.verify(&component(), "acme-x"), Verdict::Unsigned);
        // Signing again replaces the signature.
        let again = sign(&signed, &secret).unwrap();
        assert_eq!(again, signed);
        // The one-line form reads back to the same key.
        assert_eq!(PublicKey::parse(&public.line()).unwrap().id(), public.id());
    }

    #[test]
    fn changed_bytes_unknown_keys_and_partial_signatures_are_refused() {
        let (secret, public) = pair();
        let signed = sign(&component(), &secret).unwrap();
        let trust = store(&public, &[]);
        let mut tampered = signed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        let Verdict::Invalid { reason } = trust.verify(&tampered, "x") else {
            panic!()
        };
        assert!(reason.contains("changed after it was signed"), "{reason}");
        // Cut short: the hash no longer matches either.
        assert!(matches!(
            trust.verify(&signed[..signed.len() - 3], "x"),
            Verdict::Invalid { .. }
        ));
        let (_, stranger) = pair();
        assert!(matches!(
            store(&stranger, &[]).verify(&signed, "x"),
            Verdict::UnknownSigner { .. }
        ));
        // A core module's preamble is refused (the preamble is not hashed).
        let mut module = signed.clone();
        module[4] = 1;
        assert!(matches!(
            trust.verify(&module, "x"),
            Verdict::Invalid { .. }
        ));
        // A delimiter section after the signature: refused, whatever it covers.
        let mut split = signed.clone();
        let name = b"signature_delimiter";
        split.extend_from_slice(&[0, (name.len() + 1 + 16) as u8, name.len() as u8]);
        split.extend_from_slice(name);
        split.extend_from_slice(&[0u8; 16]);
        let Verdict::Invalid { reason } = trust.verify(&split, "x") else {
            panic!()
        };
        assert!(reason.contains("in parts"), "{reason}");
        assert!(sign(&split, &secret).is_err());
        assert!(sign(b"\0asm\x01\0\0\0", &secret).is_err());
    }

    #[test]
    fn bad_keys_are_told() {
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(PublicKey::parse("ed25519:!!").is_err());
        assert!(PublicKey::parse("hello").is_err());
        let e = TrustStore::new([(
            "k".to_owned(),
            KeySource::File("/nonexistent/k.pub".into()),
            vec![],
        )])
        .unwrap_err();
        assert!(e.to_string().contains("trusted key `k`"), "{e}");
    }
}
