//! Outbound HTTP destinations: the allow-list grammar a manifest requests and an operator grants
//! (`<scheme>://<host>[:<port>]`, the grammar of Spin's `allowed_outbound_hosts`), whether a
//! request's destination is allowed, and whether one entry covers another (a grant must be
//! covered by what the component requested).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One allow-list entry, such as `https://api.example.com`, `https://*.example.com:8443`,
/// `http://127.0.0.1:8000..8100` or `*://10.0.0.0/8:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    text: String,
    scheme: SchemeSet,
    host: HostPattern,
    ports: Ports,
}

/// Which schemes an entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemeSet {
    Http,
    Https,
    Any,
}

/// Which hosts an entry allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Every host, by name or by address (addresses that are not public still need an entry that
    /// names them: see [`Destination::names_address`]).
    Any,
    /// Names under a domain, not the domain itself: `*.example.com`.
    Under(String),
    /// One name, lowercase, without a trailing dot.
    Name(String),
    /// One address.
    Ip(IpAddr),
    /// A network: `10.0.0.0/8`, `[fd00::/8]`.
    Net(IpAddr, u8),
}

/// Which ports an entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    /// The scheme's own: 80 for http, 443 for https.
    Default,
    Any,
    /// From the first to the second, both included.
    Range(u16, u16),
}

/// The host part of a request's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A name, lowercase, without a trailing dot.
    Name(String),
    /// An address literal.
    Ip(IpAddr),
}

impl Host {
    /// Reads the host of a URI authority (`api.example.com`, `127.0.0.1`, `[::1]`).
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(|a| Self::Ip(a.into()));
        }
        if let Ok(ip) = text.parse::<std::net::Ipv4Addr>() {
            return Some(Self::Ip(ip.into()));
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        valid_name(&name).then_some(Self::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Self::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not a destination: {reason}")]
pub struct DestinationError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it, and how to write it.
    pub reason: String,
}

impl FromStr for Destination {
    type Err = DestinationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| DestinationError {
            entry: text.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if matches!(trimmed, "*" | "*:*" | "*://" | "**" | "*.*") {
            return Err(fail(
                "it would allow every destination; write `*://*:*` if that is really meant, or \
                 better, name the hosts (`https://api.example.com`)",
            ));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(fail(
                "it has no scheme; write it as `https://api.example.com` (or `*://` for http and https)",
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => SchemeSet::Http,
            "https" => SchemeSet::Https,
            "*" => SchemeSet::Any,
            other => {
                return Err(fail(&format!(
                    "scheme `{other}` is not supported (http, https or *)"
                )));
            }
        };
        if rest.contains('@') {
            return Err(fail("it must not carry a user name or password"));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(fail("it must not carry a query or a fragment"));
        }
        let (host_text, port_text) = split_host_port(rest).map_err(|r| fail(&r))?;
        let host = parse_host_pattern(host_text).map_err(|r| fail(&r))?;
        let ports = match port_text {
            None => Ports::Default,
            Some(p) => parse_ports(p).map_err(|r| fail(&r))?,
        };
        Ok(Self {
            text: trimmed.to_owned(),
            scheme,
            host,
            ports,
        })
    }
}

/// Splits `host[:port]`, where the host may be `[v6]` or `[v6/len]`, and refuses paths.
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    let no_path = "it must not have a path: destinations name a scheme, a host and ports only";
    if rest.is_empty() {
        return Err("it has no host".into());
    }
    if let Some(after_bracket) = rest.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return Err("an IPv6 address needs its closing `]`".into());
        };
        let host = &rest[..close + 2];
        return match &rest[close + 2..] {
            "" => Ok((host, None)),
            tail => match tail.strip_prefix(':') {
                Some(port) if !port.contains('/') => Ok((host, Some(port))),
                _ => Err(no_path.into()),
            },
        };
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    // `10.0.0.0/8` is a network; any other `/` starts a path.
    if let Some((addr, len)) = host.split_once('/') {
        let is_net = addr.parse::<std::net::Ipv4Addr>().is_ok()
            && !len.is_empty()
            && len.bytes().all(|b| b.is_ascii_digit());
        if !is_net {
            return Err(no_path.into());
        }
    }
    if port.is_some_and(|p| p.contains('/')) {
        return Err(no_path.into());
    }
    Ok((host, port))
}

fn parse_host_pattern(text: &str) -> Result<HostPattern, String> {
    if text.is_empty() {
        return Err("it has no host".into());
    }
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match inner.split_once('/') {
            Some((addr, len)) => net(addr, len, 128),
            None => inner
                .parse::<std::net::Ipv6Addr>()
                .map(|a| HostPattern::Ip(a.into()))
                .map_err(|_| format!("`{inner}` is not an IPv6 address")),
        };
    }
    if let Some((addr, len)) = text.split_once('/') {
        return net(addr, len, 32);
    }
    if let Ok(a) = text.parse::<std::net::Ipv4Addr>() {
        return Ok(HostPattern::Ip(a.into()));
    }
    if let Some(domain) = text.strip_prefix("*.") {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !valid_name(&domain) || domain.contains('*') {
            return Err(format!(
                "`{text}`: a wildcard is `*.` followed by a domain name"
            ));
        }
        if !domain.contains('.') {
            return Err(format!(
                "`{text}` would allow every name under a top-level domain; name the domain \
                 (`*.example.com`)"
            ));
        }
        return Ok(HostPattern::Under(domain));
    }
    if text.contains('*') {
        return Err(format!(
            "`{text}`: `*` stands alone or as the first label (`*.example.com`)"
        ));
    }
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(format!("`{text}` is not a host name"));
    }
    Ok(HostPattern::Name(name))
}

fn net(addr: &str, len: &str, max: u8) -> Result<HostPattern, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("`/{len}` is not a prefix length (0 to {max})"))?;
    if len == 0 {
        return Err(
            "a network of prefix length 0 is every address; write `*` as the host if that is really meant"
                .into(),
        );
    }
    Ok(HostPattern::Net(ip, len))
}

fn parse_ports(text: &str) -> Result<Ports, String> {
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{p}` is not a port (1 to 65535)"))
    };
    if text == "*" {
        return Ok(Ports::Any);
    }
    if let Some((a, b)) = text.split_once("..") {
        let (start, end) = match b.strip_prefix('=') {
            Some(b) => (port(a)?, port(b)?),
            // `a..b` ends before b, as a Rust range (and Spin's) does.
            None => (port(a)?, port(b)?.saturating_sub(1)),
        };
        if start > end {
            return Err(format!("the port range `{text}` is empty"));
        }
        return Ok(Ports::Range(start, end));
    }
    let p = port(text)?;
    Ok(Ports::Range(p, p))
}

/// Whether `name` is a DNS host name: labels of letters, digits and `-` (and `_`, seen in the
/// wild), joined by dots.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl SchemeSet {
    fn allows(self, scheme: &str) -> bool {
        match self {
            Self::Http => scheme == "http",
            Self::Https => scheme == "https",
            Self::Any => scheme == "http" || scheme == "https",
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            Self::Http => &["http"],
            Self::Https => &["https"],
            Self::Any => &["http", "https"],
        }
    }
}

impl Ports {
    /// The ports allowed with `scheme`, as an inclusive range.
    fn range(self, scheme: &str) -> (u16, u16) {
        match self {
            Self::Default if scheme == "https" => (443, 443),
            Self::Default => (80, 80),
            Self::Any => (1, u16::MAX),
            Self::Range(a, b) => (a, b),
        }
    }
}

impl HostPattern {
    fn allows(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Under(d), Host::Name(n)) => {
                n.len() > d.len()
                    && n.ends_with(d.as_str())
                    && n[..n.len() - d.len()].ends_with('.')
            }
            (Self::Name(a), Host::Name(b)) => a == b,
            (Self::Ip(a), Host::Ip(b)) => a == b,
            (Self::Net(net, len), Host::Ip(ip)) => in_net(*ip, *net, *len),
            _ => false,
        }
    }

    fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (_, Self::Any) => false,
            (Self::Under(d), Self::Under(e)) => {
                e == d
                    || (e.len() > d.len()
                        && e.ends_with(d.as_str())
                        && e[..e.len() - d.len()].ends_with('.'))
            }
            (s, Self::Name(n)) => s.allows(&Host::Name(n.clone())),
            (s, Self::Ip(ip)) => s.allows(&Host::Ip(*ip)),
            (Self::Net(a, la), Self::Net(b, lb)) => lb >= la && in_net(*b, *a, *la),
            _ => false,
        }
    }
}

/// Whether `ip` is in the network `net/len` (an IPv4 address never is in an IPv6 network).
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Destination {
    /// The entry as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &Host, port: u16) -> bool {
        if !self.scheme.allows(scheme) || !self.host.allows(host) {
            return false;
        }
        let (a, b) = self.ports.range(scheme);
        (a..=b).contains(&port)
    }

    /// Whether this entry names the address `ip` itself (as an address or a network, not through
    /// `*`) for `scheme` and `port`: only such an entry lets a request reach a loopback, private
    /// or link-local address.
    pub fn names_address(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        matches!(self.host, HostPattern::Ip(_) | HostPattern::Net(..))
            && self.allows(scheme, &Host::Ip(ip), port)
    }

    /// Whether everything this entry allows is also allowed by `wider` (a grant must be covered
    /// by an entry the component requested).
    pub fn is_covered_by(&self, wider: &Destination) -> bool {
        if !wider.host.covers(&self.host) {
            return false;
        }
        self.scheme.schemes().iter().all(|scheme| {
            let (a, b) = self.ports.range(scheme);
            let (c, d) = wider.ports.range(scheme);
            wider.scheme.allows(scheme) && c <= a && b <= d
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Destination {
        text.parse().unwrap()
    }

    fn host(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    fn refused(text: &str) -> String {
        text.parse::<Destination>().unwrap_err().reason
    }

    #[test]
    fn schemes_hosts_and_default_ports() {
        let e = d("https://api.example.com");
        assert!(e.allows("https", &host("api.example.com"), 443));
        assert!(e.allows("https", &host("API.Example.com."), 443));
        assert!(!e.allows("http", &host("api.example.com"), 80));
        assert!(!e.allows("https", &host("api.example.com"), 8443));
        assert!(!e.allows("https", &host("evil.api.example.com"), 443));
        let any = d("*://api.example.com");
        assert!(any.allows("http", &host("api.example.com"), 80));
        assert!(any.allows("https", &host("api.example.com"), 443));
        assert!(!any.allows("http", &host("api.example.com"), 443));
    }

    #[test]
    fn wildcards_take_subdomains_but_not_the_apex() {
        let e = d("https://*.example.com");
        assert!(e.allows("https", &host("a.example.com"), 443));
        assert!(e.allows("https", &host("a.b.example.com"), 443));
        assert!(!e.allows("https", &host("example.com"), 443));
        assert!(!e.allows("https", &host("badexample.com"), 443));
        let all = d("*://*:*");
        assert!(all.allows("http", &host("x.test"), 1));
        assert!(all.allows("https", &host("10.0.0.1"), 65535));
    }

    #[test]
    fn ports_ranges_and_networks() {
        let e = d("http://127.0.0.1:8000..8002");
        assert!(e.allows("http", &host("127.0.0.1"), 8000));
        assert!(e.allows("http", &host("127.0.0.1"), 8001));
        assert!(!e.allows("http", &host("127.0.0.1"), 8002));
        assert!(d("http://127.0.0.1:8000..=8002").allows("http", &host("127.0.0.1"), 8002));
        let net = d("*://10.0.0.0/8:*");
        assert!(net.allows("https", &host("10.200.3.4"), 9000));
        assert!(!net.allows("https", &host("11.0.0.1"), 9000));
        let v6 = d("http://[fd00::/8]:80");
        assert!(v6.allows("http", &host("[fd12::1]"), 80));
        assert!(d("http://[::1]:8080").allows("http", &host("[::1]"), 8080));
        assert!(net.names_address("http", "10.1.1.1".parse().unwrap(), 80));
        assert!(!all_names().names_address("http", "10.1.1.1".parse().unwrap(), 80));
    }

    fn all_names() -> Destination {
        d("*://*:*")
    }

    #[test]
    fn mistakes_are_refused_with_the_way_to_write_it() {
        assert!(refused("*").contains("every destination"));
        assert!(refused("*:*").contains("`*://*:*`"));
        assert!(refused("api.example.com").contains("no scheme"));
        assert!(refused("https://api.example.com/v1").contains("path"));
        assert!(refused("https://10.0.0.0/x").contains("path"));
        assert!(refused("ftp://x.example.com").contains("not supported"));
        assert!(refused("https://user:pw@x.example.com").contains("user name"));
        assert!(refused("https://*.com").contains("top-level"));
        assert!(refused("https://api.*.com").contains("first label"));
        assert!(refused("https://x.example.com:0").contains("not a port"));
        assert!(refused("https://x.example.com:70000").contains("not a port"));
        assert!(refused("https://x.example.com:90..80").contains("empty"));
        assert!(refused("https://0.0.0.0/0").contains("every address"));
        assert!(refused("https://").contains("no host"));
        assert!(refused("https://x.example.com?a=1").contains("query"));
        assert!(refused("").contains("empty"));
        assert!(refused("https://[::1").contains("`]`"));
    }

    #[test]
    fn coverage_of_a_grant_by_a_request() {
        let wide = d("*://*:*");
        for g in [
            "https://api.example.com",
            "http://127.0.0.1:9000",
            "*://10.0.0.0/8:*",
        ] {
            assert!(d(g).is_covered_by(&wide), "{g}");
        }
        let vendor = d("https://*.vendor.example");
        assert!(d("https://api.vendor.example").is_covered_by(&vendor));
        assert!(d("https://*.eu.vendor.example").is_covered_by(&vendor));
        assert!(!d("https://vendor.example").is_covered_by(&vendor));
        assert!(!d("http://api.vendor.example").is_covered_by(&vendor));
        assert!(!d("https://api.vendor.example:8443").is_covered_by(&vendor));
        assert!(!d("https://*").is_covered_by(&vendor));
        assert!(d("http://10.1.0.0/16:80").is_covered_by(&d("http://10.0.0.0/8")));
        assert!(!d("http://10.0.0.0/8").is_covered_by(&d("http://10.1.0.0/16")));
        assert!(d("*://x.example:80").is_covered_by(&d("*://x.example:*")));
        assert!(!d("*://x.example").is_covered_by(&d("https://x.example")));
    }

    #[test]
    fn hosts_of_requests() {
        assert_eq!(host("[::1]"), Host::Ip("::1".parse().unwrap()));
        assert_eq!(host("Example.COM"), Host::Name("example.com".into()));
        assert!(Host::parse("").is_none());
        assert!(Host::parse("a b").is_none());
        assert!(Host::parse("[zz]").is_none());
    }
}
