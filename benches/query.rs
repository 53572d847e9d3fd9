//! Match throughput of the `where` engine (documents/s) for four query shapes.
//! Run: `cargo bench --bench query`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exportd::fault::Result;
use exportd::model::document::{RefCheck, StoredDoc, new_doc};
use exportd::model::ids::ObjectId;
use exportd::model::schema::parse_definition;
use exportd::query::matcher::matches;
use exportd::query::parse::parse_where;
use serde_json::json;
use std::hint::black_box;

struct AnyRef;
impl RefCheck for AnyRef {
    fn exists(&mut self, _: &str, _: ObjectId) -> Result<bool> {
        Ok(true)
    }
}

fn bench(c: &mut Criterion) {
    let def = parse_definition(
        json!({"name": "c_step", "properties": [
            {"name": "c_name", "type": "String"}, {"name": "c_n", "type": "Number"},
            {"name": "c_when", "type": "Date"}, {"name": "c_tags", "type": "String", "array": true},
            {"name": "c_rows", "type": "Document", "array": true, "properties": [
                {"name": "c_v", "type": "String"}, {"name": "c_k", "type": "Number"}]}]}),
        &[],
    )
    .unwrap();
    let owner = ObjectId::new();
    let docs: Vec<StoredDoc> = (0..10_000)
        .map(|i| {
            new_doc(
                &def,
                json!({"c_name": format!("participant {i} walked"), "c_n": i % 1000,
                       "c_when": format!("2026-{:02}-{:02}T10:00:00Z", i % 12 + 1, i % 28 + 1),
                       "c_tags": ["a", if i % 3 == 0 { "b" } else { "c" }],
                       "c_rows": [{"c_v": "x", "c_k": i % 7}, {"c_v": "y", "c_k": i % 11}]}),
                owner,
                &mut AnyRef,
            )
            .unwrap()
        })
        .collect();
    let queries = [
        ("equality", json!({"c_n": 500})),
        (
            "date_range",
            json!({"c_when": {"$gte": "2026-03-01", "$lt": "2026-07-01"}}),
        ),
        (
            "regex",
            json!({"c_name": {"$regex": "/PARTICIPANT 1\\d+ walk/i"}}),
        ),
        (
            "or_elemmatch",
            json!({"$or": [{"c_tags": "b"}, {"c_rows": {"$elemMatch": {"c_v": "y", "c_k": {"$gt": 8}}}}]}),
        ),
    ];
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(docs.len() as u64));
    for (name, q) in queries {
        let expr = parse_where(&q.to_string(), &def).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| docs.iter().filter(|d| matches(black_box(&expr), d)).count())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
