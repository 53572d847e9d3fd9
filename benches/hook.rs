//! Overhead of one afterScript run: spawning `exportd hook` and running a trivial script.
//! Run: `cargo bench --bench hook`

use criterion::{Criterion, criterion_group, criterion_main};
use exportd::hook::runner::{HookConfig, run_child};
use exportd::hook::sandbox::HookInput;
use serde_json::json;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let cfg = HookConfig {
        exe: env!("CARGO_BIN_EXE_exportd").into(),
        timeout: Duration::from_secs(10),
        memory_bytes: 256 * 1024 * 1024,
        cpu_seconds: 10,
        allow: Vec::new(),
    };
    let input = HookInput {
        script: "console.log(script.arguments.export.label)".into(),
        arguments: json!({"err": null, "export": {"label": "bench"}}),
        principal: json!({}),
        memory_bytes: cfg.memory_bytes,
        cpu_seconds: cfg.cpu_seconds,
    };
    let out = run_child(&cfg, &input);
    assert_eq!(out.logs, vec!["bench".to_string()], "{:?}", out.err);
    let mut g = c.benchmark_group("hook");
    g.sample_size(30);
    g.bench_function("spawn_and_trivial_script", |b| {
        b.iter(|| run_child(&cfg, &input))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
