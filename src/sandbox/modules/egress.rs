//! The connection's egress allow-list, shared by every module that opens a socket (HTTP,
//! `pg`, `mysql`): which hosts and ports a script may reach, and which addresses a name may
//! lead to — public ones only, so a tenant's DNS cannot reach loopback or the operator's
//! private network. In `customdb serve` an internal address (loopback, private, link-local,
//! CGNAT, multicast, unspecified) is reached only where the operator allows it, whatever the
//! tenant lists; `customdb try` and `customdb test` let the list name such addresses itself.

use std::net::{IpAddr, SocketAddr};

use super::Failure;
use crate::script::{Internal, Policy};

/// An egress refusal: the request never left the worker.
#[derive(Debug, thiserror::Error)]
#[error("egress to {target} is not allowed: {why}")]
pub struct Denied {
    target: String,
    why: std::borrow::Cow<'static, str>,
}

/// The failure a script sees for a refusal.
pub fn denied(d: Denied) -> Failure {
    Failure::new(d.to_string()).with("code", "EGRESS_DENIED")
}

/// The parsed allow-list, with the operator's rule for internal addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AllowList {
    entries: Vec<Entry>,
    internal: InternalRule,
}

/// `None`: the allow-list may name internal addresses (try, test). `Some`: only these
/// operator entries reach them (serve).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct InternalRule(Option<Vec<Operator>>);

/// One `--egress-allow-internal` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Operator {
    /// An address or CIDR block, any port.
    Block(IpAddr, u8),
    /// `HOST:PORT`: that name or address at that port.
    At(Host, u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Name(String),
    /// `*.example.com`: any subdomain of `example.com`.
    Suffix(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Entry {
    host: Host,
    port: Option<u16>,
}

impl AllowList {
    /// The allow-list of a run's policy.
    pub fn of(policy: &Policy) -> Self {
        let mut list = AllowList::parse(&policy.egress);
        list.internal = match &policy.internal {
            Internal::Listed => InternalRule(None),
            Internal::Operator(entries) => InternalRule(Some(
                entries.iter().filter_map(|e| parse_operator(e)).collect(),
            )),
        };
        list
    }

    /// The entries alone, naming internal addresses themselves (`Internal::Listed`).
    fn parse(entries: &[String]) -> Self {
        let entries = entries
            .iter()
            .filter_map(|raw| {
                let raw = raw.trim().to_ascii_lowercase();
                let (host, port) = split_port(&raw);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let host = if let Ok(ip) = host.parse::<IpAddr>() {
                    Host::Ip(ip)
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    Host::Suffix(suffix.to_string())
                } else if !host.is_empty() {
                    Host::Name(host.to_string())
                } else {
                    return None;
                };
                Some(Entry { host, port })
            })
            .collect();
        AllowList {
            entries,
            internal: InternalRule(None),
        }
    }

    /// Whether the operator lets `ip` (reached as `host`, at `port`) be used although it is
    /// internal. Public addresses need no permission.
    fn internal_ok(&self, ip: IpAddr, host: &Host, port: Option<u16>) -> bool {
        let Some(operator) = &self.internal.0 else {
            return true;
        };
        is_public(ip)
            || operator.iter().any(|entry| match entry {
                Operator::Block(net, bits) => in_block(ip, *net, *bits),
                // An unknown port (the HTTP resolver's) was checked against these entries by
                // `check_host` already.
                Operator::At(h, p) => {
                    port.is_none_or(|port| port == *p) && (h == host || *h == Host::Ip(ip))
                }
            })
    }

    /// Whether `url`'s host and port are on the list. Addresses are checked at resolution.
    pub fn check(&self, url: &url::Url) -> Result<(), Denied> {
        let port = url.port_or_known_default();
        match url.host_str() {
            Some(h) => self.check_host(h, port),
            None => Err(deny(url.as_str(), "the URL has no host")),
        }
    }

    /// Whether `host` (a name or an IP address, IPv6 with or without brackets) and `port` are
    /// on the list.
    pub fn check_host(&self, host: &str, port: Option<u16>) -> Result<(), Denied> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let target = match port {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        };
        let listed = self.entries.iter().any(|e| {
            let port_ok = e.port.is_none() || e.port == port;
            let host_ok = match (&e.host, &host) {
                (Host::Ip(a), Host::Ip(b)) => a == b,
                (Host::Name(a), Host::Name(b)) => a == b,
                (Host::Suffix(s), Host::Name(b)) => b.ends_with(&format!(".{s}")),
                _ => false,
            };
            port_ok && host_ok
        });
        if !listed {
            // Say the fix where the reader can apply it: on the command line for try and
            // test, in the connection's options on a server.
            let fix = match (&self.internal.0, port) {
                (None, Some(p)) if bare.contains(':') => format!("pass --allow-host [{bare}]:{p}"),
                (None, Some(p)) => format!("pass --allow-host {bare}:{p}"),
                (None, None) => format!("pass --allow-host {bare}"),
                (Some(_), _) => "add the host to the connection's allowed_hosts".to_string(),
            };
            return Err(deny(
                &target,
                format!("it is not on the allow-list ({fix})"),
            ));
        }
        if let Host::Ip(ip) = host
            && !self.internal_ok(ip, &host, port)
        {
            return Err(deny(&target, INTERNAL));
        }
        // A name the operator allows at given ports is allowed at those ports only (the HTTP
        // resolver, which decides about its addresses, does not see the port).
        if let Some(operator) = &self.internal.0 {
            let ports: Vec<u16> = operator
                .iter()
                .filter_map(|e| match e {
                    Operator::At(h, p) if *h == host => Some(*p),
                    _ => None,
                })
                .collect();
            if !ports.is_empty() && !port.is_some_and(|p| ports.contains(&p)) {
                return Err(deny(
                    &target,
                    "the operator allows this host at other ports only",
                ));
            }
        }
        Ok(())
    }

    fn names_localhost(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.host == Host::Name("localhost".into()))
    }

    /// The addresses `host` may be reached at, for a host `check_host` allowed: an IP address
    /// is itself; a name resolves to its public addresses only (loopback too for a listed
    /// `localhost`). A tenant's DNS must not lead into the operator's network.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Denied> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let wanted = (port != 0).then_some(port);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if !self.internal_ok(ip, &Host::Ip(ip), wanted) {
                return Err(deny(bare, INTERNAL));
            }
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = bare.to_ascii_lowercase();
        let as_host = Host::Name(name.clone());
        let localhost = name == "localhost" && self.names_localhost() && self.internal.0.is_none();
        let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|_| Denied {
                target: name.clone(),
                why: "the name does not resolve".into(),
            })?
            .collect();
        let usable: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| {
                is_public(a.ip())
                    || (localhost && a.ip().is_loopback())
                    || (self.internal.0.is_some() && self.internal_ok(a.ip(), &as_host, wanted))
            })
            .collect();
        if usable.is_empty() {
            return Err(deny(
                &name,
                "it resolves only to private or loopback addresses, which a name cannot \
                 reach (list the IP address itself)",
            ));
        }
        Ok(usable)
    }
}

const INTERNAL: &str = "it is an internal address (loopback, private, link-local, shared or \
     multicast), which a tenant cannot reach unless the operator allows it \
     (customdb serve --egress-allow-internal)";

/// An operator entry: `ADDR`, `ADDR/BITS`, or `HOST:PORT` (`[v6]:PORT`).
fn parse_operator(raw: &str) -> Option<Operator> {
    let raw = raw.trim().to_ascii_lowercase();
    if let Some((addr, bits)) = raw.split_once('/') {
        let ip: IpAddr = addr.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits.parse().ok().filter(|b| *b <= max)?;
        return Some(Operator::Block(ip, bits));
    }
    if let Ok(ip) = raw
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(Operator::Block(ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let (host, port) = split_port(&raw);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) if !host.is_empty() => Host::Name(host.to_string()),
        Err(_) => return None,
    };
    Some(Operator::At(host, port?))
}

/// Checks an operator entry as `serve` reads it, naming what is wrong.
pub fn check_operator_entry(raw: &str) -> Result<(), String> {
    parse_operator(raw)
        .map(|_| ())
        .ok_or_else(|| format!("'{raw}' is not an address, a CIDR block (10.0.0.0/8) or HOST:PORT"))
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn deny(target: &str, why: impl Into<std::borrow::Cow<'static, str>>) -> Denied {
    Denied {
        target: target.to_string(),
        why: why.into(),
    }
}

fn split_port(raw: &str) -> (&str, Option<u16>) {
    // `[v6]:port`, `host:port`; a bare IPv6 address has several colons and no port.
    if let Some(rest) = raw.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host, port.parse().ok());
    }
    match raw.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (raw, None),
        },
        _ => (raw, None),
    }
}

/// Addresses on the public internet: not loopback, private, link-local, shared, multicast,
/// documentation, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matching() {
        let list = AllowList::parse(&[
            "api.example.com".into(),
            "*.corp.example".into(),
            "127.0.0.1:8080".into(),
            "[::1]:9".into(),
        ]);
        let table = [
            ("https://api.example.com/x", true),
            ("http://API.example.com:81/x", true),
            ("https://evil.example.com/", false),
            ("https://a.b.corp.example/", true),
            ("https://corp.example/", false),
            ("http://127.0.0.1:8080/", true),
            ("http://127.0.0.1:8081/", false),
            ("http://[::1]:9/", true),
            ("http://localhost:8080/", false),
        ];
        for (url, ok) in table {
            let url = url::Url::parse(url).unwrap();
            assert_eq!(list.check(&url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn internal_addresses_need_the_operator() {
        let policy = |internal: Internal| Policy {
            egress: vec![
                "127.0.0.1".into(),
                "169.254.169.254".into(),
                "10.1.2.3:5432".into(),
                "[::1]:9".into(),
            ],
            internal,
            ..Policy::default()
        };
        let served = AllowList::of(&policy(Internal::default()));
        for url in [
            "http://127.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3:5432/",
            "http://[::1]:9/",
        ] {
            let err = served
                .check(&url::Url::parse(url).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains("internal address"), "{url}: {err}");
        }
        let operator = AllowList::of(&policy(Internal::Operator(vec![
            "10.0.0.0/8".into(),
            "[::1]:9".into(),
        ])));
        assert!(
            operator
                .check(&url::Url::parse("http://10.1.2.3:5432/").unwrap())
                .is_ok()
        );
        assert!(
            operator
                .check(&url::Url::parse("http://[::1]:9/").unwrap())
                .is_ok()
        );
        assert!(
            operator
                .check(&url::Url::parse("http://127.0.0.1/").unwrap())
                .is_err()
        );
        let named = AllowList::of(&Policy {
            egress: vec!["legacy.internal".into()],
            internal: Internal::Operator(vec!["legacy.internal:5432".into()]),
            ..Policy::default()
        });
        assert!(named.check_host("legacy.internal", Some(5432)).is_ok());
        assert!(
            named.check_host("legacy.internal", Some(22)).is_err(),
            "other ports stay closed"
        );
        let local = AllowList::of(&policy(Internal::Listed));
        assert!(
            local
                .check(&url::Url::parse("http://127.0.0.1:8080/").unwrap())
                .is_ok()
        );
        for bad in ["10.0.0.0/33", "host-without-port", ""] {
            assert!(check_operator_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_addresses() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("2606:4700::1111", true),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
