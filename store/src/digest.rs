//! A digest of the projected state, to compare live projections with a rebuild from the log
//! (`stratos verify-projections`). Positions are left out: they say how far a projection got,
//! not what it holds.

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use crate::store::{Pool, Store, StoreError, on};

/// A table and its columns in key order; `true` marks a binary column.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, bool)],
    pub(crate) order: &'static str,
}

const TABLES: &[Table] = &[
    Table {
        name: "actor_head",
        columns: &[
            ("did", false),
            ("commit_cid", false),
            ("rev", false),
            ("data_cid", false),
        ],
        order: "did",
    },
    Table {
        name: "repo_block",
        columns: &[("did", false), ("cid", false), ("bytes", true)],
        order: "did, cid",
    },
    Table {
        name: "record",
        columns: &[
            ("did", false),
            ("collection", false),
            ("rkey", false),
            ("cid", false),
            ("boundaries", false),
            ("block", true),
        ],
        order: "did, collection, rkey",
    },
    Table {
        name: "record_blob",
        columns: &[
            ("did", false),
            ("collection", false),
            ("rkey", false),
            ("cid", false),
            ("rev", false),
        ],
        order: "did, collection, rkey, cid",
    },
    Table {
        name: "actor_event",
        columns: &[
            ("did", false),
            ("seq", false),
            ("event_type", false),
            ("rev", false),
            ("body", true),
        ],
        order: "did, seq",
    },
    Table {
        name: "rejected_event",
        columns: &[
            ("partition_id", false),
            ("log_offset", false),
            ("did", false),
            ("reason", false),
        ],
        order: "partition_id, log_offset",
    },
    Table {
        name: "enrollment",
        columns: &[
            ("did", false),
            ("signing_key", false),
            ("boundaries", false),
            ("service_endpoint", false),
            ("enrolled_at", false),
            ("updated_at", false),
            ("active", false),
        ],
        order: "did",
    },
    Table {
        name: "request",
        columns: &[
            ("did", false),
            ("key", false),
            ("commit_cid", false),
            ("rev", false),
            ("results", false),
        ],
        order: "did, key",
    },
];

impl Store {
    /// SHA-256 over every row of the repo projection (heads, blocks, records and the blobs they
    /// refer to, event sequences, rejections, enrollments) in key order, as lowercase hex.
    pub async fn digest(&self) -> Result<String, StoreError> {
        digest_tables(&self.pool, TABLES).await
    }
}

/// SHA-256 over every row of `tables`, as lowercase hex.
pub(crate) async fn digest_tables(pool: &Pool, tables: &[Table]) -> Result<String, StoreError> {
    let mut hasher = Sha256::new();
    for table in tables {
        hash_table(pool, table, &mut hasher).await?;
    }
    Ok(hex(&hasher.finalize()))
}

async fn hash_table(pool: &Pool, table: &Table, hasher: &mut Sha256) -> Result<(), StoreError> {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(name, binary)| {
            if *binary {
                (*name).to_string()
            } else {
                format!("CAST({name} AS TEXT)")
            }
        })
        .collect();
    let query = format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.name,
        table.order
    );
    hasher.update(table.name.as_bytes());
    on!(pool, db => {
        let mut rows = sqlx::query(AssertSqlSafe(query)).fetch(db);
        while let Some(row) = rows.try_next().await? {
            for (index, (_, binary)) in table.columns.iter().enumerate() {
                let value: Option<Vec<u8>> = if *binary {
                    row.get(index)
                } else {
                    row.get::<Option<String>, _>(index).map(String::into_bytes)
                };
                match value {
                    None => hasher.update([0u8]),
                    Some(bytes) => {
                        hasher.update([1u8]);
                        hasher.update((bytes.len() as u64).to_be_bytes());
                        hasher.update(&bytes);
                    }
                }
            }
        }
    });
    Ok(())
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
