//! The connection's egress allow-list, shared by every module that opens a socket (HTTP,
//! `pg`, `mysql`): which hosts and ports a script may reach, and which addresses a name may
//! lead to — public ones only, so a tenant's DNS cannot reach loopback or the operator's
//! private network unless the list names the address itself.

use std::net::{IpAddr, SocketAddr};

use super::Failure;

/// An egress refusal: the request never left the worker.
#[derive(Debug, thiserror::Error)]
#[error("egress to {target} is not allowed: {why}")]
pub struct Denied {
    target: String,
    why: &'static str,
}

/// The failure a script sees for a refusal.
pub fn denied(d: Denied) -> Failure {
    Failure::new(d.to_string()).with("code", "EGRESS_DENIED")
}

/// The parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
enum Host {
    Name(String),
    /// `*.example.com`: any subdomain of `example.com`.
    Suffix(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone)]
struct Entry {
    host: Host,
    port: Option<u16>,
}

impl AllowList {
    pub fn parse(entries: &[String]) -> Self {
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
        AllowList { entries }
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
        if listed {
            Ok(())
        } else {
            Err(deny(
                &target,
                "it is not on the connection's allow-list (add the host to allowed_hosts)",
            ))
        }
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
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = bare.to_ascii_lowercase();
        let localhost = name == "localhost" && self.names_localhost();
        let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|_| Denied {
                target: name.clone(),
                why: "the name does not resolve",
            })?
            .collect();
        let usable: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| is_public(a.ip()) || (localhost && a.ip().is_loopback()))
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

fn deny(target: &str, why: &'static str) -> Denied {
    Denied {
        target: target.to_string(),
        why,
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
