//! MST kernels: single inserts into large trees, and a 100-write commit's tree work.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design
#![allow(missing_docs)] // criterion_main! generates an undocumented main

use cid::Cid;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stratos_schema::data::cid_for_dag_cbor;
use stratos_schema::mst::{Mst, diff};

fn key(i: u64) -> String {
    // Spread keys like TIDs: a hash-derived 13-character rkey.
    let hash = cid_for_dag_cbor(&i.to_le_bytes()).to_string();
    format!("zone.stratos.feed.post/{}", &hash[hash.len() - 13..])
}

fn value(i: u64) -> Cid {
    cid_for_dag_cbor(&(i ^ 0xabcdef).to_be_bytes())
}

fn tree_of(size: u64) -> Mst {
    let tree = (0..size).fold(Mst::new(), |tree, i| {
        tree.insert(&(), &key(i), value(i)).expect("insert")
    });
    tree.root_cid(); // encode once, as a loaded tree would already know its CIDs
    tree
}

fn single_inserts(c: &mut Criterion) {
    for size in [10_000u64, 100_000] {
        let tree = tree_of(size);
        let mut next = size;
        c.bench_function(&format!("mst/insert_one_into_{}k", size / 1000), |b| {
            b.iter(|| {
                next += 1;
                let updated = tree.insert(&(), &key(next), value(next)).expect("insert");
                black_box(updated.root_cid())
            })
        });
    }
}

fn hundred_write_diff(c: &mut Criterion) {
    let tree = tree_of(100_000);
    let next = tree
        .apply(
            &(),
            (0..100u64)
                .map(|i| 5_000_000 + i)
                .map(|id| (key(id), Some(value(id))))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, v)| (k.as_str(), *v)),
        )
        .expect("apply");
    next.root_cid();
    c.bench_function("mst/diff_of_100_writes_in_100k", |b| {
        b.iter(|| black_box(diff(&(), &tree, &next).expect("diff").ops.len()))
    });
}

fn hundred_write_commit(c: &mut Criterion) {
    let tree = tree_of(100_000);
    let mut round = 0u64;
    c.bench_function("mst/commit_100_writes_into_100k", |b| {
        b.iter_batched(
            || {
                round += 1;
                (0..100u64)
                    .map(|i| 1_000_000 * round + i)
                    .collect::<Vec<_>>()
            },
            |ids| {
                let mut next = tree.clone();
                for id in ids {
                    next = next.insert(&(), &key(id), value(id)).expect("insert");
                }
                let changes = diff(&(), &tree, &next).expect("diff");
                black_box((next.root_cid(), changes.created_nodes.len()))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    single_inserts,
    hundred_write_commit,
    hundred_write_diff
);
criterion_main!(benches);
