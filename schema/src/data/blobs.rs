//! The blobs a record refers to: every `{"$type": "blob", "ref": <link>}` inside it.

use ipld_core::ipld::Ipld;

use crate::Cid;
use crate::data::from_dag_cbor;

/// The CIDs of the blobs `value` refers to, in document order, each once.
pub fn blob_refs(value: &Ipld) -> Vec<Cid> {
    let mut found = Vec::new();
    collect(value, &mut found);
    found
}

/// The blobs a DAG-CBOR record block refers to. A block that does not decode refers to none.
pub fn blob_refs_in_block(block: &[u8]) -> Vec<Cid> {
    // Most records hold no blob: the text string "blob" (0x64 'b' 'l' 'o' 'b') is a cheap test.
    if !block.windows(5).any(|window| window == b"\x64blob") {
        return Vec::new();
    }
    from_dag_cbor::<Ipld>(block)
        .map(|value| blob_refs(&value))
        .unwrap_or_default()
}

fn collect(value: &Ipld, found: &mut Vec<Cid>) {
    match value {
        Ipld::Map(map) => {
            if matches!(map.get("$type"), Some(Ipld::String(t)) if t == "blob")
                && let Some(Ipld::Link(cid)) = map.get("ref")
            {
                if !found.contains(cid) {
                    found.push(*cid);
                }
                return;
            }
            map.values().for_each(|item| collect(item, found));
        }
        Ipld::List(items) => items.iter().for_each(|item| collect(item, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::data::{cid_for_raw, json_to_ipld, to_dag_cbor};

    #[test]
    fn every_blob_once_in_document_order() {
        let (a, b) = (cid_for_raw(b"a"), cid_for_raw(b"b"));
        let record = json_to_ipld(&serde_json::json!({
            "$type": "zone.stratos.feed.post",
            "text": "a blob of text",
            "embed": {"images": [
                {"image": {"$type": "blob", "ref": {"$link": a.to_string()}, "mimeType": "image/png", "size": 1}},
                {"image": {"$type": "blob", "ref": {"$link": b.to_string()}, "mimeType": "image/png", "size": 1}},
                {"image": {"$type": "blob", "ref": {"$link": a.to_string()}, "mimeType": "image/png", "size": 1}},
            ]},
        }))
        .unwrap();
        assert_eq!(blob_refs(&record), [a, b]);
        assert_eq!(blob_refs_in_block(&to_dag_cbor(&record).unwrap()), [a, b]);
    }

    #[test]
    fn records_without_blobs_and_bad_blocks_refer_to_none() {
        let record = json_to_ipld(&serde_json::json!({"text": "blob", "$type": "x.y.z"})).unwrap();
        assert!(blob_refs_in_block(&to_dag_cbor(&record).unwrap()).is_empty());
        assert!(blob_refs_in_block(b"\x64blob garbage").is_empty());
    }
}
