//! Which addresses are not on the public internet: a handler's request reaches one only when a
//! grant names the address itself, never through a name that happens to resolve to it (a
//! permitted name pointing at 10.x, or at the host's own loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => special_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => special_v4(v4),
            None => special_v6(a),
        },
    }
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, ..] = a.octets();
    if a.is_unspecified() || o0 == 0 {
        Some("unspecified")
    } else if a.is_loopback() {
        Some("loopback")
    } else if a.is_private() {
        Some("private")
    } else if a.is_link_local() {
        Some("link-local")
    } else if o0 == 100 && (64..128).contains(&o1) {
        Some("shared (carrier-grade NAT)")
    } else if a.is_broadcast() || a.is_multicast() || o0 >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

fn special_v6(a: Ipv6Addr) -> Option<&'static str> {
    let first = a.segments()[0];
    if a.is_unspecified() {
        Some("unspecified")
    } else if a.is_loopback() {
        Some("loopback")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if a.is_multicast() {
        Some("broadcast, multicast or reserved")
    } else if let Some(v4) = a.to_ipv4() {
        // IPv4-compatible (`::a.b.c.d`, deprecated) and NAT64 are judged by the IPv4 inside.
        special_v4(v4).or(Some("IPv4-compatible"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<&'static str> {
        special(text.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_link_local_are_special() {
        for (addr, what) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique local (private)"),
            ("fe80::1", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("255.255.255.255", "broadcast, multicast or reserved"),
        ] {
            assert_eq!(kind(addr), Some(what), "{addr}");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for addr in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860::8888",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(kind(addr), None, "{addr}");
        }
    }
}
