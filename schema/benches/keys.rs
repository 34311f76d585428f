//! Signing and verification throughput of the atproto key types.
#![allow(missing_docs)] // `criterion_group!` generates an undocumented public function.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use criterion::{Criterion, criterion_group, criterion_main};
use ecdsa::signature::{Signer as _, Verifier as _};
use std::hint::black_box;
use stratos_schema::keys::{KeyAlgorithm, Keypair};

fn bench_keys(c: &mut Criterion) {
    let message = b"a commit of about the size atproto signs: {did, version, data, rev, prev}";
    for (label, algorithm) in [
        ("p256", KeyAlgorithm::P256),
        ("secp256k1", KeyAlgorithm::Secp256k1),
    ] {
        let keypair = Keypair::generate(algorithm);
        let public = keypair.public_key();
        let signature = keypair.sign(message);
        c.bench_function(&format!("{label}/sign"), |b| {
            b.iter(|| keypair.sign(black_box(message)))
        });
        c.bench_function(&format!("{label}/verify"), |b| {
            b.iter(|| public.verify(black_box(message), black_box(&signature)))
        });
    }

    // Baselines: the pure-Rust `p256` crate that the fast path replaces.
    let secret = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let verifying = *secret.verifying_key();
    let signature: p256::ecdsa::Signature = secret.sign(message);
    c.bench_function("baseline/p256-crate/sign", |b| {
        b.iter(|| -> p256::ecdsa::Signature { secret.sign(black_box(message)) })
    });
    c.bench_function("baseline/p256-crate/verify", |b| {
        b.iter(|| verifying.verify(black_box(message), black_box(&signature)))
    });
}

criterion_group!(benches, bench_keys);
criterion_main!(benches);
