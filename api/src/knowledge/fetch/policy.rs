//! Which destinations a server-side fetch may reach. This module owns the address rules
//! (pure functions, no I/O) so every path that connects anywhere — IP-literal hosts,
//! resolved names, redirect targets — asks the same question. It must never grant access
//! because of anything a tenant controls: only the operator's allow-list can widen it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// Why an address may not be fetched. `Display` is short and readable: it is shown to the
/// customer next to the source that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    SharedCgnat,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
    CloudMetadata,
    /// An IPv6 address that carries an IPv4 address (mapped, compatible, SIIT).
    Ipv4InIpv6,
    /// A NAT64 or 6to4 address whose embedded IPv4 address is itself refused.
    TranslatedPrivate,
    UniqueLocal,
    /// Outside IPv6 global unicast (2000::/3): nothing public lives there.
    NotGlobalUnicast,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private network address",
            Self::LinkLocal => "a link-local address",
            Self::SharedCgnat => "a carrier-grade NAT address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
            Self::CloudMetadata => "a cloud metadata address",
            Self::Ipv4InIpv6 => "an IPv4 address written as IPv6",
            Self::TranslatedPrivate => "a translated address that points to a private network",
            Self::UniqueLocal => "a unique local (private) IPv6 address",
            Self::NotGlobalUnicast => "an IPv6 address outside the public range",
        })
    }
}

/// Host names that are cloud metadata services whatever they resolve to. Compared after
/// lowercasing and dropping a trailing dot (`url` lowercases, the dot we strip ourselves).
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Classifies an IPv4 address; `None` means publicly routable.
pub fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => AddressClass::CloudMetadata,
        // Alibaba Cloud's metadata service sits in CGNAT space; name it for a clearer message.
        _ if ip == Ipv4Addr::new(100, 100, 100, 200) => AddressClass::CloudMetadata,
        _ if ip.is_broadcast() => AddressClass::Broadcast,
        (0, _, _) => AddressClass::Unspecified,
        (10, _, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::SharedCgnat,
        (127, _, _) => AddressClass::Loopback,
        (169, 254, _) => AddressClass::LinkLocal,
        (172, 16..=31, _) => AddressClass::Private,
        // IETF protocol assignments (192.0.0.0/24), e.g. DS-Lite and NAT64 discovery.
        (192, 0, 0) => AddressClass::Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        // The deprecated 6to4 relay anycast prefix: no web server is there.
        (192, 88, 99) => AddressClass::Reserved,
        (192, 168, _) => AddressClass::Private,
        (198, 18..=19, _) => AddressClass::Benchmarking,
        (224..=239, _, _) => AddressClass::Multicast,
        (240..=255, _, _) => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

/// Classifies an IPv6 address; `None` means publicly routable. Addresses that embed an
/// IPv4 address are judged by it where the embedding is a real translation (NAT64 well-known
/// prefix, 6to4); mapped and compatible forms are refused outright, since their only use in a
/// URL is to smuggle an IPv4 destination past a filter that looks at IPv6 alone.
pub fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let seg = ip.segments();
    let embedded_low = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), ::ffff:0:a.b.c.d (SIIT).
    if seg[..5] == [0; 5] && (seg[5] == 0 || seg[5] == 0xffff) {
        return Some(AddressClass::Ipv4InIpv6);
    }
    if seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0 {
        return Some(AddressClass::Ipv4InIpv6);
    }
    // NAT64 well-known prefix 64:ff9b::/96: the gateway would connect to the embedded IPv4.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_low).map(|_| AddressClass::TranslatedPrivate);
    }
    // 6to4 2002::/16: the embedded IPv4 address sits in segments 1 and 2.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return classify_v4(v4).map(|_| AddressClass::TranslatedPrivate);
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(AddressClass::CloudMetadata);
    }
    let class = match seg[0] {
        0xfc00..=0xfdff => AddressClass::UniqueLocal,
        // fe80::/10 link-local and the deprecated fec0::/10 site-local.
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff => AddressClass::Private,
        0xff00..=0xffff => AddressClass::Multicast,
        // 2001:db8::/32 and 3fff::/20 (RFC 9637) are documentation prefixes.
        0x2001 if seg[1] == 0x0db8 => AddressClass::Documentation,
        0x3fff if seg[1] < 0x1000 => AddressClass::Documentation,
        // 2001:2::/48 benchmarking, inside the IETF protocol block checked next.
        0x2001 if seg[1] == 0x0002 && seg[2] == 0 => AddressClass::Benchmarking,
        // 2001::/23 IETF protocol assignments: Teredo (which embeds an IPv4 server and client),
        // ORCHID, AS112 and friends. No website is served from there.
        0x2001 if seg[1] < 0x0200 => AddressClass::Reserved,
        0x2000..=0x3fff => return None,
        // Everything else — 64:ff9b:1::/48 local NAT64, 100::/64 discard, unassigned space.
        _ => AddressClass::NotGlobalUnicast,
    };
    Some(class)
}

/// Classifies any address; `None` means publicly routable.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The operator's exceptions (e.g. a test's own loopback server). Built from operator
/// configuration only; empty by default.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// `Err` with the class of a refused address, unless the operator allowed it.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            Some(class) if !self.contains(ip) => Err(class),
            _ => Ok(()),
        }
    }
}

/// What the URL check found: either an address to connect to as written, or a name that
/// must go through the vetting resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Address(IpAddr),
    Name(String),
}

/// Why a URL is refused before any resolution or connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRefusal {
    Scheme(String),
    Credentials,
    NoHost,
    MetadataName(String),
    Address { ip: IpAddr, class: AddressClass },
}

/// Checks a parsed URL: scheme, embedded credentials, metadata names and IP-literal hosts.
/// The `url` crate (WHATWG parsing) has already turned `2130706433`, `0177.0.0.1`, `0x7f.1`
/// and `127.1` into `127.0.0.1`, so one check covers every IPv4 spelling.
pub fn check_url(url: &Url, allow: &AllowList) -> Result<Destination, UrlRefusal> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlRefusal::Scheme(other.to_owned())),
    }
    // Credentials in a URL would end up in logs and error messages; sources never need them.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    let ip = match url.host() {
        None => return Err(UrlRefusal::NoHost),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err(UrlRefusal::NoHost);
            }
            if METADATA_NAMES.contains(&name.as_str()) {
                return Err(UrlRefusal::MetadataName(name));
            }
            return Ok(Destination::Name(name));
        }
    };
    allow
        .check(ip)
        .map(|()| Destination::Address(ip))
        .map_err(|class| UrlRefusal::Address { ip, class })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> UrlRefusal {
        let url = Url::parse(url).expect("test URL parses");
        check_url(&url, &AllowList::default()).expect_err("must be refused")
    }

    fn class_of(url: &str) -> AddressClass {
        match refused(url) {
            UrlRefusal::Address { class, .. } => class,
            other => panic!("{url}: expected an address refusal, got {other:?}"),
        }
    }

    #[test]
    fn loopback_in_every_ipv4_spelling_is_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://0177.1/",
            "http://127.0.1/",
            "http://017700000001/",
            "http://127.000.000.001/",
            "http://127.255.255.254/",
            "https://127.0.0.1.:8443/",
        ] {
            assert_eq!(class_of(url), AddressClass::Loopback, "{url}");
        }
    }

    #[test]
    fn private_ranges_in_odd_spellings_are_refused() {
        assert_eq!(class_of("http://10.0.0.1/"), AddressClass::Private);
        assert_eq!(class_of("http://167772161/"), AddressClass::Private); // 10.0.0.1
        assert_eq!(class_of("http://012.0.0.1/"), AddressClass::Private); // octal 10
        assert_eq!(class_of("http://0xa.1/"), AddressClass::Private);
        assert_eq!(class_of("http://172.16.0.1/"), AddressClass::Private);
        assert_eq!(class_of("http://172.31.255.255/"), AddressClass::Private);
        assert_eq!(class_of("http://0xac.0x10.0.1/"), AddressClass::Private);
        assert_eq!(class_of("http://192.168.1.1/"), AddressClass::Private);
        assert_eq!(class_of("http://3232235777/"), AddressClass::Private); // 192.168.1.1
        assert_eq!(class_of("http://0300.0250.1.1/"), AddressClass::Private);
    }

    #[test]
    fn other_ipv4_classes_are_refused() {
        let cases = [
            ("http://0.0.0.0/", AddressClass::Unspecified),
            ("http://0/", AddressClass::Unspecified),
            ("http://0.1.2.3/", AddressClass::Unspecified),
            ("http://169.254.1.1/", AddressClass::LinkLocal),
            ("http://100.64.0.1/", AddressClass::SharedCgnat),
            ("http://100.127.255.254/", AddressClass::SharedCgnat),
            ("http://224.0.0.1/", AddressClass::Multicast),
            ("http://239.255.255.250/", AddressClass::Multicast),
            ("http://255.255.255.255/", AddressClass::Broadcast),
            ("http://4294967295/", AddressClass::Broadcast),
            ("http://240.0.0.1/", AddressClass::Reserved),
            ("http://192.0.0.170/", AddressClass::Reserved),
            ("http://192.88.99.1/", AddressClass::Reserved),
            ("http://192.0.2.10/", AddressClass::Documentation),
            ("http://198.51.100.7/", AddressClass::Documentation),
            ("http://203.0.113.200/", AddressClass::Documentation),
            ("http://198.18.0.1/", AddressClass::Benchmarking),
            ("http://198.19.255.1/", AddressClass::Benchmarking),
        ];
        for (url, class) in cases {
            assert_eq!(class_of(url), class, "{url}");
        }
    }

    #[test]
    fn cloud_metadata_in_every_spelling_is_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.100.100.200/",
        ] {
            let refusal = refused(url);
            assert!(
                matches!(
                    refusal,
                    UrlRefusal::Address {
                        class: AddressClass::CloudMetadata | AddressClass::Ipv4InIpv6,
                        ..
                    }
                ),
                "{url}: {refusal:?}"
            );
        }
        for url in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://metadata/",
            "http://metadata.goog/",
        ] {
            assert!(matches!(refused(url), UrlRefusal::MetadataName(_)), "{url}");
        }
    }

    #[test]
    fn ipv6_loopback_and_embedded_ipv4_spellings_are_refused() {
        let cases = [
            ("http://[::1]/", AddressClass::Loopback),
            ("http://[0:0:0:0:0:0:0:1]/", AddressClass::Loopback),
            ("http://[::]/", AddressClass::Unspecified),
            ("http://[::ffff:127.0.0.1]/", AddressClass::Ipv4InIpv6),
            ("http://[::ffff:7f00:1]/", AddressClass::Ipv4InIpv6),
            ("http://[::ffff:8.8.8.8]/", AddressClass::Ipv4InIpv6),
            ("http://[::127.0.0.1]/", AddressClass::Ipv4InIpv6),
            ("http://[::10.0.0.1]/", AddressClass::Ipv4InIpv6),
            ("http://[::ffff:0:127.0.0.1]/", AddressClass::Ipv4InIpv6),
            (
                "http://[64:ff9b::127.0.0.1]/",
                AddressClass::TranslatedPrivate,
            ),
            ("http://[64:ff9b::a00:1]/", AddressClass::TranslatedPrivate),
            (
                "http://[64:ff9b::169.254.169.254]/",
                AddressClass::TranslatedPrivate,
            ),
            ("http://[2002:7f00:1::]/", AddressClass::TranslatedPrivate),
            (
                "http://[2002:c0a8:101::1]/",
                AddressClass::TranslatedPrivate,
            ),
            (
                "http://[2002:a9fe:a9fe::]/",
                AddressClass::TranslatedPrivate,
            ),
            ("http://[64:ff9b:1::1]/", AddressClass::NotGlobalUnicast),
            ("http://[100::1]/", AddressClass::NotGlobalUnicast),
        ];
        for (url, class) in cases {
            assert_eq!(class_of(url), class, "{url}");
        }
    }

    #[test]
    fn other_ipv6_classes_are_refused() {
        let cases = [
            ("http://[fc00::1]/", AddressClass::UniqueLocal),
            ("http://[fd12:3456::1]/", AddressClass::UniqueLocal),
            ("http://[fe80::1]/", AddressClass::LinkLocal),
            ("http://[febf::1]/", AddressClass::LinkLocal),
            ("http://[fec0::1]/", AddressClass::Private),
            ("http://[ff02::1]/", AddressClass::Multicast),
            ("http://[2001:db8::1]/", AddressClass::Documentation),
            ("http://[3fff::1]/", AddressClass::Documentation),
            ("http://[2001:2::1]/", AddressClass::Benchmarking),
            ("http://[2001:0:4136:e378::1]/", AddressClass::Reserved), // Teredo
        ];
        for (url, class) in cases {
            assert_eq!(class_of(url), class, "{url}");
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        let allow = AllowList::default();
        for (url, want) in [
            (
                "http://93.184.215.14/",
                Destination::Address("93.184.215.14".parse().unwrap()),
            ),
            (
                "https://[2606:4700::1111]/",
                Destination::Address("2606:4700::1111".parse().unwrap()),
            ),
            (
                "http://[64:ff9b::808:808]/",
                Destination::Address("64:ff9b::808:808".parse().unwrap()),
            ),
            (
                "http://[2002:808:808::1]/",
                Destination::Address("2002:808:808::1".parse().unwrap()),
            ),
            (
                "https://Docs.Example.COM./guide",
                Destination::Name("docs.example.com".into()),
            ),
            (
                "http://100.63.0.1/",
                Destination::Address("100.63.0.1".parse().unwrap()),
            ),
            (
                "http://172.32.0.1/",
                Destination::Address("172.32.0.1".parse().unwrap()),
            ),
        ] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(check_url(&parsed, &allow), Ok(want), "{url}");
        }
    }

    #[test]
    fn non_http_schemes_and_credentials_are_refused() {
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://example.com:70/",
            "data:text/plain,hi",
            "javascript:alert(1)",
        ] {
            assert!(matches!(refused(url), UrlRefusal::Scheme(_)), "{url}");
        }
        assert_eq!(
            refused("http://user:pw@example.com/"),
            UrlRefusal::Credentials
        );
        assert_eq!(refused("http://user@example.com/"), UrlRefusal::Credentials);
    }

    #[test]
    fn the_operator_allow_list_opens_only_its_own_networks() {
        let allow = AllowList::new(vec!["127.0.0.1/32".parse().unwrap()]);
        let ok = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(check_url(&ok, &allow).is_ok());
        let other = Url::parse("http://127.0.0.2:8080/").unwrap();
        assert!(check_url(&other, &allow).is_err());
        let v6 = Url::parse("http://[::1]:8080/").unwrap();
        assert!(check_url(&v6, &allow).is_err());
        // The metadata name stays refused whatever the allow-list says.
        let allow_all = AllowList::new(vec!["0.0.0.0/0".parse().unwrap()]);
        let meta = Url::parse("http://metadata.google.internal/").unwrap();
        assert!(check_url(&meta, &allow_all).is_err());
    }
}
