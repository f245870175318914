//! What a handler asks the operator for: outbound HTTP destinations, directories, configuration
//! values and secrets, and the read-only view of the host's other handlers ([`crate::fleet`]).
//! Declare them in [`Handler::CAPABILITIES`](crate::Handler::CAPABILITIES),
//! next to the methods that use them; [`export_handler!`](crate::export_handler) writes them into
//! the component at build time (a custom section named `schedulezero-manifest`), where the host
//! and the operator read them without running the component.
//!
//! A handler gets nothing it did not declare: the operator can only grant what is asked for, and
//! a call that reaches for anything else is refused.
//!
//! ```
//! use schedulezero_sdk::capabilities::{Capabilities, Directory, Http, Setting};
//!
//! const CAPABILITIES: Capabilities = Capabilities {
//!     http: &[Http::new("https://*.vendor.example", "Uploads the aggregated results.")],
//!     directories: &[Directory::read_only("input", "The files to aggregate.")],
//!     config: &[
//!         Setting::value("endpoint", "The URL results are posted to."),
//!         Setting::secret("api_key", "The vendor's API key, sent as a bearer token."),
//!     ],
//!     fleet: None,
//! };
//! ```

/// Everything a handler asks for.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Outbound HTTP destinations.
    pub http: &'static [Http],
    /// Directories, by the name the handler uses for each.
    pub directories: &'static [Directory],
    /// Configuration values and secrets.
    pub config: &'static [Setting],
    /// The read-only view of the host's handlers, the host and the machine.
    pub fleet: Option<Fleet>,
}

impl Capabilities {
    /// Asks for nothing.
    pub const NONE: Self = Self {
        http: &[],
        directories: &[],
        config: &[],
        fleet: None,
    };
}

/// The [`crate::fleet`] view, asked for with what the handler does with it. A component that
/// uses the view without asking is refused by the host when it loads.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    purpose: &'static str,
}

impl Fleet {
    /// Asks for the fleet view, saying why.
    pub const fn new(purpose: &'static str) -> Self {
        Self { purpose }
    }
}

/// Outbound HTTP to the destinations of one allow-list entry: `<scheme>://<host>[:<port>]`,
/// where the scheme is `http`, `https` or `*`, the host a name, `*.domain`, an address, a
/// network (`10.0.0.0/8`) or `*`, and the port a number, a range (`8000..8100`) or `*` (default:
/// the scheme's). It is the widest the operator may grant; `*://*:*` leaves the choice of hosts
/// to the operator entirely (who still has to name each one).
#[derive(Debug, Clone, Copy)]
pub struct Http {
    destination: &'static str,
    purpose: &'static str,
}

impl Http {
    /// Asks for `destination`, saying what is sent there.
    pub const fn new(destination: &'static str, purpose: &'static str) -> Self {
        Self {
            destination,
            purpose,
        }
    }
}

/// A directory, by a name of the handler's own (letters, digits, `-`, `_`). The operator maps it
/// to a host directory; the handler sees it as `/<name>` (see [`crate::dirs`]).
#[derive(Debug, Clone, Copy)]
pub struct Directory {
    name: &'static str,
    read_write: bool,
    purpose: &'static str,
}

impl Directory {
    /// A directory the handler only reads.
    pub const fn read_only(name: &'static str, purpose: &'static str) -> Self {
        Self {
            name,
            read_write: false,
            purpose,
        }
    }

    /// A directory the handler also writes to.
    pub const fn read_write(name: &'static str, purpose: &'static str) -> Self {
        Self {
            name,
            read_write: true,
            purpose,
        }
    }
}

/// A configuration value or a secret, by key (read with [`crate::config::get`] or
/// [`crate::config::secret`]).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    key: &'static str,
    description: &'static str,
    secret: bool,
}

impl Setting {
    /// A plain value, which the operator grants by value and may see.
    pub const fn value(key: &'static str, description: &'static str) -> Self {
        Self {
            key,
            description,
            secret: false,
        }
    }

    /// A secret, which the operator grants by reference and nobody sees again.
    pub const fn secret(key: &'static str, description: &'static str) -> Self {
        Self {
            key,
            description,
            secret: true,
        }
    }
}

/// What the component is, for the catalog (`plugins inspect` of a file or a registry
/// reference): the handler's name, version and description, and the crate's authors, license
/// and repository (`Cargo.toml`). [`export_handler!`](crate::export_handler) fills it in.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub vendor: &'static str,
    pub license: &'static str,
    pub source: &'static str,
}

/// The manifest's JSON, rendered at compile time into `N` bytes; the second value is the length
/// the whole text needs (render with `N = 0` first to learn it).
#[doc(hidden)]
pub const fn render<const N: usize>(c: &Capabilities, p: &Package) -> ([u8; N], usize) {
    let mut w = Writer {
        out: [0; N],
        len: 0,
    };
    w.raw("{\"manifest_version\":1,\"package\":{\"name\":");
    w.string(p.name);
    w.raw(",\"version\":");
    w.string(p.version);
    w.raw(",\"description\":");
    w.string(p.description);
    w.raw(",\"vendor\":");
    w.string(p.vendor);
    w.raw(",\"license\":");
    w.string(p.license);
    w.raw(",\"source\":");
    w.string(p.source);
    w.raw("},\"http\":[");
    let mut i = 0;
    while i < c.http.len() {
        if i > 0 {
            w.raw(",");
        }
        w.raw("{\"destination\":");
        w.string(c.http[i].destination);
        w.raw(",\"purpose\":");
        w.string(c.http[i].purpose);
        w.raw("}");
        i += 1;
    }
    w.raw("],\"directories\":[");
    i = 0;
    while i < c.directories.len() {
        let d = &c.directories[i];
        if i > 0 {
            w.raw(",");
        }
        w.raw("{\"name\":");
        w.string(d.name);
        w.raw(if d.read_write {
            ",\"access\":\"read-write\",\"purpose\":"
        } else {
            ",\"access\":\"read-only\",\"purpose\":"
        });
        w.string(d.purpose);
        w.raw("}");
        i += 1;
    }
    w.raw("],\"config\":[");
    i = 0;
    while i < c.config.len() {
        let s = &c.config[i];
        if i > 0 {
            w.raw(",");
        }
        w.raw("{\"key\":");
        w.string(s.key);
        w.raw(",\"description\":");
        w.string(s.description);
        w.raw(if s.secret {
            ",\"secret\":true}"
        } else {
            ",\"secret\":false}"
        });
        i += 1;
    }
    w.raw("]");
    // Written only when asked for: a host that predates the field refuses manifests naming it.
    if let Some(f) = &c.fleet {
        w.raw(",\"fleet\":{\"purpose\":");
        w.string(f.purpose);
        w.raw("}");
    }
    w.raw("}");
    (w.out, w.len)
}

/// Writes into a fixed buffer, counting what does not fit.
struct Writer<const N: usize> {
    out: [u8; N],
    len: usize,
}

impl<const N: usize> Writer<N> {
    const fn byte(&mut self, b: u8) {
        if self.len < N {
            self.out[self.len] = b;
        }
        self.len += 1;
    }

    const fn raw(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            self.byte(b[i]);
            i += 1;
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped.
    const fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.byte(b'"');
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'"' || c == b'\\' {
                self.byte(b'\\');
                self.byte(c);
            } else if c < 0x20 {
                self.raw("\\u00");
                self.byte(HEX[(c >> 4) as usize]);
                self.byte(HEX[(c & 0xf) as usize]);
            } else {
                self.byte(c);
            }
            i += 1;
        }
        self.byte(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Capabilities = Capabilities {
        http: &[Http::new(
            "https://*.vendor.example",
            "Uploads \"results\".",
        )],
        directories: &[
            Directory::read_only("input", "Reads."),
            Directory::read_write("out", "Writes\n."),
        ],
        config: &[
            Setting::value("endpoint", "Where."),
            Setting::secret("api_key", "Key \\ token."),
        ],
        fleet: Some(Fleet::new("Watches \"them\".")),
    };

    const P: Package = Package {
        name: "vendor",
        version: "1.2.3",
        description: "Sends \"things\".",
        vendor: "Acme <dev@acme.example>",
        license: "MIT",
        source: "",
    };
    const LEN: usize = render::<0>(&C, &P).1;
    const BYTES: [u8; LEN] = render::<LEN>(&C, &P).0;

    #[test]
    fn renders_json_at_compile_time() {
        let v: serde_json::Value = serde_json::from_slice(&BYTES).unwrap();
        assert_eq!(v["manifest_version"], 1);
        assert_eq!(v["http"][0]["purpose"], "Uploads \"results\".");
        assert_eq!(v["directories"][1]["access"], "read-write");
        assert_eq!(v["directories"][1]["purpose"], "Writes\n.");
        assert_eq!(v["config"][1]["secret"], true);
        assert_eq!(v["config"][1]["description"], "Key \\ token.");
        assert_eq!(v["package"]["description"], "Sends \"things\".");
        assert_eq!(v["package"]["vendor"], "Acme <dev@acme.example>");
        assert_eq!(v["fleet"]["purpose"], "Watches \"them\".");
        let empty = Package {
            name: "n",
            version: "0.1.0",
            description: "",
            vendor: "",
            license: "",
            source: "",
        };
        let none = render::<256>(&Capabilities::NONE, &empty);
        let text = std::str::from_utf8(&none.0[..none.1]).unwrap();
        assert_eq!(
            text,
            r#"{"manifest_version":1,"package":{"name":"n","version":"0.1.0","description":"","vendor":"","license":"","source":""},"http":[],"directories":[],"config":[]}"#
        );
    }
}
