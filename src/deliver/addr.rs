//! Which addresses sanhook may connect to (docs/reference.md §2 `allow_private`, `allow_link_local`, §5).
//!
//! One classifier for every outgoing request: webhook URLs, `apiBase`, `[platforms]`. Every
//! address is [`Class::Public`], [`Class::Private`] (loopback, private, shared, reserved,
//! documentation, multicast, ...: allowed only with `delivery.allow_private`) or
//! [`Class::LinkLocal`] (link-local and cloud metadata services: allowed only with
//! `delivery.allow_link_local`, whatever `allow_private` says, since a metadata service hands
//! out the host's cloud credentials to whoever asks). IPv6 forms that carry an IPv4 address
//! (mapped, IPv4-compatible, NAT64, 6to4) are judged by the IPv4 address they lead to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::DeliveryConfig;

/// What an address is, as far as the checks care. The text names the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Globally routable: always allowed.
    Public,
    /// Allowed only with `delivery.allow_private = true`.
    Private(&'static str),
    /// Allowed only with `delivery.allow_link_local = true`.
    LinkLocal(&'static str),
}

impl Class {
    /// How strictly it is guarded: the stricter of two classes wins where both apply.
    fn rank(self) -> u8 {
        match self {
            Class::Public => 0,
            Class::Private(_) => 1,
            Class::LinkLocal(_) => 2,
        }
    }

    fn stricter(self, other: Class) -> Class {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// IPv4 ranges that are not public, most specific first: `(network, prefix length, class)`.
const V4: &[([u8; 4], u8, Class)] = &[
    (
        [169, 254, 169, 254],
        32,
        Class::LinkLocal("cloud metadata service"),
    ),
    (
        [100, 100, 100, 200],
        32,
        Class::LinkLocal("cloud metadata service"),
    ),
    (
        [192, 0, 0, 192],
        32,
        Class::LinkLocal("cloud metadata service"),
    ),
    ([169, 254, 0, 0], 16, Class::LinkLocal("link-local")),
    (
        [0, 0, 0, 0],
        8,
        Class::Private("\"this network\" (0.0.0.0/8)"),
    ),
    ([10, 0, 0, 0], 8, Class::Private("private")),
    (
        [100, 64, 0, 0],
        10,
        Class::Private("shared (carrier-grade NAT)"),
    ),
    ([127, 0, 0, 0], 8, Class::Private("loopback")),
    ([172, 16, 0, 0], 12, Class::Private("private")),
    ([192, 0, 0, 0], 24, Class::Private("IETF protocol")),
    ([192, 0, 2, 0], 24, Class::Private("documentation")),
    ([192, 88, 99, 0], 24, Class::Private("6to4 relay")),
    ([192, 168, 0, 0], 16, Class::Private("private")),
    ([198, 18, 0, 0], 15, Class::Private("benchmarking")),
    ([198, 51, 100, 0], 24, Class::Private("documentation")),
    ([203, 0, 113, 0], 24, Class::Private("documentation")),
    ([224, 0, 0, 0], 4, Class::Private("multicast")),
    ([240, 0, 0, 0], 4, Class::Private("reserved or broadcast")),
];

/// IPv6 ranges that are not public, most specific first (the forms that carry an IPv4
/// address are handled before these).
const V6: &[([u16; 8], u8, Class)] = &[
    (
        [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
        128,
        Class::LinkLocal("cloud metadata service"),
    ),
    (
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        Class::LinkLocal("link-local"),
    ),
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, Class::Private("unspecified")),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, Class::Private("loopback")),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        Class::Private("local-use NAT64"),
    ),
    (
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        Class::Private("discard-only"),
    ),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Class::Private("Teredo")),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        Class::Private("documentation"),
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        Class::Private("IETF protocol"),
    ),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        Class::Private("documentation"),
    ),
    (
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        Class::Private("unique local"),
    ),
    (
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        Class::Private("site-local"),
    ),
    (
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        Class::Private("multicast"),
    ),
];

/// The class of an address.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let bits = u32::from(ip);
    V4.iter()
        .find(|(net, len, _)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            bits & mask == u32::from_be_bytes(*net) & mask
        })
        .map_or(Class::Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let seg = ip.segments();
    let o = ip.octets();
    let last_v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d: the IPv4 address itself.
        return classify_v4(v4);
    }
    if seg[..6] == [0; 6] && seg[6] != 0 {
        // ::a.b.c.d, IPv4-compatible (deprecated): never public, and as strict as its IPv4.
        return classify_v4(last_v4).stricter(Class::Private("IPv4-compatible"));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // The NAT64 well-known prefix: the IPv4 address it translates to.
        return classify_v4(last_v4);
    }
    if seg[0] == 0x2002 {
        // 6to4: the IPv4 address of the tunnel's end.
        return classify_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    let bits = u128::from(ip);
    let listed = V6.iter().find(|(net, len, _)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        bits & mask == u128::from(Ipv6Addr::from(*net)) & mask
    });
    match listed {
        Some((_, _, class)) => *class,
        // Only 2000::/3 is global unicast; the rest is unallocated or reserved.
        None if seg[0] & 0xe000 != 0x2000 => Class::Private("reserved"),
        None => Class::Public,
    }
}

/// The address checks of `[delivery]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `delivery.allow_private`.
    pub allow_private: bool,
    /// `delivery.allow_link_local`.
    pub allow_link_local: bool,
}

impl Policy {
    /// The checks `cfg` asks for.
    pub fn of(cfg: &DeliveryConfig) -> Policy {
        Policy {
            allow_private: cfg.allow_private,
            allow_link_local: cfg.allow_link_local,
        }
    }

    /// Whether every address is allowed (nothing to check).
    pub fn allows_all(self) -> bool {
        self.allow_private && self.allow_link_local
    }

    /// `Err` says why `ip` may not be connected to, naming the key that would allow it.
    pub fn check(self, ip: IpAddr) -> Result<(), String> {
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Private(_) if self.allow_private => Ok(()),
            Class::LinkLocal(_) if self.allow_link_local => Ok(()),
            Class::Private(what) => Err(format!(
                "{ip} is a {what} address; refused because delivery.allow_private = false"
            )),
            Class::LinkLocal(what) => Err(format!(
                "{ip} is a {what} address; refused unless delivery.allow_link_local = true \
                 (whatever allow_private says)"
            )),
        }
    }

    /// The addresses of `host` this policy allows; `Err` when there is none, saying why the
    /// first one was refused.
    pub fn filter(self, host: &str, all: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = all
            .into_iter()
            .filter(|a| match self.check(a.ip()) {
                Ok(()) => true,
                Err(e) => {
                    refused.get_or_insert(e);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(why)) => Err(format!("{host} resolves to {why}")),
            (true, None) => Err(format!("{host} resolves to no address")),
        }
    }
}

/// The client's resolver: answers only with addresses the policy allows, so that the address
/// checked is the address connected to (no window for a name to resolve to a public address at
/// a check and to a private one at the connect).
pub(crate) struct Checked(pub Policy);

impl reqwest::dns::Resolve for Checked {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter(&host, all)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The checks before a request to `url`: an IP literal (which no resolver sees) is checked
/// here; a name is checked by [`Checked`] at the connect, or, when `proxied` (the proxy
/// resolves and connects for us), resolved and checked here, every address of it.
pub(crate) async fn admit(policy: Policy, proxied: bool, url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return policy.check(ip);
    }
    if !proxied || policy.allows_all() {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(0);
    let all: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| {
            format!(
                "cannot resolve {bare} to check its address before sending it to \
                 delivery.proxy: {e}"
            )
        })?
        .collect();
    if all.is_empty() {
        return Err(format!("{bare} resolves to no address"));
    }
    for a in all {
        policy
            .check(a.ip())
            .map_err(|e| format!("{bare} resolves to {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(address, what it is)`: `P` public, `R` private/reserved, `L` link-local/metadata.
    const TABLE: &[(&str, char)] = &[
        ("8.8.8.8", 'P'),
        ("1.1.1.1", 'P'),
        ("100.63.255.255", 'P'),
        ("100.128.0.0", 'P'),
        ("172.15.255.255", 'P'),
        ("172.32.0.0", 'P'),
        ("198.17.255.255", 'P'),
        ("198.20.0.0", 'P'),
        ("223.255.255.255", 'P'),
        ("0.0.0.0", 'R'),
        ("0.1.2.3", 'R'),
        ("10.0.0.1", 'R'),
        ("100.64.0.1", 'R'),
        ("100.127.255.254", 'R'),
        ("127.0.0.1", 'R'),
        ("127.255.255.254", 'R'),
        ("172.16.0.1", 'R'),
        ("172.31.255.255", 'R'),
        ("192.0.0.8", 'R'),
        ("192.0.2.1", 'R'),
        ("192.88.99.1", 'R'),
        ("192.168.1.1", 'R'),
        ("198.18.0.1", 'R'),
        ("198.19.255.255", 'R'),
        ("198.51.100.7", 'R'),
        ("203.0.113.7", 'R'),
        ("224.0.0.1", 'R'),
        ("239.255.255.250", 'R'),
        ("240.0.0.1", 'R'),
        ("255.255.255.255", 'R'),
        ("169.254.0.1", 'L'),
        ("169.254.169.254", 'L'),
        ("169.254.170.2", 'L'),
        ("100.100.100.200", 'L'),
        ("192.0.0.192", 'L'),
        ("2606:4700::1111", 'P'),
        ("2400:3200::1", 'P'),
        ("64:ff9b::808:808", 'P'),
        ("2002:808:808::1", 'P'),
        ("::", 'R'),
        ("::1", 'R'),
        ("::127.0.0.1", 'R'),
        ("::10.0.0.1", 'R'),
        ("::8.8.8.8", 'R'),
        ("::ffff:10.0.0.1", 'R'),
        ("::ffff:127.0.0.1", 'R'),
        ("::ffff:0.0.0.0", 'R'),
        ("64:ff9b::10.0.0.1", 'R'),
        ("64:ff9b::127.0.0.1", 'R'),
        ("64:ff9b:1::1", 'R'),
        ("2002:a00:1::1", 'R'),
        ("2002:7f00:1::", 'R'),
        ("100::1", 'R'),
        ("2001::1", 'R'),
        ("2001:db8::1", 'R'),
        ("2001:2::1", 'R'),
        ("3fff::1", 'R'),
        ("fc00::1", 'R'),
        ("fd12:3456::1", 'R'),
        ("fec0::1", 'R'),
        ("feff::1", 'R'),
        ("ff02::1", 'R'),
        ("ff0e::1", 'R'),
        ("4000::1", 'R'),
        ("1::1", 'R'),
        ("fe80::1", 'L'),
        ("febf::1", 'L'),
        ("fd00:ec2::254", 'L'),
        ("::ffff:169.254.169.254", 'L'),
        ("::169.254.169.254", 'L'),
        ("64:ff9b::169.254.169.254", 'L'),
        ("2002:a9fe:a9fe::", 'L'),
    ];

    #[test]
    fn the_table() {
        for (text, want) in TABLE {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            let got = match classify(ip) {
                Class::Public => 'P',
                Class::Private(_) => 'R',
                Class::LinkLocal(_) => 'L',
            };
            assert_eq!(got, *want, "{text}: {:?}", classify(ip));
        }
    }

    #[test]
    fn the_policy() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let strict = Policy {
            allow_private: false,
            allow_link_local: false,
        };
        let private = Policy {
            allow_private: true,
            allow_link_local: false,
        };
        let link_local = Policy {
            allow_private: false,
            allow_link_local: true,
        };
        assert!(strict.check(ip("8.8.8.8")).is_ok());
        let e = strict.check(ip("127.0.0.1")).expect_err("loopback");
        assert!(e.contains("loopback") && e.contains("allow_private"), "{e}");
        assert!(private.check(ip("10.0.0.1")).is_ok());
        // Metadata and link-local: refused with allow_private, allowed only by allow_link_local.
        let e = private.check(ip("169.254.169.254")).expect_err("metadata");
        assert!(e.contains("allow_link_local"), "{e}");
        assert!(private.check(ip("fd00:ec2::254")).is_err());
        assert!(link_local.check(ip("fe80::1")).is_ok());
        assert!(link_local.check(ip("::1")).is_err());
        assert!(!private.allows_all() && !link_local.allows_all());

        let addrs = |v: &[&str]| -> Vec<SocketAddr> {
            v.iter().map(|s| SocketAddr::new(ip(s), 80)).collect()
        };
        assert_eq!(
            strict.filter("h", addrs(&["10.0.0.1", "8.8.8.8"])),
            Ok(addrs(&["8.8.8.8"]))
        );
        let e = strict
            .filter("h", addrs(&["::1", "127.0.0.1"]))
            .expect_err("none left");
        assert!(
            e.starts_with("h resolves to ::1 is a loopback address"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn literals_are_checked_before_sending() {
        let strict = Policy {
            allow_private: false,
            allow_link_local: false,
        };
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
            "http://[::127.0.0.1]/x",
            "http://[::ffff:7f00:1]/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let u = reqwest::Url::parse(url).expect("url");
            assert!(admit(strict, false, &u).await.is_err(), "{url}");
            assert!(admit(strict, true, &u).await.is_err(), "{url}");
        }
        // A name that resolves to loopback: refused before a proxy is asked.
        let u = reqwest::Url::parse("http://localhost:9/x").expect("url");
        let e = admit(strict, true, &u).await.expect_err("localhost");
        assert!(e.contains("loopback"), "{e}");
        // Directly, names are left to the client's resolver.
        assert!(admit(strict, false, &u).await.is_ok());
    }
}
