//! Validated scalar values of policy documents (CIDRs, ports, protocols, entities, regexes).
//! Each rejects bad input while deserializing, so the error carries line and field.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CIDR (`10.0.0.0/8`) or a bare address (taken as /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            if net.trunc() != net {
                return Err(format!(
                    "invalid CIDR {s:?}: host bits set (did you mean {}?)",
                    net.trunc()
                ));
            }
            return Ok(Cidr(net));
        }
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Cidr(IpNet::from(ip)));
        }
        Err(format!("invalid CIDR {s:?}"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// L4 protocol of a port rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, UDP and SCTP.
    #[default]
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// IP protocol number (0 for ANY).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Any => 0,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Concrete protocols this stands for.
    pub fn expand(self) -> &'static [Protocol] {
        match self {
            Protocol::Any => &[Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            Protocol::Tcp => &[Protocol::Tcp],
            Protocol::Udp => &[Protocol::Udp],
            Protocol::Sctp => &[Protocol::Sctp],
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "" | "ANY" => Ok(Protocol::Any),
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            _ => Err(format!(
                "invalid protocol {s:?}: expected TCP, UDP, SCTP or ANY"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Any => "ANY",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A port as written: a number (0 = all ports), or a named container port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortNumber {
    /// All ports (omitted or "0").
    #[default]
    All,
    /// A number 1..=65535.
    Number(u16),
    /// A named port (IANA_SVC_NAME).
    Named(String),
}

impl PortNumber {
    /// The number, when numeric.
    pub fn number(&self) -> Option<u16> {
        match self {
            PortNumber::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for PortNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortNumber::All => f.write_str("0"),
            PortNumber::Number(n) => write!(f, "{n}"),
            PortNumber::Named(s) => f.write_str(s),
        }
    }
}

fn parse_port(s: &str) -> Result<PortNumber, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(PortNumber::All);
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(0) => Ok(PortNumber::All),
            Ok(n) if n <= 65535 => Ok(PortNumber::Number(n as u16)),
            _ => Err(format!("port {s} out of range (0-65535)")),
        };
    }
    let valid_name = s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-');
    if valid_name {
        Ok(PortNumber::Named(s.to_string()))
    } else {
        Err(format!(
            "invalid port {s:?}: expected a number 0-65535 or a port name (lowercase, at most 15 characters)"
        ))
    }
}

impl<'de> Deserialize<'de> for PortNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if (0..=65535).contains(&n) => parse_port(&n.to_string()),
            Raw::Int(n) => Err(format!("port {n} out of range (0-65535)")),
            Raw::Str(s) => parse_port(&s),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for PortNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Cilium entities (`toEntities` / `fromEntities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// Everything.
    All,
    /// Outside the cluster.
    World,
    /// Outside the cluster, IPv4.
    WorldIpv4,
    /// Outside the cluster, IPv6.
    WorldIpv6,
    /// Everything in the cluster.
    Cluster,
    /// The local node.
    Host,
    /// Other nodes.
    RemoteNode,
    /// The Kubernetes API server.
    KubeApiserver,
    /// Cilium's ingress.
    Ingress,
    /// Endpoints still being initialized.
    Init,
    /// Health endpoints.
    Health,
    /// Endpoints not managed by the CNI.
    Unmanaged,
    /// Nothing.
    None,
}

impl FromStr for Entity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "all" => Entity::All,
            "world" => Entity::World,
            "world-ipv4" => Entity::WorldIpv4,
            "world-ipv6" => Entity::WorldIpv6,
            "cluster" => Entity::Cluster,
            "host" => Entity::Host,
            "remote-node" => Entity::RemoteNode,
            "kube-apiserver" => Entity::KubeApiserver,
            "ingress" => Entity::Ingress,
            "init" => Entity::Init,
            "health" => Entity::Health,
            "unmanaged" => Entity::Unmanaged,
            "none" => Entity::None,
            _ => {
                return Err(format!(
                    "unknown entity {s:?}: expected one of all, world, world-ipv4, world-ipv6, \
                     cluster, host, remote-node, kube-apiserver, ingress, init, health, unmanaged, none"
                ))
            }
        })
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::All => "all",
            Entity::World => "world",
            Entity::WorldIpv4 => "world-ipv4",
            Entity::WorldIpv6 => "world-ipv6",
            Entity::Cluster => "cluster",
            Entity::Host => "host",
            Entity::RemoteNode => "remote-node",
            Entity::KubeApiserver => "kube-apiserver",
            Entity::Ingress => "ingress",
            Entity::Init => "init",
            Entity::Health => "health",
            Entity::Unmanaged => "unmanaged",
            Entity::None => "none",
        })
    }
}

impl<'de> Deserialize<'de> for Entity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Entity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// An HTTP method/path/host regex, checked to compile when anchored as the proxy uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpRegex(pub String);

impl<'de> Deserialize<'de> for HttpRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&format!("^(?:{s})$"))
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))?;
        Ok(HttpRegex(s))
    }
}

impl Serialize for HttpRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An ICMP type: number 0-255 or a name Cilium accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct IcmpType(pub u8);

impl<'de> Deserialize<'de> for IcmpType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Int(n) if (0..=255).contains(&n) => n as u8,
            Raw::Int(n) => {
                return Err(serde::de::Error::custom(format!(
                    "ICMP type {n} out of range (0-255)"
                )))
            }
            Raw::Str(s) => match s.as_str() {
                "EchoReply" => 0,
                "DestinationUnreachable" => 3,
                "Redirect" => 5,
                "Echo" | "EchoRequest" => 8,
                "TimeExceeded" => 11,
                "ParameterProblem" => 12,
                "Timestamp" => 13,
                "TimestampReply" => 14,
                other => match other.parse::<u8>() {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(serde::de::Error::custom(format!(
                            "unknown ICMP type {other:?}"
                        )))
                    }
                },
            },
        };
        Ok(IcmpType(n))
    }
}
