//! Resolution cost: 1,000 policies over 10,000 pods (full), and one more pod whose labels map
//! to an existing identity (incremental: no other endpoint's entries change).

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_policy::cluster::LearnedNames;
use palisade_policy::identity::Allocator;
use palisade_policy::labels::pod_security_labels;
use palisade_policy::load::parse_str;
use palisade_policy::resolve::ResolveOptions;
use palisade_policy::topology::Pod;
use palisade_policy::{Engine, Topology};

const PODS: usize = 10_000;
const APPS: usize = 500;
const POLICIES: usize = 1_000;

fn pod(i: usize) -> Pod {
    let mut labels = BTreeMap::new();
    labels.insert("app".to_string(), format!("app{}", i % APPS));
    labels.insert("tier".to_string(), ["web", "api", "db"][i % 3].to_string());
    labels.insert("pod-template-hash".to_string(), format!("{i:x}"));
    Pod {
        name: format!("pod{i}"),
        namespace: "default".into(),
        labels,
        service_account: "default".into(),
        node: Some("n1".into()),
        ips: vec![format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)
            .parse()
            .unwrap()],
        ports: Vec::new(),
        serve: Vec::new(),
        host_interface: None,
    }
}

fn topology() -> Topology {
    let mut t = Topology::parse(
        "nodes: [{name: n1, ips: [192.168.0.1], local: true}]\n",
        Path::new("t.yaml"),
    )
    .unwrap();
    t.pods = (0..PODS).map(pod).collect();
    t
}

fn policies() -> String {
    let mut s = String::new();
    for i in 0..POLICIES {
        let app = i % APPS;
        let peer = (i * 7 + 3) % APPS;
        s.push_str(&format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p{i}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: app{app}}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: app{peer}}}}}]\n    toPorts: [{{ports: [{{port: '{}', protocol: TCP}}]}}]\n  egress:\n  - toEndpoints: [{{matchLabels: {{tier: db}}}}]\n  - toCIDRSet: [{{cidr: 172.{}.0.0/16, except: [172.{}.1.0/24]}}]\n---\n",
            8000 + i % 100,
            16 + i % 16,
            16 + i % 16
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let topo = topology();
    let set = parse_str(&policies(), Path::new("bench.yaml")).unwrap();
    let mut g = c.benchmark_group("policy");
    g.sample_size(10);
    g.bench_function("full_resolution_1000_policies_10000_pods", |b| {
        b.iter(|| {
            let e = Engine::new(
                topo.clone(),
                set.policies.clone(),
                &LearnedNames::new(),
                Allocator::new(),
                ResolveOptions::default(),
            );
            let all = e.local_policies();
            assert_eq!(all.len(), PODS);
            all.len()
        })
    });
    g.finish();

    // Incremental: the engine in force, one more pod with known labels.
    let engine = Engine::new(
        topo.clone(),
        set.policies.clone(),
        &LearnedNames::new(),
        Allocator::new(),
        ResolveOptions::default(),
    );
    let resolver = engine.resolver();
    let before = resolver.local_endpoints();
    let new_pod = pod(PODS + 1);
    c.bench_function("add_pod_with_existing_identity", |b| {
        b.iter(|| {
            let labels = pod_security_labels(&new_pod, &engine.topology);
            let id = engine
                .alloc
                .find(&labels)
                .expect("labels map to an existing identity");
            let template = engine
                .state
                .endpoints
                .values()
                .find(|e| e.identity == id)
                .unwrap();
            let mut ep = template.clone();
            ep.name = format!("default/{}", new_pod.name);
            ep.ips = new_pod.ips.clone();
            resolver.endpoint(&ep)
        })
    });
    // Zero changed entries for every other endpoint.
    let after = resolver.local_endpoints();
    assert!(
        before == after,
        "adding a pod must not change any other endpoint's policy"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
