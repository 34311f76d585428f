//! Untrusted CAR bytes: the reader, then the repository walk over whatever it accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratos_schema::car::{CarLimits, read_car};
use stratos_schema::repo::read_repo;

fuzz_target!(|data: &[u8]| {
    let limits = CarLimits {
        max_block_bytes: 64 * 1024,
        max_blocks: 10_000,
        max_total_bytes: 1024 * 1024,
    };
    if let Ok((roots, blocks)) = read_car(data, limits) {
        for (cid, bytes) in blocks.iter() {
            assert!(stratos_schema::data::verify_cid(cid, bytes).is_ok());
        }
        if let Some(root) = roots.first() {
            let _ = read_repo(&blocks, *root);
        }
    }
});
