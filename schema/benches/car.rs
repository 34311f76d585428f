//! CAR throughput: writing and reading a 10,000-record repository.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design
#![allow(missing_docs)] // criterion_main! generates an undocumented main

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use stratos_schema::blocks::BlockMap;
use stratos_schema::car::{CarLimits, read_car, write_car};
use stratos_schema::data::to_dag_cbor;
use stratos_schema::mst::Mst;

/// A repository-shaped block set: 10,000 post-sized records and the MST over them.
fn repository() -> (cid::Cid, BlockMap) {
    let mut blocks = BlockMap::new();
    let mut tree = Mst::new();
    for i in 0..10_000u64 {
        let record = serde_json::json!({
            "$type": "zone.stratos.feed.post",
            "text": format!("private post number {i}, long enough to look like a real one"),
            "createdAt": "2026-11-23T12:00:00.000Z",
            "boundary": {"values": [{"value": "did:web:stratos.example.com/general"}]},
        });
        let cid = blocks.insert_dag_cbor(to_dag_cbor(&record).expect("encode"));
        tree = tree
            .insert(&(), &format!("zone.stratos.feed.post/{i:013}"), cid)
            .expect("insert");
    }
    blocks.extend(tree.node_blocks(&()).expect("nodes"));
    (tree.root_cid(), blocks)
}

fn car_throughput(c: &mut Criterion) {
    let (root, blocks) = repository();
    let car = write_car(&[root], blocks.iter());
    let mut group = c.benchmark_group("car");
    group.throughput(Throughput::Bytes(car.len() as u64));
    group.bench_function("write_10k_records", |b| {
        b.iter(|| black_box(write_car(&[root], blocks.iter()).len()))
    });
    group.bench_function("read_10k_records", |b| {
        b.iter(|| black_box(read_car(&car, CarLimits::default()).expect("read").1.len()))
    });
    group.finish();
}

criterion_group!(benches, car_throughput);
criterion_main!(benches);
