//! Resolution: compiled rules + cluster state → per endpoint and direction, whether policy is
//! enforced and the map entries {remote identity, protocol, port range} → allow | deny |
//! redirect, plus the L7 rules the proxies enforce for redirected ports.
//!
//! Precedence is Cilium's: deny beats allow; otherwise the more specific port match wins
//! (L3+L4 > L4 with any identity > L3 only > allow-all). See [`DirectionPolicy::lookup`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::cluster::{fqdn_label_key, ClusterState, Endpoint};
use crate::compile::{
    CompiledPolicies, Direction, Origin, PeerRule, PeerSelector, Peers, PortSpec, PortTls, L7,
};
use crate::fqdn::FqdnSelector;
use crate::identity::{self, Allocator, Identity, IdentityKind};
use crate::labels::{Label, SOURCE_FQDN, SOURCE_RESERVED};
use crate::model::HttpRule;
use crate::ports;
use crate::values::{Entity, PortNumber};

/// Options that change resolution.
#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Let the local host reach local endpoints whatever their ingress policy says (Cilium's
    /// `allow-localhost: always`, its default in Kubernetes mode, so kubelet probes work).
    pub allow_localhost: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            allow_localhost: true,
        }
    }
}

/// A set of remote identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSet {
    /// Any identity (key identity 0).
    Any,
    /// These identities.
    Ids(BTreeSet<u32>),
}

/// Key of a policy entry. Port range is inclusive; `proto == 0` means every protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    /// Remote identity, 0 = any.
    pub identity: u32,
    /// IP protocol number, 0 = any (then the range is 0..=65535).
    pub proto: u8,
    /// First port (ICMP: type).
    pub port: u16,
    /// Last port.
    pub end_port: u16,
}

impl EntryKey {
    /// True when the key covers every protocol and port.
    pub fn is_l3_only(&self) -> bool {
        self.proto == 0
    }
}

/// L7 protocol of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L7Kind {
    /// HTTP proxy.
    Http,
    /// DNS proxy.
    Dns,
}

/// What a map entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Drop silently.
    Deny,
    /// Forward to a proxy.
    Redirect(L7Kind),
}

/// A map entry's value with the rules it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryValue {
    /// The verdict.
    pub verdict: Verdict,
    /// Rules that produced it.
    pub derived_from: BTreeSet<Origin>,
}

/// L7 rules for one peer on a redirected port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7Peer {
    /// `None` = any identity.
    pub identities: Option<BTreeSet<u32>>,
    /// HTTP rules; `None` = this peer is not HTTP-filtered (an L3/L4-only allow).
    pub http: Option<Vec<HttpRule>>,
    /// DNS names; `None` = not DNS-filtered.
    pub dns: Option<Vec<FqdnSelector>>,
    /// TLS handling (SNI check, termination, origination); `None` = plain traffic.
    pub tls: Option<PortTls>,
    /// The rule.
    pub origin: Origin,
}

/// L7 rules on one port (range) and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L7Filter {
    /// IP protocol.
    pub proto: u8,
    /// First port.
    pub port: u16,
    /// Last port.
    pub end_port: u16,
    /// Which proxy.
    pub kind: L7Kind,
    /// Per-peer rules (ORed across peers that match).
    pub peers: Vec<L7Peer>,
}

/// One direction of an endpoint's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectionPolicy {
    /// When false, everything is allowed and `entries` is empty.
    pub enforced: bool,
    /// Map entries.
    pub entries: BTreeMap<EntryKey, EntryValue>,
    /// L7 rules of redirected ports.
    pub l7: Vec<L7Filter>,
    /// Policies selecting the endpoint with rules in this direction.
    pub policies: BTreeSet<String>,
}

/// Result of a lookup, mirroring the datapath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Final verdict for the packet.
    pub verdict: Verdict,
    /// The entry that decided (none: not enforced or default deny).
    pub entry: Option<(EntryKey, EntryValue)>,
    /// Why, in words.
    pub reason: String,
}

/// Both directions of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// The endpoint's identity.
    pub identity: u32,
    /// Into the endpoint.
    pub ingress: DirectionPolicy,
    /// Out of the endpoint.
    pub egress: DirectionPolicy,
}

impl EndpointPolicy {
    /// One direction.
    pub fn direction(&self, d: Direction) -> &DirectionPolicy {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Endpoint policies depend only on the identity and the endpoint's named ports.
type CacheKey = (u32, BTreeMap<String, (u8, u16)>);

/// A concrete L4 key: (protocol, first port, last port).
type L4Key = (u8, u16, u16);

/// Resolves endpoint policies for one policy revision and cluster state. Peer sets are computed
/// once; endpoint policies are cached by identity (and named ports), so a new pod with a known
/// identity costs one cache hit and writes nothing for anyone else.
pub struct Resolver<'a> {
    policies: &'a CompiledPolicies,
    state: &'a ClusterState,
    opts: ResolveOptions,
    ingress_peers: Vec<Vec<PeerSet>>,
    egress_peers: Vec<Vec<PeerSet>>,
    cache: std::sync::Mutex<HashMap<CacheKey, Arc<EndpointPolicy>>>,
}

impl<'a> Resolver<'a> {
    /// Prepares resolution: computes which identities every peer selector selects.
    pub fn new(
        policies: &'a CompiledPolicies,
        state: &'a ClusterState,
        alloc: &Allocator,
        opts: ResolveOptions,
    ) -> Self {
        let idents: Vec<&Identity> = alloc
            .all()
            .filter(|i| i.kind == IdentityKind::Reserved || state.in_use.contains(&i.id))
            .collect();
        let sel = |rules: &[PeerRule]| -> Vec<PeerSet> {
            rules
                .iter()
                .map(|r| select_peers(&r.peers, &idents, state))
                .collect()
        };
        let ingress_peers = policies.rules.iter().map(|r| sel(&r.ingress)).collect();
        let egress_peers = policies.rules.iter().map(|r| sel(&r.egress)).collect();
        Resolver {
            policies,
            state,
            opts,
            ingress_peers,
            egress_peers,
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cluster state this resolver works on.
    pub fn state(&self) -> &ClusterState {
        self.state
    }

    /// The policy of one endpoint (cached by identity and named ports; endpoints sharing an
    /// identity share one policy).
    pub fn endpoint(&self, ep: &Endpoint) -> Arc<EndpointPolicy> {
        let key = (ep.identity, ep.named_ports.clone());
        if let Some(hit) = self.cache.lock().expect("cache lock").get(&key) {
            return hit.clone();
        }
        let result = Arc::new(EndpointPolicy {
            identity: ep.identity,
            ingress: self.direction(ep, Direction::Ingress),
            egress: self.direction(ep, Direction::Egress),
        });
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, result.clone());
        result
    }

    /// Policies of every local endpoint, by name.
    pub fn local_endpoints(&self) -> BTreeMap<String, Arc<EndpointPolicy>> {
        self.state
            .endpoints
            .values()
            .filter(|e| e.local)
            .map(|e| (e.name.clone(), self.endpoint(e)))
            .collect()
    }

    fn direction(&self, ep: &Endpoint, dir: Direction) -> DirectionPolicy {
        let mut out = DirectionPolicy::default();
        let mut contributions: Vec<(&PeerRule, &PeerSet)> = Vec::new();
        for (i, rule) in self.policies.rules.iter().enumerate() {
            if !rule.subject.matches(&ep.labels) {
                continue;
            }
            let (rules, peers, dd) = match dir {
                Direction::Ingress => (
                    &rule.ingress,
                    &self.ingress_peers[i],
                    rule.ingress_default_deny,
                ),
                Direction::Egress => (
                    &rule.egress,
                    &self.egress_peers[i],
                    rule.egress_default_deny,
                ),
            };
            if rules.is_empty() && !dd {
                continue;
            }
            out.policies.insert(rule.origin.policy.to_string());
            // A Kubernetes policy type with no rules still puts the direction in default deny.
            out.enforced |= dd;
            contributions.extend(rules.iter().zip(peers.iter()));
        }
        if contributions.is_empty() && !out.enforced {
            return out;
        }
        let mut builder = EntryBuilder::default();
        if !out.enforced {
            // Rules without default deny: everything else stays allowed, but their L7
            // redirects and denies still apply, so enforce with an explicit allow-all.
            out.enforced = true;
            builder.add_allow(
                &PeerSet::Any,
                None,
                None,
                &implicit_origin("allow-all (default deny disabled)"),
            );
        }
        if dir == Direction::Ingress && self.opts.allow_localhost {
            builder.add_allow(
                &PeerSet::Ids([identity::HOST].into()),
                None,
                None,
                &implicit_origin("allow-localhost"),
            );
        }
        for (rule, peers) in contributions {
            let l4s = self.resolve_ports(rule, ep, dir);
            match (&rule.ports, rule.deny) {
                (None, false) => builder.add_allow(peers, None, None, &rule.origin),
                (None, true) => builder.add_deny(peers, None, &rule.origin),
                (Some(_), deny) => {
                    for (l4, l7) in l4s {
                        if deny {
                            builder.add_deny(peers, Some(l4), &rule.origin);
                        } else {
                            builder.add_allow(peers, Some(l4), l7, &rule.origin);
                        }
                    }
                }
            }
        }
        let (entries, l7) = builder.finish();
        out.entries = entries;
        out.l7 = l7;
        out
    }

    /// Ports of a rule as concrete (proto, start, end); named ports resolved against the
    /// endpoint (ingress) or every endpoint carrying that name (egress).
    fn resolve_ports(
        &self,
        rule: &PeerRule,
        ep: &Endpoint,
        dir: Direction,
    ) -> Vec<((u8, u16, u16), Option<L7>)> {
        let mut out = Vec::new();
        for (spec, l7) in rule.ports.iter().flatten() {
            for l4 in self.port_numbers(spec, ep, dir) {
                out.push((l4, l7.clone()));
            }
        }
        out
    }

    fn port_numbers(&self, spec: &PortSpec, ep: &Endpoint, dir: Direction) -> Vec<(u8, u16, u16)> {
        match &spec.port {
            PortNumber::All => vec![(spec.proto, 0, u16::MAX)],
            PortNumber::Number(n) => vec![(spec.proto, *n, spec.end_port.unwrap_or(*n).max(*n))],
            PortNumber::Named(name) => {
                let mut found: BTreeSet<(u8, u16, u16)> = BTreeSet::new();
                let sources: Vec<&Endpoint> = match dir {
                    Direction::Ingress => vec![ep],
                    Direction::Egress => self.state.endpoints.values().collect(),
                };
                for e in sources {
                    if let Some((proto, port)) = e.named_ports.get(name) {
                        if *proto == spec.proto {
                            found.insert((*proto, *port, *port));
                        }
                    }
                }
                found.into_iter().collect()
            }
        }
    }
}

fn implicit_origin(what: &str) -> Origin {
    Origin {
        policy: format!("<{what}>").into(),
        rule: "".into(),
        source: "".into(),
    }
}

/// Which identities a rule's peers select.
fn select_peers(peers: &Peers, idents: &[&Identity], state: &ClusterState) -> PeerSet {
    let list = match peers {
        Peers::Any => return PeerSet::Any,
        Peers::Selected(l) => l,
    };
    let mut ids = BTreeSet::new();
    for sel in list {
        match sel {
            PeerSelector::Endpoints(s) if s.is_all() => return PeerSet::Any,
            PeerSelector::Entity(Entity::All) => return PeerSet::Any,
            PeerSelector::Endpoints(s) => ids.extend(
                idents
                    .iter()
                    .filter(|i| {
                        matches!(i.kind, IdentityKind::Pod | IdentityKind::Reserved)
                            && s.matches(&i.labels)
                    })
                    .map(|i| i.id),
            ),
            PeerSelector::Entity(e) => ids.extend(
                idents
                    .iter()
                    .filter(|i| entity_selects(*e, i))
                    .map(|i| i.id),
            ),
            PeerSelector::Cidr { net, except } => ids.extend(
                idents
                    .iter()
                    .filter(|i| cidr_selects(net, except, i))
                    .map(|i| i.id),
            ),
            PeerSelector::Nodes(s) => {
                for (id, label_sets) in &state.node_labels {
                    if label_sets.iter().any(|l| s.matches(l)) {
                        ids.insert(*id);
                    }
                }
            }
            PeerSelector::Fqdn(f) => {
                let label = Label::new(SOURCE_FQDN, &fqdn_label_key(f), "");
                ids.extend(
                    idents
                        .iter()
                        .filter(|i| i.labels.contains(&label))
                        .map(|i| i.id),
                );
            }
        }
    }
    PeerSet::Ids(ids)
}

fn entity_selects(e: Entity, i: &Identity) -> bool {
    let reserved = |name: &str| i.labels.contains(&Label::new(SOURCE_RESERVED, name, ""));
    match e {
        Entity::All => true,
        Entity::None => false,
        Entity::World => i.is_world(),
        Entity::WorldIpv4 => {
            i.id == identity::WORLD_IPV4 || i.id == identity::WORLD || cidr_family(i) == Some(true)
        }
        Entity::WorldIpv6 => i.id == identity::WORLD_IPV6 || cidr_family(i) == Some(false),
        Entity::Cluster => !i.is_world(),
        Entity::Host => i.id == identity::HOST,
        Entity::RemoteNode => reserved("remote-node"),
        Entity::KubeApiserver => i.id == identity::KUBE_APISERVER,
        Entity::Ingress => i.id == identity::INGRESS,
        Entity::Init => i.id == identity::INIT,
        Entity::Health => i.id == identity::HEALTH,
        Entity::Unmanaged => i.id == identity::UNMANAGED,
    }
}

/// For CIDR and learned FQDN identities: Some(true) when IPv4.
fn cidr_family(i: &Identity) -> Option<bool> {
    let label = |all: &str| Label::new(crate::labels::SOURCE_CIDR, all, "");
    match &i.kind {
        IdentityKind::Cidr(n) => Some(matches!(n, ipnet::IpNet::V4(_))),
        IdentityKind::Fqdn if i.labels.contains(&label("0.0.0.0/0")) => Some(true),
        IdentityKind::Fqdn if i.labels.contains(&label("::/0")) => Some(false),
        _ => None,
    }
}

/// A CIDR selector selects CIDR identities inside it (minus exceptions), learned FQDN addresses
/// inside it (their identities carry the labels of the policy CIDRs containing them), and with
/// `/0` the world identities. Cluster endpoints are never selected.
fn cidr_selects(net: &ipnet::IpNet, except: &[ipnet::IpNet], i: &Identity) -> bool {
    let has_cidr = |n: &ipnet::IpNet| {
        i.labels
            .contains(&Label::new(crate::labels::SOURCE_CIDR, &n.to_string(), ""))
    };
    match &i.kind {
        IdentityKind::Cidr(p) => net.contains(p) && !except.iter().any(|e| e.contains(p)),
        IdentityKind::Fqdn => has_cidr(net) && !except.iter().any(has_cidr),
        IdentityKind::Reserved if net.prefix_len() == 0 => {
            i.id == identity::WORLD
                || i.id
                    == if net.addr().is_ipv4() {
                        identity::WORLD_IPV4
                    } else {
                        identity::WORLD_IPV6
                    }
        }
        _ => false,
    }
}

#[derive(Default)]
struct Pending {
    l7: Option<L7Kind>,
    origins: BTreeSet<Origin>,
}

/// Accumulates allow / deny contributions into entries, then applies deny precedence.
#[derive(Default)]
struct EntryBuilder {
    allows: BTreeMap<EntryKey, Pending>,
    denies: BTreeMap<EntryKey, BTreeSet<Origin>>,
    /// Contributions per exact L4 key, for L7 filters: (proto, start, end) → (peers, l7, origin).
    by_l4: BTreeMap<L4Key, Vec<(PeerSet, Option<L7>, Origin)>>,
}

fn keys_for(peers: &PeerSet, l4: Option<(u8, u16, u16)>) -> Vec<EntryKey> {
    let (proto, port, end_port) = l4.unwrap_or((0, 0, u16::MAX));
    let ids: Vec<u32> = match peers {
        PeerSet::Any => vec![identity::ANY],
        PeerSet::Ids(s) => s.iter().copied().collect(),
    };
    ids.into_iter()
        .map(|identity| EntryKey {
            identity,
            proto,
            port,
            end_port,
        })
        .collect()
}

impl EntryBuilder {
    fn add_allow(
        &mut self,
        peers: &PeerSet,
        l4: Option<(u8, u16, u16)>,
        l7: Option<L7>,
        origin: &Origin,
    ) {
        let kind = l7.as_ref().map(|l| match l {
            L7::Http(_) => L7Kind::Http,
            L7::Dns(_) => L7Kind::Dns,
        });
        for key in keys_for(peers, l4) {
            let p = self.allows.entry(key).or_default();
            p.l7 = p.l7.or(kind);
            p.origins.insert(origin.clone());
        }
        if let Some(l4) = l4 {
            self.by_l4
                .entry(l4)
                .or_default()
                .push((peers.clone(), l7, origin.clone()));
        }
    }

    fn add_deny(&mut self, peers: &PeerSet, l4: Option<(u8, u16, u16)>, origin: &Origin) {
        for key in keys_for(peers, l4) {
            self.denies.entry(key).or_default().insert(origin.clone());
        }
    }

    fn finish(self) -> (BTreeMap<EntryKey, EntryValue>, Vec<L7Filter>) {
        let mut entries = BTreeMap::new();
        for (key, origins) in &self.denies {
            entries.insert(
                *key,
                EntryValue {
                    verdict: Verdict::Deny,
                    derived_from: origins.clone(),
                },
            );
        }
        for (key, p) in self.allows {
            let verdict = match p.l7 {
                Some(k) => Verdict::Redirect(k),
                None => Verdict::Allow,
            };
            // A deny on the same identity with a less specific (wider) port range would be
            // shadowed by this more specific allow in the datapath's longest-prefix lookup:
            // cut the denied ports out of the allow so deny always wins.
            for (start, end) in subtract_denies(&key, &self.denies) {
                let k = EntryKey {
                    port: start,
                    end_port: end,
                    ..key
                };
                entries.entry(k).or_insert_with(|| EntryValue {
                    verdict,
                    derived_from: p.origins.clone(),
                });
            }
        }
        let l7 = self
            .by_l4
            .into_iter()
            .filter_map(|((proto, port, end_port), contribs)| {
                let kind = contribs
                    .iter()
                    .find_map(|(_, l7, _)| l7.as_ref())
                    .map(|l| match l {
                        L7::Http(_) => L7Kind::Http,
                        L7::Dns(_) => L7Kind::Dns,
                    })?;
                let peers = contribs
                    .into_iter()
                    .map(|(peers, l7, origin)| L7Peer {
                        identities: match peers {
                            PeerSet::Any => None,
                            PeerSet::Ids(s) => Some(s),
                        },
                        // A port redirected only for TLS carries no HTTP rules: not HTTP-filtered.
                        http: match &l7 {
                            Some(L7::Http(h)) if !h.rules.is_empty() => Some(h.rules.clone()),
                            _ => None,
                        },
                        tls: match &l7 {
                            Some(L7::Http(h)) => h.tls.as_deref().cloned(),
                            _ => None,
                        },
                        dns: match &l7 {
                            Some(L7::Dns(d)) => Some(d.clone()),
                            _ => None,
                        },
                        origin,
                    })
                    .collect();
                Some(L7Filter {
                    proto,
                    port,
                    end_port,
                    kind,
                    peers,
                })
            })
            .collect();
        (entries, l7)
    }
}

/// The parts of an allow key's port range not covered by a deny of the same identity.
fn subtract_denies(
    key: &EntryKey,
    denies: &BTreeMap<EntryKey, BTreeSet<Origin>>,
) -> Vec<(u16, u16)> {
    let l3_deny = EntryKey {
        identity: key.identity,
        proto: 0,
        port: 0,
        end_port: u16::MAX,
    };
    if denies.contains_key(&l3_deny) {
        return Vec::new();
    }
    if key.is_l3_only() {
        return vec![(key.port, key.end_port)];
    }
    let mut ranges = vec![(key.port as u32, key.end_port as u32)];
    for d in denies
        .keys()
        .filter(|d| d.identity == key.identity && d.proto == key.proto)
    {
        let (ds, de) = (d.port as u32, d.end_port as u32);
        ranges = ranges
            .into_iter()
            .flat_map(|(s, e)| {
                if de < s || ds > e {
                    return vec![(s, e)];
                }
                let mut parts = Vec::new();
                if ds > s {
                    parts.push((s, ds - 1));
                }
                if de < e {
                    parts.push((de + 1, e));
                }
                parts
            })
            .collect();
    }
    ranges
        .into_iter()
        .map(|(s, e)| (s as u16, e as u16))
        .collect()
}

impl DirectionPolicy {
    /// What the datapath decides for a packet from/to `identity` on `proto`/`port`: conntrack
    /// aside, deny in either the identity's or the wildcard's best match wins; otherwise the
    /// match with the longer prefix (more specific port), identity-specific on a tie.
    pub fn lookup(&self, identity: u32, proto: u8, port: u16) -> Lookup {
        if !self.enforced {
            return Lookup {
                verdict: Verdict::Allow,
                entry: None,
                reason: "policy not enforced in this direction".into(),
            };
        }
        let best = |id: u32| -> Option<(u32, EntryKey, &EntryValue)> {
            self.entries
                .iter()
                .filter(|(k, _)| k.identity == id)
                .filter_map(|(k, v)| {
                    ports::match_prefix_len(k.proto, k.port, k.end_port, proto, port)
                        .map(|len| (len, *k, v))
                })
                .max_by_key(|(len, _, _)| *len)
        };
        let specific = if identity == identity::ANY {
            None
        } else {
            best(identity)
        };
        let wildcard = best(identity::ANY);
        for (_, k, v) in specific.iter().chain(wildcard.iter()) {
            if v.verdict == Verdict::Deny {
                return Lookup {
                    verdict: Verdict::Deny,
                    entry: Some((*k, (*v).clone())),
                    reason: "denied by a deny rule".into(),
                };
            }
        }
        let chosen = match (specific, wildcard) {
            (Some(s), Some(w)) => Some(if w.0 > s.0 { w } else { s }),
            (s, w) => s.or(w),
        };
        match chosen {
            Some((_, k, v)) => Lookup {
                verdict: v.verdict,
                entry: Some((k, v.clone())),
                reason: match v.verdict {
                    Verdict::Redirect(_) => "allowed at L3/L4, redirected to the L7 proxy".into(),
                    _ => "allowed by policy".into(),
                },
            },
            None => Lookup {
                verdict: Verdict::Deny,
                entry: None,
                reason: "no rule allows it (default deny)".into(),
            },
        }
    }

    /// The L7 filter for a redirected flow's port, if any.
    pub fn l7_filter(&self, proto: u8, port: u16) -> Option<&L7Filter> {
        self.l7
            .iter()
            .filter(|f| f.proto == proto && (f.port..=f.end_port).contains(&port))
            .min_by_key(|f| f.end_port - f.port)
    }
}

impl L7Filter {
    /// The peers whose rules apply to traffic from/to `identity`.
    pub fn peers_for(&self, identity: u32) -> impl Iterator<Item = &L7Peer> {
        self.peers
            .iter()
            .filter(move |p| p.identities.as_ref().is_none_or(|s| s.contains(&identity)))
    }
}
