//! Cost of one `HttpRuleSet::check` with 1, 100 and 1000 rules (distinct paths, one method).
//! The request matches the last rule, and a second one matches none (the deny path).

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use palisade_httpmatch::{normalize_path, HttpRuleSet, HttpRuleSpec, RequestView};
use std::hint::black_box;

fn rules(n: usize) -> Vec<HttpRuleSpec> {
    (0..n)
        .map(|i| HttpRuleSpec {
            method: Some("GET".into()),
            path: Some(format!("/api/v1/resource{i}(/.*)?")),
            headers: vec!["X-Tenant".into()],
            ..Default::default()
        })
        .collect()
}

fn bench_check(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", "a".parse().expect("value"));
    let mut group = c.benchmark_group("check");
    for n in [1usize, 100, 1000] {
        let set = HttpRuleSet::compile(&rules(n)).expect("compile");
        let hit = format!("/api/v1/resource{}/items/7", n - 1);
        group.bench_function(format!("{n}_rules_allow"), |b| {
            b.iter(|| {
                let req = RequestView {
                    method: "GET",
                    path: &hit,
                    host: "svc",
                    headers: &headers,
                };
                black_box(set.check(black_box(&req)))
            })
        });
        group.bench_function(format!("{n}_rules_deny"), |b| {
            b.iter(|| {
                let req = RequestView {
                    method: "GET",
                    path: "/private/x",
                    host: "svc",
                    headers: &headers,
                };
                black_box(set.check(black_box(&req)))
            })
        });
    }
    group.finish();
    c.bench_function("normalize_path", |b| {
        b.iter(|| {
            black_box(normalize_path(black_box(
                "/api//v1/./resource7/../resource8/%7Eitems?q=1",
            )))
        })
    });
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
