//! Where webhook deliveries may go. Subscriptions can be made through the API, so a
//! delivery must not become a way to reach what only sift can reach: its own API, the
//! database, a cloud metadata service, the rest of a private network. By default every
//! internal address (loopback, private, link-local with the metadata address, carrier
//! NAT, multicast, reserved) is refused; `notify.allow_networks` lists the networks of
//! receivers that really are internal.
//!
//! Names are checked where it counts, after DNS resolution, at each connection (also for
//! redirects), so a name that later resolves elsewhere gains nothing; an address written
//! in a URL is checked before the request (and on every redirect). This module must not
//! do any I/O but the resolution itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("notify.allow_networks: {0:?} is not an address or a network (10.0.0.0/8, fd00::/8)")]
    BadNetwork(String),
}

/// Why a destination is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "blocked: {host} is {ip}, an internal address ({kind}); list its network in notify.allow_networks if the receiver really is internal"
)]
pub struct Blocked {
    pub host: String,
    pub ip: IpAddr,
    pub kind: &'static str,
}

/// The networks deliveries may reach although internal.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allow: Vec<IpNet>,
}

impl Destinations {
    pub fn new(allow: &[String]) -> Result<Self, GuardError> {
        let allow = allow
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| GuardError::BadNetwork(s.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// Ok for a public address, or an internal one in an allowed network.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Blocked> {
        let Some(kind) = internal(ip) else {
            return Ok(());
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(Blocked {
            host: host.to_string(),
            ip,
            kind,
        })
    }

    /// Checks a URL whose host is an address (names are checked when resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Blocked> {
        // The URL parser has already normalised address spellings (2130706433,
        // 0x7f.1) to dotted IPv4, and IPv6 comes in brackets.
        let Some(h) = url.host_str() else {
            return Ok(());
        };
        let h = h.trim_start_matches('[').trim_end_matches(']');
        match h.parse::<IpAddr>() {
            Ok(ip) => self.check(h, ip),
            Err(_) => Ok(()),
        }
    }
}

/// The kind of internal address `ip` is, or None for a public one.
fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address written as IPv6 (::ffff:a.b.c.d) reaches that IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            internal_v6(v6)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || o[0] == 0 {
        "this host"
    } else if ip.is_link_local() {
        // 169.254.169.254 is the cloud metadata service.
        "link-local or cloud metadata"
    } else if ip.is_private() {
        "private network"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "carrier-grade NAT"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol assignments"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking network"
    } else if ip.is_multicast() {
        "multicast"
    } else if o[0] >= 240 {
        "reserved or broadcast"
    } else {
        return None;
    })
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "this host"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "unique local network"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64: the embedded IPv4 address decides.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4);
    } else {
        return None;
    })
}

/// A resolver for the delivery client that drops internal addresses not allowed, and
/// fails when nothing is left.
pub struct Resolver {
    pub destinations: Arc<Destinations>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dest = self.destinations.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut blocked = None;
            let ok: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match dest.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(b) => {
                        blocked.get_or_insert(b);
                        false
                    }
                })
                .collect();
            match (ok.is_empty(), blocked) {
                (true, Some(b)) => Err(Box::new(b) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(d: &Destinations, ip: &str) -> bool {
        d.check("h", ip.parse().unwrap()).is_err()
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let d = Destinations::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused(&d, ip), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:4860::8888",
            "1.1.1.1",
        ] {
            assert!(!refused(&d, ip), "{ip} is public");
        }
    }

    #[test]
    fn allowed_networks_are_reachable_and_nothing_else() {
        let d = Destinations::new(&["10.20.0.0/16".into(), "127.0.0.1".into()]).unwrap();
        assert!(!refused(&d, "10.20.3.4"));
        assert!(!refused(&d, "127.0.0.1"));
        assert!(refused(&d, "10.21.0.1"));
        assert!(refused(&d, "127.0.0.2"));
        assert!(refused(&d, "169.254.169.254"));
        assert!(Destinations::new(&["not-a-net".into()]).is_err());
    }

    #[test]
    fn an_address_in_a_url_is_checked_and_a_name_is_left_to_resolution() {
        let d = Destinations::default();
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let e = d
            .check_url(&u("http://169.254.169.254/latest/meta-data"))
            .unwrap_err();
        assert!(e.to_string().contains("cloud metadata"), "{e}");
        assert!(d.check_url(&u("http://[::1]:9400/api")).is_err());
        assert!(d.check_url(&u("https://itsm.example.com/api")).is_ok());
    }
}
