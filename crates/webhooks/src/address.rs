//! Which URLs a webhook may have and which addresses a delivery may connect to (SSRF
//! protection). A URL is checked twice: when the webhook is saved (its host's addresses, once
//! resolved) and at every delivery, where the deliverer resolves the host itself, refuses it if
//! any address is internal and connects only to the addresses it checked — so a DNS answer that
//! changes between the two checks (rebinding) cannot reach an internal service.
//!
//! Only the decisions live here; resolving and connecting are the deliverer's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest URL a webhook may have.
pub const MAX_URL_LEN: usize = 2_000;

/// What kind of address an IP is, as far as webhooks care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// A routable public address.
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), IPv6 unique-local (fc00::/7).
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Cloud instance-metadata services (169.254.169.254, 169.254.170.2, 100.100.100.200,
    /// fd00:ec2::254): refused even when private addresses are allowed.
    Metadata,
    /// 0.0.0.0/8, ::, multicast, broadcast and reserved ranges: never a webhook receiver.
    Unroutable,
}

impl AddressClass {
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unroutable => "an unroutable address",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if [
        [169, 254, 169, 254],
        [169, 254, 170, 2],
        [100, 100, 100, 200],
    ]
    .contains(&o)
    {
        return AddressClass::Metadata;
    }
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if o[0] == 0
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        AddressClass::Unroutable
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    // IPv4 embedded in IPv6 (mapped ::ffff:a.b.c.d, or NAT64 64:ff9b::/96) reaches the IPv4
    // address: judge that one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() || ip.is_multicast() {
        AddressClass::Unroutable
    } else if (s[0] & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else {
        AddressClass::Public
    }
}

/// Why a URL or an address is refused. The message names the URL's problem for a 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("is not a valid URL ({0})")]
    Invalid(String),
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("must use http or https, not {0:?}")]
    Scheme(String),
    #[error("must name a host")]
    NoHost,
    #[error("resolves to {address}, {}; webhooks may not reach internal addresses (start Flagstone with --webhooks-allow-private to allow private networks)", class.describe())]
    Internal {
        address: IpAddr,
        class: AddressClass,
    },
    #[error("resolves to {address}, {}, which no webhook may reach", class.describe())]
    Forbidden {
        address: IpAddr,
        class: AddressClass,
    },
    #[error("host {0:?} does not resolve")]
    Unresolvable(String),
}

/// Which addresses deliveries may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// `--webhooks-allow-private`: loopback, private and link-local addresses are allowed
    /// (tests, receivers on a private network). Metadata and unroutable addresses never are.
    pub allow_private: bool,
}

impl AddressPolicy {
    pub fn allowing_private() -> AddressPolicy {
        AddressPolicy {
            allow_private: true,
        }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn check(self, ip: IpAddr) -> Result<(), UrlRefusal> {
        match AddressClass::of(ip) {
            AddressClass::Public => Ok(()),
            class @ (AddressClass::Loopback | AddressClass::Private | AddressClass::LinkLocal) => {
                if self.allow_private {
                    Ok(())
                } else {
                    Err(UrlRefusal::Internal { address: ip, class })
                }
            }
            class @ (AddressClass::Metadata | AddressClass::Unroutable) => {
                Err(UrlRefusal::Forbidden { address: ip, class })
            }
        }
    }

    /// Checks every address a host resolved to: one internal address refuses the URL (the
    /// client could pick any of them).
    pub fn check_all(self, host: &str, ips: &[IpAddr]) -> Result<(), UrlRefusal> {
        if ips.is_empty() {
            return Err(UrlRefusal::Unresolvable(host.to_string()));
        }
        ips.iter().try_for_each(|ip| self.check(*ip))
    }
}

/// A webhook URL that passed the syntactic checks: http or https, with a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

/// Where a URL's host points before resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An IP literal: checked without resolving.
    Ip(IpAddr),
    /// A name the deliverer must resolve (and check each address).
    Name(String),
}

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<WebhookUrl, UrlRefusal> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlRefusal::TooLong);
        }
        let url = url::Url::parse(s.trim()).map_err(|e| UrlRefusal::Invalid(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(UrlRefusal::Scheme(other.to_string())),
        }
        match url.host() {
            None => Err(UrlRefusal::NoHost),
            Some(url::Host::Domain("")) => Err(UrlRefusal::NoHost),
            Some(_) => Ok(WebhookUrl { url }),
        }
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn host(&self) -> Host {
        match self.url.host() {
            Some(url::Host::Ipv4(v4)) => Host::Ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Host::Ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(d)) => Host::Name(d.to_string()),
            None => Host::Name(String::new()),
        }
    }

    /// The port connections go to (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(80)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        AddressClass::of(s.parse().unwrap())
    }

    #[test]
    fn classifies_the_internal_ranges() {
        assert_eq!(class("8.8.8.8"), AddressClass::Public);
        assert_eq!(class("2606:4700::1111"), AddressClass::Public);
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("127.8.9.10"), AddressClass::Loopback);
        assert_eq!(class("::1"), AddressClass::Loopback);
        assert_eq!(class("10.1.2.3"), AddressClass::Private);
        assert_eq!(class("172.31.0.1"), AddressClass::Private);
        assert_eq!(class("172.32.0.1"), AddressClass::Public);
        assert_eq!(class("192.168.0.10"), AddressClass::Private);
        assert_eq!(class("100.64.0.1"), AddressClass::Private);
        assert_eq!(class("fd12::1"), AddressClass::Private);
        assert_eq!(class("169.254.1.1"), AddressClass::LinkLocal);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(class("169.254.169.254"), AddressClass::Metadata);
        assert_eq!(class("fd00:ec2::254"), AddressClass::Metadata);
        assert_eq!(class("0.0.0.0"), AddressClass::Unroutable);
        assert_eq!(class("::"), AddressClass::Unroutable);
        assert_eq!(class("255.255.255.255"), AddressClass::Unroutable);
        assert_eq!(class("224.0.0.1"), AddressClass::Unroutable);
        // IPv4 hidden in IPv6 is judged as the IPv4 address it reaches.
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:169.254.169.254"), AddressClass::Metadata);
        assert_eq!(class("64:ff9b::a00:1"), AddressClass::Private);
    }

    #[test]
    fn the_flag_allows_private_networks_but_never_metadata() {
        let strict = AddressPolicy::default();
        let open = AddressPolicy::allowing_private();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let md: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(matches!(strict.check(lo), Err(UrlRefusal::Internal { .. })));
        assert!(open.check(lo).is_ok());
        assert!(matches!(open.check(md), Err(UrlRefusal::Forbidden { .. })));
        let public: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(strict.check_all("x", &[public]).is_ok());
        assert!(
            strict.check_all("x", &[public, lo]).is_err(),
            "one internal address refuses"
        );
        assert_eq!(
            strict.check_all("x", &[]),
            Err(UrlRefusal::Unresolvable("x".into()))
        );
        let msg = strict.check(lo).unwrap_err().to_string();
        assert!(msg.contains("--webhooks-allow-private"), "{msg}");
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert!(WebhookUrl::parse("https://example.com/hook").is_ok());
        assert_eq!(WebhookUrl::parse("http://example.com").unwrap().port(), 80);
        assert_eq!(
            WebhookUrl::parse("https://example.com").unwrap().port(),
            443
        );
        assert!(matches!(
            WebhookUrl::parse("ftp://example.com"),
            Err(UrlRefusal::Scheme(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("file:///etc/passwd"),
            Err(UrlRefusal::Scheme(_))
        ));
        assert!(matches!(
            WebhookUrl::parse("not a url"),
            Err(UrlRefusal::Invalid(_))
        ));
        assert_eq!(
            WebhookUrl::parse("http://[::1]:8080/x").unwrap().host(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            WebhookUrl::parse("http://hooks.example.com/x")
                .unwrap()
                .host(),
            Host::Name("hooks.example.com".into())
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(WebhookUrl::parse(&long), Err(UrlRefusal::TooLong));
    }
}
