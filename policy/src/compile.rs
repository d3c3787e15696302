//! Turns loaded documents (CNP, CCNP, KNP) into one rule form: who the rule applies to, and per
//! direction a list of peer rules (peers × ports × optional L7), allow or deny.

use std::collections::BTreeSet;
use std::sync::Arc;

use ipnet::IpNet;

use crate::cluster::IdentityInputs;
use crate::fqdn::FqdnSelector;
use crate::labels::{POD_NAMESPACE, SOURCE_K8S};
use crate::load::{LoadedPolicy, PolicyDoc, PolicyKind};
use crate::model::{
    CidrRule, EgressRule, IcmpRule, IngressRule, KnpPeer, KnpPolicyType, KnpPort, KnpRule,
    KubernetesPolicy, PortRule, Rule, TlsContext,
};
use crate::selector::{LabelSelectorSpec, Operator, Selector};
use crate::topology::{Service, Topology};
use crate::values::{Entity, PortNumber, Protocol};

/// Traffic direction, from the endpoint's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Into the endpoint.
    Ingress,
    /// Out of the endpoint.
    Egress,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Where a rule came from, for trace output and `derived from`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// `namespace/name` or `name`.
    pub policy: Arc<str>,
    /// Field path of the rule, e.g. `spec.egress[1]`.
    pub rule: Arc<str>,
    /// `file:line` of the policy.
    pub source: Arc<str>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.policy, self.rule, self.source)
    }
}

/// One way a rule names its peers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerSelector {
    /// Endpoints (and reserved identities) by labels.
    Endpoints(Selector),
    /// An entity.
    Entity(Entity),
    /// A CIDR minus exceptions.
    Cidr {
        /// The CIDR.
        net: IpNet,
        /// Carved-out sub-prefixes.
        except: Vec<IpNet>,
    },
    /// Nodes by labels.
    Nodes(Selector),
    /// Learned addresses of a DNS name or pattern.
    Fqdn(FqdnSelector),
}

/// Peers of a rule: any, or the union of selectors (an empty union selects nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peers {
    /// Every identity.
    Any,
    /// The union of these.
    Selected(Vec<PeerSelector>),
}

/// A port or range on one protocol, as written (named ports still unresolved).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// Protocol number (6, 17, 132, 1, 58).
    pub proto: u8,
    /// Port, all ports, or a name.
    pub port: PortNumber,
    /// End of a range.
    pub end_port: Option<u16>,
}

/// L7 rules attached to ports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum L7 {
    /// HTTP proxy: HTTP rules and TLS handling.
    Http(HttpL7),
    /// DNS names (ORed).
    Dns(Vec<FqdnSelector>),
}

/// What the HTTP proxy does on a port: HTTP rules (ORed; empty = every request) and TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpL7 {
    /// HTTP rules; empty when only TLS settings redirect the port.
    pub rules: Vec<crate::model::HttpRule>,
    /// `serverNames`, `terminatingTLS`, `originatingTLS` (boxed: most ports have none).
    pub tls: Option<Box<PortTls>>,
}

/// TLS settings of a port; secret namespaces are filled in (the policy's, or `default`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortTls {
    /// Allowed SNI values (empty = not checked).
    pub server_names: Vec<String>,
    /// Certificate presented to the client.
    pub terminating: Option<TlsContext>,
    /// CA bundle the upstream server is verified with.
    pub originating: Option<TlsContext>,
}

/// One peer rule: peers × ports (None = all ports and protocols) with optional L7 rules.
#[derive(Debug, Clone)]
pub struct PeerRule {
    /// Peers.
    pub peers: Peers,
    /// Ports; `None` means L3 only (all ports, all protocols).
    pub ports: Option<Vec<(PortSpec, Option<L7>)>>,
    /// Deny instead of allow.
    pub deny: bool,
    /// Where it came from.
    pub origin: Origin,
}

/// A rule: which endpoints it applies to and what it says per direction.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Endpoints it applies to.
    pub subject: Selector,
    /// Ingress rules (allow and deny).
    pub ingress: Vec<PeerRule>,
    /// Egress rules (allow and deny).
    pub egress: Vec<PeerRule>,
    /// Whether selecting an endpoint puts its ingress into default deny.
    pub ingress_default_deny: bool,
    /// Whether selecting an endpoint puts its egress into default deny.
    pub egress_default_deny: bool,
    /// The policy.
    pub origin: Origin,
}

/// All compiled rules plus what they need from the identity allocator.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicies {
    /// Rules in load order.
    pub rules: Vec<CompiledRule>,
    /// CIDRs, FQDN selectors and node-selector use.
    pub inputs: IdentityInputs,
}

/// Compiles every loaded policy.
pub fn compile(policies: &[LoadedPolicy], topo: &Topology) -> CompiledPolicies {
    let mut out = CompiledPolicies::default();
    for p in policies {
        let source = p.location.to_string();
        match &p.doc {
            PolicyDoc::Cilium(c) => {
                let rules: Vec<(String, &Rule)> = c
                    .spec
                    .iter()
                    .map(|r| ("spec".to_string(), r))
                    .chain(
                        c.specs
                            .iter()
                            .flatten()
                            .enumerate()
                            .map(|(i, r)| (format!("specs[{i}]"), r)),
                    )
                    .collect();
                for (field, rule) in rules {
                    let origin = Origin {
                        policy: p.qualified_name().into(),
                        rule: field.into(),
                        source: source.as_str().into(),
                    };
                    if let Some(r) = compile_cilium_rule(rule, p, origin, topo, &mut out.inputs) {
                        out.rules.push(r);
                    }
                }
            }
            PolicyDoc::Kubernetes(k) => {
                let origin = Origin {
                    policy: p.qualified_name().into(),
                    rule: "spec".into(),
                    source: source.as_str().into(),
                };
                out.rules.push(compile_knp(k, p, origin, &mut out.inputs));
            }
        }
    }
    out
}

fn scope(sel: Selector, p: &LoadedPolicy) -> Selector {
    match (&p.namespace, p.kind) {
        (Some(ns), PolicyKind::Cnp | PolicyKind::Knp) => sel.scoped_to_namespace(ns),
        _ => sel,
    }
}

fn compile_cilium_rule(
    rule: &Rule,
    p: &LoadedPolicy,
    origin: Origin,
    topo: &Topology,
    inputs: &mut IdentityInputs,
) -> Option<CompiledRule> {
    // Host policies (nodeSelector) protect nodes, not pods; Palisade enforces pod policy only.
    let subject_spec = rule.endpoint_selector.as_ref()?;
    let mut subject = Selector::compile(subject_spec, None);
    if p.kind == PolicyKind::Cnp {
        subject = scope(subject, p);
    } else if subject.is_all() {
        // A clusterwide `{}` selects all pods, never reserved identities.
        subject = subject.require(POD_NAMESPACE, Operator::Exists, &[]);
    }
    let dd = rule.enable_default_deny.clone().unwrap_or_default();
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    let sub = |field: &str, i: usize| Origin {
        rule: format!("{}.{field}[{i}]", origin.rule).into(),
        ..origin.clone()
    };
    for (i, r) in rule.ingress.iter().flatten().enumerate() {
        ingress.push(ingress_rule(r, false, p, sub("ingress", i), inputs));
    }
    for (i, r) in rule.ingress_deny.iter().flatten().enumerate() {
        ingress.push(ingress_rule(r, true, p, sub("ingressDeny", i), inputs));
    }
    for (i, r) in rule.egress.iter().flatten().enumerate() {
        egress.push(egress_rule(r, false, p, sub("egress", i), topo, inputs));
    }
    for (i, r) in rule.egress_deny.iter().flatten().enumerate() {
        egress.push(egress_rule(r, true, p, sub("egressDeny", i), topo, inputs));
    }
    Some(CompiledRule {
        subject,
        ingress_default_deny: !ingress.is_empty() && dd.ingress.unwrap_or(true),
        egress_default_deny: !egress.is_empty() && dd.egress.unwrap_or(true),
        ingress,
        egress,
        origin,
    })
}

fn endpoint_selectors(list: &[LabelSelectorSpec], p: &LoadedPolicy) -> Vec<PeerSelector> {
    list.iter()
        .map(|s| {
            let sel = Selector::compile(s, None);
            PeerSelector::Endpoints(scope(sel, p))
        })
        .collect()
}

fn cidr_selectors(
    cidrs: Option<&Vec<crate::values::Cidr>>,
    sets: Option<&Vec<CidrRule>>,
    inputs: &mut IdentityInputs,
) -> Vec<PeerSelector> {
    let mut out = Vec::new();
    for c in cidrs.into_iter().flatten() {
        inputs.cidrs.insert(c.0);
        out.push(PeerSelector::Cidr {
            net: c.0,
            except: Vec::new(),
        });
    }
    for s in sets.into_iter().flatten() {
        inputs.cidrs.insert(s.cidr.0);
        inputs.cidrs.extend(s.except.iter().map(|e| e.0));
        out.push(PeerSelector::Cidr {
            net: s.cidr.0,
            except: s.except.iter().map(|e| e.0).collect(),
        });
    }
    out
}

/// Any peer when no peer field is present but ports are (`toPorts` alone); otherwise the
/// union, maybe empty: a rule with neither peers nor ports (`egress: [{}]`) allows nothing
/// and only puts the direction into default deny.
fn peers_of(present: bool, has_ports: bool, selectors: Vec<PeerSelector>) -> Peers {
    if present || !has_ports {
        Peers::Selected(selectors)
    } else {
        Peers::Any
    }
}

/// The peer fields ingress and egress rules share (`from*` or `to*`).
struct CommonPeers<'a> {
    endpoints: Option<&'a Vec<LabelSelectorSpec>>,
    cidr: Option<&'a Vec<crate::values::Cidr>>,
    cidr_set: Option<&'a Vec<CidrRule>>,
    entities: Option<&'a Vec<Entity>>,
    nodes: Option<&'a Vec<LabelSelectorSpec>>,
}

impl CommonPeers<'_> {
    /// Whether any of these fields is present, and their selectors.
    fn selectors(
        &self,
        p: &LoadedPolicy,
        inputs: &mut IdentityInputs,
    ) -> (bool, Vec<PeerSelector>) {
        let present = self.endpoints.is_some()
            || self.cidr.is_some()
            || self.cidr_set.is_some()
            || self.entities.is_some()
            || self.nodes.is_some();
        let mut sel = endpoint_selectors(self.endpoints.map(Vec::as_slice).unwrap_or_default(), p);
        sel.extend(cidr_selectors(self.cidr, self.cidr_set, inputs));
        sel.extend(
            self.entities
                .into_iter()
                .flatten()
                .map(|e| PeerSelector::Entity(*e)),
        );
        for n in self.nodes.into_iter().flatten() {
            inputs.node_selectors_used = true;
            sel.push(PeerSelector::Nodes(Selector::compile(n, None)));
        }
        (present, sel)
    }
}

fn ingress_rule(
    r: &IngressRule,
    deny: bool,
    p: &LoadedPolicy,
    origin: Origin,
    inputs: &mut IdentityInputs,
) -> PeerRule {
    let common = CommonPeers {
        endpoints: r.from_endpoints.as_ref(),
        cidr: r.from_cidr.as_ref(),
        cidr_set: r.from_cidr_set.as_ref(),
        entities: r.from_entities.as_ref(),
        nodes: r.from_nodes.as_ref(),
    };
    let (present, sel) = common.selectors(p, inputs);
    let policy_ns = p.namespace.as_deref().unwrap_or("default");
    let ports = port_specs(r.to_ports.as_deref(), r.icmps.as_deref(), policy_ns);
    PeerRule {
        peers: peers_of(present, ports.is_some(), sel),
        ports,
        deny,
        origin,
    }
}

fn egress_rule(
    r: &EgressRule,
    deny: bool,
    p: &LoadedPolicy,
    origin: Origin,
    topo: &Topology,
    inputs: &mut IdentityInputs,
) -> PeerRule {
    let common = CommonPeers {
        endpoints: r.to_endpoints.as_ref(),
        cidr: r.to_cidr.as_ref(),
        cidr_set: r.to_cidr_set.as_ref(),
        entities: r.to_entities.as_ref(),
        nodes: r.to_nodes.as_ref(),
    };
    let (common_present, mut sel) = common.selectors(p, inputs);
    let present = common_present || r.to_services.is_some() || r.to_fqdns.is_some();
    for f in r.to_fqdns.iter().flatten() {
        inputs.fqdn_selectors.insert(f.0.clone());
        sel.push(PeerSelector::Fqdn(f.0.clone()));
    }
    let policy_ns = p.namespace.clone().unwrap_or_else(|| "default".into());
    for s in r.to_services.iter().flatten() {
        let services: Vec<&Service> = match (&s.k8s_service, &s.k8s_service_selector) {
            (Some(k), _) => {
                let ns = k.namespace.clone().unwrap_or_else(|| policy_ns.clone());
                topo.services
                    .iter()
                    .filter(|svc| svc.namespace == ns && svc.name == k.service_name)
                    .collect()
            }
            (None, Some(k)) => {
                let ns = k.namespace.clone().unwrap_or_else(|| policy_ns.clone());
                let sel = Selector::compile(&k.selector, None);
                topo.services
                    .iter()
                    .filter(|svc| {
                        svc.namespace == ns
                            && sel.matches(&crate::labels::labels_from_map(&svc.labels, SOURCE_K8S))
                    })
                    .collect()
            }
            (None, None) => Vec::new(),
        };
        for svc in services {
            sel.extend(service_backends(svc, inputs));
        }
    }
    let ports = port_specs(r.to_ports.as_deref(), r.icmps.as_deref(), &policy_ns);
    PeerRule {
        peers: peers_of(present, ports.is_some(), sel),
        ports,
        deny,
        origin,
    }
}

/// A service's backends: the pods its selector picks in its namespace, or for a selector-less
/// service its listed endpoint addresses (as /32 or /128 CIDRs).
fn service_backends(svc: &Service, inputs: &mut IdentityInputs) -> Vec<PeerSelector> {
    match &svc.selector {
        Some(labels) => {
            let spec = LabelSelectorSpec {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            };
            vec![PeerSelector::Endpoints(
                Selector::compile(&spec, Some(SOURCE_K8S)).scoped_to_namespace(&svc.namespace),
            )]
        }
        None => svc
            .endpoints
            .iter()
            .map(|ip| {
                let net = IpNet::from(*ip);
                inputs.cidrs.insert(net);
                PeerSelector::Cidr {
                    net,
                    except: Vec::new(),
                }
            })
            .collect(),
    }
}

fn l7_of(pr: &PortRule, policy_ns: &str) -> Option<L7> {
    let tls = port_tls(pr, policy_ns);
    let http = pr
        .rules
        .as_ref()
        .map(|r| r.http.clone())
        .unwrap_or_default();
    if !http.is_empty() || tls.is_some() {
        return Some(L7::Http(HttpL7 { rules: http, tls }));
    }
    let r = pr.rules.as_ref()?;
    if !r.dns.is_empty() {
        Some(L7::Dns(r.dns.iter().map(|d| d.0.clone()).collect()))
    } else {
        None
    }
}

/// The port's TLS settings, `None` when it has none (an empty `serverNames` checks nothing).
fn port_tls(pr: &PortRule, policy_ns: &str) -> Option<Box<PortTls>> {
    let with_ns = |c: &TlsContext| {
        let mut c = c.clone();
        c.secret
            .namespace
            .get_or_insert_with(|| policy_ns.to_string());
        c
    };
    let tls = PortTls {
        server_names: pr.server_names.clone().unwrap_or_default(),
        terminating: pr.terminating_tls.as_ref().map(with_ns),
        originating: pr.originating_tls.as_ref().map(with_ns),
    };
    (tls != PortTls::default()).then(|| Box::new(tls))
}

fn port_specs(
    to_ports: Option<&[PortRule]>,
    icmps: Option<&[IcmpRule]>,
    policy_ns: &str,
) -> Option<Vec<(PortSpec, Option<L7>)>> {
    let to_ports = to_ports.unwrap_or_default();
    let icmps = icmps.unwrap_or_default();
    if to_ports.is_empty() && icmps.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for pr in to_ports {
        let l7 = l7_of(pr, policy_ns);
        if pr.ports.is_empty() {
            // `toPorts` with only L7-less entries and no ports: all ports.
            for proto in Protocol::Any.expand() {
                out.push((
                    PortSpec {
                        proto: proto.number(),
                        port: PortNumber::All,
                        end_port: None,
                    },
                    l7.clone(),
                ));
            }
        }
        for pp in &pr.ports {
            for proto in pp.protocol.expand() {
                out.push((
                    PortSpec {
                        proto: proto.number(),
                        port: pp.port.clone(),
                        end_port: pp.end_port,
                    },
                    l7.clone(),
                ));
            }
        }
    }
    for rule in icmps {
        for f in &rule.fields {
            let proto = if f.family.as_deref() == Some("IPv6") {
                58
            } else {
                1
            };
            out.push((
                PortSpec {
                    proto,
                    port: PortNumber::Number(f.icmp_type.0 as u16),
                    end_port: None,
                },
                None,
            ));
        }
    }
    Some(out)
}

fn compile_knp(
    k: &KubernetesPolicy,
    p: &LoadedPolicy,
    origin: Origin,
    inputs: &mut IdentityInputs,
) -> CompiledRule {
    let ns = p.namespace.clone().unwrap_or_else(|| "default".into());
    let subject =
        Selector::compile(&k.spec.pod_selector, Some(SOURCE_K8S)).scoped_to_namespace(&ns);
    let types: BTreeSet<KnpPolicyType> = match &k.spec.policy_types {
        Some(t) => t.iter().copied().collect(),
        None => {
            let mut t = BTreeSet::from([KnpPolicyType::Ingress]);
            if k.spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                t.insert(KnpPolicyType::Egress);
            }
            t
        }
    };
    let rules =
        |list: &Option<Vec<KnpRule>>, field: &str, inputs: &mut IdentityInputs| -> Vec<PeerRule> {
            list.iter()
                .flatten()
                .enumerate()
                .map(|(i, r)| {
                    let peers = r.from.as_ref().or(r.to.as_ref());
                    PeerRule {
                        peers: knp_peers(peers, &ns, inputs),
                        ports: knp_ports(r.ports.as_deref()),
                        deny: false,
                        origin: Origin {
                            rule: format!("spec.{field}[{i}]").into(),
                            ..origin.clone()
                        },
                    }
                })
                .collect()
        };
    let ingress_on = types.contains(&KnpPolicyType::Ingress);
    let egress_on = types.contains(&KnpPolicyType::Egress);
    CompiledRule {
        subject,
        ingress: if ingress_on {
            rules(&k.spec.ingress, "ingress", inputs)
        } else {
            Vec::new()
        },
        egress: if egress_on {
            rules(&k.spec.egress, "egress", inputs)
        } else {
            Vec::new()
        },
        ingress_default_deny: ingress_on,
        egress_default_deny: egress_on,
        origin,
    }
}

/// Kubernetes peers: omitted or empty `from`/`to` means all sources, including outside the
/// cluster; otherwise the union of pod/namespace selectors and ipBlocks.
fn knp_peers(peers: Option<&Vec<KnpPeer>>, ns: &str, inputs: &mut IdentityInputs) -> Peers {
    let list = match peers {
        None => return Peers::Any,
        Some(l) if l.is_empty() => return Peers::Any,
        Some(l) => l,
    };
    let mut out = Vec::new();
    for peer in list {
        if let Some(block) = &peer.ip_block {
            inputs.cidrs.insert(block.cidr.0);
            inputs.cidrs.extend(block.except.iter().map(|e| e.0));
            out.push(PeerSelector::Cidr {
                net: block.cidr.0,
                except: block.except.iter().map(|e| e.0).collect(),
            });
            continue;
        }
        let mut sel = match &peer.pod_selector {
            Some(ps) => Selector::compile(ps, Some(SOURCE_K8S)),
            None => Selector::all(),
        };
        match &peer.namespace_selector {
            None => sel = sel.scoped_to_namespace(ns),
            Some(nss) => {
                // Namespace labels appear on pods as io.cilium.k8s.namespace.labels.KEY.
                let mut prefixed = LabelSelectorSpec::default();
                for (k, v) in &nss.match_labels {
                    prefixed.match_labels.insert(
                        format!("k8s:{}{k}", crate::labels::NAMESPACE_LABELS_PREFIX),
                        v.clone(),
                    );
                }
                for e in &nss.match_expressions {
                    let mut e = e.clone();
                    e.key = format!("k8s:{}{}", crate::labels::NAMESPACE_LABELS_PREFIX, e.key);
                    prefixed.match_expressions.push(e);
                }
                let ns_sel = Selector::compile(&prefixed, Some(SOURCE_K8S));
                sel =
                    Selector::intersect(sel, ns_sel).require(POD_NAMESPACE, Operator::Exists, &[]);
            }
        }
        out.push(PeerSelector::Endpoints(sel));
    }
    Peers::Selected(out)
}

fn knp_ports(ports: Option<&[KnpPort]>) -> Option<Vec<(PortSpec, Option<L7>)>> {
    let ports = ports.unwrap_or_default();
    if ports.is_empty() {
        return None;
    }
    Some(
        ports
            .iter()
            .flat_map(|p| {
                p.protocol.expand().iter().map(|proto| {
                    (
                        PortSpec {
                            proto: proto.number(),
                            port: p.port.clone(),
                            end_port: p.end_port,
                        },
                        None,
                    )
                })
            })
            .collect(),
    )
}
