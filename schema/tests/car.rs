//! CAR v1: round trips, limits, and corrupt or truncated input giving typed errors.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use cid::Cid;
use stratos_schema::blocks::BlockMap;
use stratos_schema::car::{CarError, CarLimits, CarReader, CarWriter, read_car, write_car};
use stratos_schema::data::{cid_for_dag_cbor, cid_for_raw, to_dag_cbor};

fn sample_blocks(count: u64) -> BlockMap {
    let mut blocks = BlockMap::new();
    for i in 0..count {
        let bytes = to_dag_cbor(&format!("block number {i}")).unwrap();
        blocks.insert_dag_cbor(bytes);
    }
    let raw = b"raw blob bytes".to_vec();
    blocks.insert(cid_for_raw(&raw), raw);
    blocks
}

fn sample_car() -> (Cid, BlockMap, Vec<u8>) {
    let blocks = sample_blocks(20);
    let root = *blocks.iter().next().unwrap().0;
    let car = write_car(&[root], blocks.iter());
    (root, blocks, car)
}

#[test]
fn round_trip_keeps_roots_and_blocks() {
    let (root, blocks, car) = sample_car();
    let (roots, read) = read_car(&car, CarLimits::default()).unwrap();
    assert_eq!(roots, vec![root]);
    assert_eq!(read, blocks);
}

#[test]
fn streaming_writer_counts_bytes_and_reader_streams() {
    let blocks = sample_blocks(5);
    let root = *blocks.iter().next().unwrap().0;
    let mut writer = CarWriter::new(Vec::new(), &[root]).unwrap();
    for (cid, bytes) in blocks.iter() {
        writer.write_block(cid, bytes).unwrap();
    }
    let written = writer.bytes_written();
    let car = writer.finish().unwrap();
    assert_eq!(written, car.len() as u64);
    let reader = CarReader::new(car.as_slice(), CarLimits::default()).unwrap();
    let streamed: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(streamed.len(), blocks.len());
}

#[test]
fn every_truncation_is_an_error_or_a_clean_prefix() {
    let (_, blocks, car) = sample_car();
    for len in 0..car.len() {
        match read_car(&car[..len], CarLimits::default()) {
            Err(_) => {}
            // Cutting exactly at a section boundary yields a shorter, valid CAR.
            Ok((_, read)) => assert!(read.len() < blocks.len(), "cut at {len}"),
        }
    }
}

#[test]
fn every_flipped_byte_is_detected_or_harmless() {
    let (root, blocks, car) = sample_car();
    for index in 0..car.len() {
        let mut corrupt = car.clone();
        corrupt[index] ^= 0x41;
        if let Ok((roots, read)) = read_car(&corrupt, CarLimits::default()) {
            // Whatever was accepted must still be self-consistent: every block matches its CID.
            for (cid, bytes) in read.iter() {
                assert!(stratos_schema::data::verify_cid(cid, bytes).is_ok());
            }
            assert!(roots != vec![root] || read != blocks || corrupt == car);
        }
    }
}

#[test]
fn a_block_that_does_not_match_its_cid_is_refused() {
    let good = to_dag_cbor(&"good").unwrap();
    let cid = cid_for_dag_cbor(&good);
    let bad = to_dag_cbor(&"evil").unwrap();
    let car = write_car(&[cid], [(&cid, bad.as_slice())]);
    assert!(matches!(
        read_car(&car, CarLimits::default()),
        Err(CarError::CidMismatch(c)) if c == cid
    ));
    // The diagnostic path reads it without judging.
    let mut reader = CarReader::new(car.as_slice(), CarLimits::default()).unwrap();
    assert!(reader.next_block_unverified().unwrap().is_some());
}

#[test]
fn limits_are_enforced() {
    let (_, _, car) = sample_car();
    let tight_blocks = CarLimits {
        max_blocks: 3,
        ..CarLimits::default()
    };
    assert!(matches!(
        read_car(&car, tight_blocks),
        Err(CarError::TooManyBlocks(3))
    ));
    let tight_total = CarLimits {
        max_total_bytes: 100,
        ..CarLimits::default()
    };
    assert!(matches!(
        read_car(&car, tight_total),
        Err(CarError::TooLarge(100))
    ));
    let tight_block = CarLimits {
        max_block_bytes: 4,
        ..CarLimits::default()
    };
    assert!(matches!(
        read_car(&car, tight_block),
        Err(CarError::BlockTooLarge { .. })
    ));
}

#[test]
fn malformed_headers_and_prefixes_are_refused() {
    let cases: &[&[u8]] = &[
        &[],
        &[0x00],
        &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        &[0x05, 0xa1, 0x61, 0x61, 0x01, 0x00],
        &[0x80, 0x00],
        // A huge declared header length.
        &[0xff, 0xff, 0x7f],
    ];
    for bytes in cases {
        assert!(read_car(bytes, CarLimits::default()).is_err(), "{bytes:x?}");
    }
    // Version 2 headers are refused.
    let header = to_dag_cbor(&serde_json::json!({"version": 2, "roots": []})).unwrap();
    let mut car = vec![header.len() as u8];
    car.extend(header);
    assert!(matches!(
        read_car(&car, CarLimits::default()),
        Err(CarError::BadHeader(_))
    ));
}

#[test]
fn a_huge_declared_block_length_is_refused_without_allocating() {
    let (_, _, car) = sample_car();
    let (roots, _) = read_car(&car, CarLimits::default()).unwrap();
    let mut bytes = write_car(&roots, std::iter::empty());
    bytes.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        read_car(&bytes, CarLimits::default()),
        Err(CarError::BlockTooLarge { .. })
    ));
}
