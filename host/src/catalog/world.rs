//! Which contract a component was built for, read from its outer imports and exports without
//! compiling or running it. Installing links it for real (the final word); this tells an
//! operator beforehand, and names a newer contract as such.

use serde::Serialize;
use wasmparser::{Parser, Payload};

/// The contract this host implements: the package, and its version's `major.minor` (0.x
/// versions are compatible within one minor).
pub const CONTRACT_PACKAGE: &str = "schedulezero:handler";
/// The contract's version.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The WASI 0.2 packages the host provides (what each grants is still the operator's choice).
const WASI_PACKAGES: [&str; 7] = [
    "wasi:cli",
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
    "wasi:sockets",
    "wasi:http",
];

/// A component's outer interface against this host's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct World {
    /// Whether this host can run it (as far as can be told without linking it).
    pub supported: bool,
    /// The handler contract it exports (`schedulezero:handler/handler@0.1.0`), if any.
    pub contract: Option<String>,
    /// Why not, when it is not supported.
    pub reason: Option<String>,
    /// What it imports.
    pub imports: Vec<String>,
    /// What it exports.
    pub exports: Vec<String>,
}

/// Reads the outer component's import and export names and checks them against this host.
pub fn check(wasm: &[u8]) -> World {
    let (imports, exports) = match names(wasm) {
        Ok(n) => n,
        Err(reason) => {
            return World {
                reason: Some(reason),
                ..World::default()
            };
        }
    };
    let host = semver::Version::parse(CONTRACT_VERSION).unwrap_or(semver::Version::new(0, 1, 0));
    let contract = exports
        .iter()
        .find(|e| e.starts_with(&format!("{CONTRACT_PACKAGE}/handler")))
        .cloned();
    let reason = match &contract {
        None => Some(format!(
            "it exports no `{CONTRACT_PACKAGE}/handler` interface: not a ScheduleZero handler (exports: {})",
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        )),
        Some(name) => contract_problem(name, &host).or_else(|| {
            imports.iter().find_map(|i| {
                if i.starts_with(&format!("{CONTRACT_PACKAGE}/")) {
                    return contract_problem(i, &host);
                }
                let package = i.split('/').next().unwrap_or(i);
                let version = i.rsplit_once('@').map(|(_, v)| v);
                let wasi = WASI_PACKAGES.contains(&package)
                    && version.is_some_and(|v| v.starts_with("0.2."));
                (!wasi).then(|| format!("it imports `{i}`, which this host does not provide"))
            })
        }),
    };
    World {
        supported: reason.is_none(),
        contract,
        reason,
        imports,
        exports,
    }
}

/// Why an interface of the contract at some version does not fit this host's.
fn contract_problem(name: &str, host: &semver::Version) -> Option<String> {
    let Some((_, version)) = name.rsplit_once('@') else {
        return Some(format!("`{name}` names no version of the contract"));
    };
    let Ok(v) = semver::Version::parse(version) else {
        return Some(format!("`{name}`: `{version}` is not a version"));
    };
    if v.major == host.major && v.minor == host.minor {
        return None;
    }
    Some(if v > *host {
        format!(
            "it was built for contract {v}, newer than this host's {host}: update the host to run it"
        )
    } else {
        format!("it was built for contract {v}; this host implements {host}")
    })
}

/// The outer component's import and export names.
fn names(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    if !crate::trust::is_component(wasm) {
        return Err("not a WebAssembly component".into());
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a valid component: {e}"))? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| format!("not a valid component: {e}"))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_the_contract() {
        let host = semver::Version::new(0, 1, 0);
        assert_eq!(
            contract_problem("schedulezero:handler/handler@0.1.3", &host),
            None
        );
        assert!(
            contract_problem("schedulezero:handler/handler@0.2.0", &host)
                .unwrap()
                .contains("newer")
        );
        assert!(contract_problem("schedulezero:handler/handler", &host).is_some());
        assert!(check(b"\0asm\x01\0\0\0").reason.is_some());
    }
}
