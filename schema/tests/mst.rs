//! The MST against the interop vectors, against its own invariants (property tests), and against
//! an independent implementation (`atrium-repo`) used as an oracle.

#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use cid::Cid;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use stratos_schema::blocks::{BlockMap, BlockSource};
use stratos_schema::data::{cid_for_dag_cbor, from_dag_cbor};
use stratos_schema::mst::{
    Mst, NodeData, RecordOp, common_prefix_len, diff, key_height, verify_proof,
};

fn fixture(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/mst/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn value(seed: u64) -> Cid {
    cid_for_dag_cbor(&seed.to_be_bytes())
}

fn build(pairs: impl IntoIterator<Item = (String, Cid)>) -> Mst {
    pairs.into_iter().fold(Mst::new(), |tree, (key, cid)| {
        tree.insert(&(), &key, cid).expect("insert")
    })
}

/// Every node reachable from the tree, as stored blocks.
fn nodes(tree: &Mst) -> BlockMap {
    tree.node_blocks(&()).expect("nodes")
}

#[test]
fn key_heights_match_the_vectors() {
    for case in fixture("key_heights.json") {
        let key = case["key"].as_str().expect("key");
        let height = case["height"].as_u64().expect("height");
        assert_eq!(u64::from(key_height(key)), height, "height of {key:?}");
    }
}

#[test]
fn common_prefixes_match_the_vectors() {
    for case in fixture("common_prefix.json") {
        let (left, right) = (
            case["left"].as_str().unwrap(),
            case["right"].as_str().unwrap(),
        );
        let len = case["len"].as_u64().unwrap() as usize;
        assert_eq!(common_prefix_len(left, right), len, "{left:?} vs {right:?}");
    }
}

#[test]
fn empty_tree_root_is_the_empty_node() {
    assert_eq!(
        Mst::new().root_cid().to_string(),
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    );
}

#[test]
fn example_keys_build_a_tree_that_reads_back() {
    let path = format!(
        "{}/tests/fixtures/mst/example_keys.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let keys: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let tree = build(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), value(i as u64))),
    );
    let blocks = nodes(&tree);
    let loaded = Mst::load(&blocks, tree.root_cid()).unwrap();
    let entries = loaded.entries(&blocks).unwrap();
    assert_eq!(entries.len(), keys.len());
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(loaded.get(&blocks, key).unwrap(), Some(value(i as u64)));
    }
}

#[test]
fn invalid_keys_are_refused() {
    for key in ["", "noslash", "a/b/c", "a/ b", "/b"] {
        assert!(Mst::new().insert(&(), key, value(0)).is_err(), "{key:?}");
    }
}

#[test]
fn range_reads_respect_bounds_and_limit() {
    let tree = build((0..200u64).map(|i| (format!("col/{i:04}"), value(i))));
    let page = tree
        .range(
            &(),
            Bound::Excluded("col/0010"),
            Bound::Included("col/0100"),
            5,
        )
        .unwrap();
    let keys: Vec<_> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["col/0011", "col/0012", "col/0013", "col/0014", "col/0015"]
    );
    let tail = tree
        .range(&(), Bound::Included("col/0195"), Bound::Unbounded, 100)
        .unwrap();
    assert_eq!(tail.len(), 5);
}

#[test]
fn loading_a_missing_or_corrupt_node_is_an_error() {
    let tree = build((0..50u64).map(|i| (format!("col/{i}"), value(i))));
    let mut blocks = nodes(&tree);
    let root = tree.root_cid();
    assert!(Mst::load(&BlockMap::new(), root).is_err());
    // Replace the root's bytes with garbage under the same CID.
    blocks.insert(root, vec![0xa1, 0x61]);
    assert!(Mst::load(&blocks, root).is_err());
}

fn keys_strategy(max: usize) -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set(
        ("(app|zone)\\.[a-z]{1,3}\\.post", "[a-z2-7]{1,13}").prop_map(|(c, r)| format!("{c}/{r}")),
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn same_keys_same_root_in_any_order(keys in keys_strategy(300), seed in any::<u64>()) {
        let pairs: Vec<_> = keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))).collect();
        let mut shuffled = pairs.clone();
        // A deterministic shuffle driven by the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = build(pairs.clone());
        let b = build(shuffled);
        prop_assert_eq!(a.root_cid(), b.root_cid());
        let entries = a.entries(&()).unwrap();
        prop_assert_eq!(entries, pairs);
    }

    #[test]
    fn deleting_what_was_inserted_restores_the_root(
        base in keys_strategy(200),
        extra in keys_strategy(60),
    ) {
        let base_tree = build(base.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))));
        let added: Vec<_> = extra.difference(&base).cloned().collect();
        let mut tree = base_tree.clone();
        for (i, key) in added.iter().enumerate() {
            tree = tree.insert(&(), key, value(10_000 + i as u64)).unwrap();
        }
        for key in added.iter().rev() {
            let (next, removed) = tree.remove(&(), key).unwrap();
            prop_assert!(removed.is_some());
            tree = next;
        }
        prop_assert_eq!(tree.root_cid(), base_tree.root_cid());
        // Removing an absent key changes nothing.
        let (same, removed) = tree.remove(&(), "zz.absent/key").unwrap();
        prop_assert_eq!(removed, None);
        prop_assert_eq!(same.root_cid(), tree.root_cid());
    }

    #[test]
    fn node_encoding_matches_the_generic_dag_cbor_serializer(keys in keys_strategy(300)) {
        let tree = build(keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))));
        for (cid, bytes) in nodes(&tree).iter() {
            let node: NodeData = from_dag_cbor(bytes).unwrap();
            prop_assert_eq!(node.to_bytes_generic(), bytes.to_vec());
            prop_assert_eq!(node.to_bytes(), bytes.to_vec());
            prop_assert_eq!(cid_for_dag_cbor(bytes), *cid);
        }
    }

    #[test]
    fn a_batch_equals_the_same_writes_one_by_one(
        base in keys_strategy(200),
        writes in prop::collection::vec(("[a-z2-7]{1,6}", any::<bool>(), any::<u8>()), 0..80),
    ) {
        let old = build(base.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))));
        let root_before = old.root_cid();
        let writes: Vec<(String, Option<Cid>)> = writes
            .into_iter()
            .map(|(rkey, put, v)| (format!("app.x.post/{rkey}"), put.then(|| value(u64::from(v)))))
            .collect();
        let batch = old.apply(&(), writes.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
        let mut one_by_one = old.clone();
        for (key, write) in &writes {
            one_by_one = match write {
                Some(cid) => one_by_one.insert(&(), key, *cid).unwrap(),
                None => one_by_one.remove(&(), key).unwrap().0,
            };
        }
        prop_assert_eq!(batch.root_cid(), one_by_one.root_cid());
        prop_assert_eq!(old.root_cid(), root_before);
        prop_assert_eq!(batch.entries(&()).unwrap(), one_by_one.entries(&()).unwrap());

        // Against a stored old tree, the new nodes cover everything the diff says was created.
        let store = nodes(&old);
        let stored_old = Mst::load(&store, old.root_cid()).unwrap();
        let stored_batch = stored_old.apply(&store, writes.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
        let created = diff(&store, &stored_old, &stored_batch).unwrap().created_nodes;
        let fresh = stored_batch.new_nodes();
        for (cid, bytes) in created.iter() {
            prop_assert_eq!(fresh.get_block(cid), Some(bytes));
        }
        let mut all = store.clone();
        all.extend(fresh);
        Mst::load(&all, stored_batch.root_cid()).unwrap().entries(&all).unwrap();
    }

    #[test]
    fn reinserting_the_same_value_keeps_the_root(keys in keys_strategy(100)) {
        let tree = build(keys.iter().map(|k| (k.clone(), value(1))));
        for key in &keys {
            prop_assert_eq!(tree.insert(&(), key, value(1)).unwrap().root_cid(), tree.root_cid());
        }
    }

    #[test]
    fn diff_reports_exact_ops_and_nodes(
        base in keys_strategy(200),
        changes in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 0..40),
        creates in keys_strategy(40),
    ) {
        let old = build(base.iter().map(|k| (k.clone(), value(1))));
        let base_keys: Vec<_> = base.iter().cloned().collect();
        let mut expected: BTreeMap<String, Cid> = base.iter().map(|k| (k.clone(), value(1))).collect();
        let mut new = old.clone();
        if !base_keys.is_empty() {
            for (index, action) in changes {
                let key = index.get(&base_keys);
                if action == 0 {
                    new = new.remove(&(), key).unwrap().0;
                    expected.remove(key);
                } else {
                    new = new.insert(&(), key, value(2)).unwrap();
                    expected.insert(key.clone(), value(2));
                }
            }
        }
        for key in &creates {
            new = new.insert(&(), key, value(3)).unwrap();
            expected.insert(key.clone(), value(3));
        }
        prop_assert_eq!(new.root_cid(), build(expected.clone()).root_cid());

        let mut store = nodes(&old);
        store.extend(nodes(&new));
        let reloaded_old = Mst::load(&store, old.root_cid()).unwrap();
        let result = diff(&store, &reloaded_old, &new).unwrap();

        // Ops: exactly the map difference.
        let before: BTreeMap<String, Cid> = base.iter().map(|k| (k.clone(), value(1))).collect();
        let mut ops = Vec::new();
        for (key, prev) in &before {
            match expected.get(key) {
                None => ops.push(RecordOp::Delete { key: key.clone(), prev: *prev }),
                Some(cid) if cid != prev => ops.push(RecordOp::Update { key: key.clone(), prev: *prev, cid: *cid }),
                _ => {}
            }
        }
        for (key, cid) in &expected {
            if !before.contains_key(key) {
                ops.push(RecordOp::Create { key: key.clone(), cid: *cid });
            }
        }
        ops.sort_by(|a, b| a.key().cmp(b.key()));
        prop_assert_eq!(&result.ops, &ops);

        // Nodes: exactly the set differences of the two trees' node sets.
        let old_nodes: BTreeSet<Cid> = nodes(&old).iter().map(|(c, _)| *c).collect();
        let new_nodes: BTreeSet<Cid> = nodes(&new).iter().map(|(c, _)| *c).collect();
        let created: BTreeSet<Cid> = result.created_nodes.iter().map(|(c, _)| *c).collect();
        let removed: BTreeSet<Cid> = result.removed_nodes.iter().copied().collect();
        prop_assert_eq!(created, new_nodes.difference(&old_nodes).copied().collect::<BTreeSet<_>>());
        prop_assert_eq!(removed, old_nodes.difference(&new_nodes).copied().collect::<BTreeSet<_>>());
        for (cid, bytes) in result.created_nodes.iter() {
            prop_assert_eq!(cid_for_dag_cbor(bytes), *cid);
        }
    }

    #[test]
    fn proofs_show_presence_and_absence(keys in keys_strategy(300), probe in "[a-z2-7]{1,13}") {
        let tree = build(keys.iter().enumerate().map(|(i, k)| (k.clone(), value(i as u64))));
        let root = tree.root_cid();
        for (i, key) in keys.iter().enumerate().take(20) {
            let proof = tree.proof(&(), key).unwrap();
            prop_assert_eq!(verify_proof(&proof, root, key).unwrap(), Some(value(i as u64)));
        }
        let absent = format!("zone.absent.post/{probe}");
        let proof = tree.proof(&(), &absent).unwrap();
        prop_assert_eq!(verify_proof(&proof, root, &absent).unwrap(), None);
        // A proof for one key does not prove keys off its path.
        if let Some(other) = keys.iter().last() {
            let proof = tree.proof(&(), &absent).unwrap();
            let walked = verify_proof(&proof, root, other);
            prop_assert!(matches!(walked, Ok(Some(_)) | Err(_)));
        }
    }
}

mod oracle {
    //! Differential tests against `atrium-repo`'s MST.

    use super::*;
    use atrium_repo::blockstore::MemoryBlockStore;
    use atrium_repo::mst::Tree;
    use futures::TryStreamExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn key(&mut self) -> String {
            const ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";
            let collection = ["zone.stratos.feed.post", "app.bsky.feed.like", "a.b.c"]
                [(self.next() % 3) as usize];
            let rkey: String = (0..13)
                .map(|_| ALPHABET[(self.next() % 32) as usize] as char)
                .collect();
            format!("{collection}/{rkey}")
        }
    }

    async fn oracle_tree(pairs: &[(String, Cid)]) -> Tree<MemoryBlockStore> {
        let mut tree = Tree::create(MemoryBlockStore::new()).await.unwrap();
        for (key, cid) in pairs {
            tree.add(key, *cid).await.unwrap();
        }
        tree
    }

    async fn oracle_nodes(
        tree: &mut Tree<MemoryBlockStore>,
        values: &BTreeSet<Cid>,
    ) -> BTreeSet<Cid> {
        let all: Vec<Cid> = tree.export().try_collect().await.unwrap();
        all.into_iter()
            .filter(|cid| !values.contains(cid))
            .collect()
    }

    #[test]
    fn root_cids_match_for_random_key_sets_up_to_10000() {
        let rt = runtime();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for size in [0usize, 1, 2, 3, 10, 50, 100, 1_000, 10_000] {
            let pairs: Vec<(String, Cid)> = (0..size)
                .map(|i| (rng.key(), value(i as u64)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let ours = build(pairs.clone());
            let theirs = rt.block_on(oracle_tree(&pairs));
            assert_eq!(ours.root_cid(), theirs.root(), "root of {size} keys");
        }
    }

    #[test]
    fn diffs_match_the_oracle_node_sets() {
        let rt = runtime();
        let mut rng = Rng(0x0dd_ba11_cafe_0002);
        for round in 0..12u64 {
            let size = [10usize, 100, 1_000][(round % 3) as usize];
            let base: BTreeMap<String, Cid> =
                (0..size).map(|i| (rng.key(), value(i as u64))).collect();
            let mut after = base.clone();
            let keys: Vec<String> = base.keys().cloned().collect();
            for _ in 0..(1 + rng.next() % 20) {
                match rng.next() % 3 {
                    0 => {
                        after.remove(&keys[(rng.next() as usize) % keys.len()]);
                    }
                    1 => {
                        after.insert(
                            keys[(rng.next() as usize) % keys.len()].clone(),
                            value(rng.next()),
                        );
                    }
                    _ => {
                        after.insert(rng.key(), value(rng.next()));
                    }
                }
            }
            let old = build(base.clone());
            let mut new = old.clone();
            for key in base.keys().filter(|k| !after.contains_key(*k)) {
                new = new.remove(&(), key).unwrap().0;
            }
            for (key, cid) in &after {
                new = new.insert(&(), key, *cid).unwrap();
            }
            let result = diff(&(), &old, &new).unwrap();

            let values: BTreeSet<Cid> = base.values().chain(after.values()).copied().collect();
            let (old_nodes, new_nodes, new_root) = rt.block_on(async {
                let pairs_old: Vec<_> = base.clone().into_iter().collect();
                let pairs_new: Vec<_> = after.clone().into_iter().collect();
                let mut t_old = oracle_tree(&pairs_old).await;
                let mut t_new = oracle_tree(&pairs_new).await;
                (
                    oracle_nodes(&mut t_old, &values).await,
                    oracle_nodes(&mut t_new, &values).await,
                    t_new.root(),
                )
            });
            assert_eq!(new.root_cid(), new_root, "round {round}");
            let created: BTreeSet<Cid> = result.created_nodes.iter().map(|(c, _)| *c).collect();
            let removed: BTreeSet<Cid> = result.removed_nodes.iter().copied().collect();
            assert_eq!(
                created,
                new_nodes.difference(&old_nodes).copied().collect(),
                "created, round {round}"
            );
            assert_eq!(
                removed,
                old_nodes.difference(&new_nodes).copied().collect(),
                "removed, round {round}"
            );
        }
    }
}
