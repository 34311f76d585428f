//! The embedded log's most recent records, kept in memory by its writer after each group
//! commit so that readers in the same process that keep up with the appends take them from
//! here instead of reading back from the file what was just written.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::LogRecord;

/// The newest committed records of every partition, each partition's consecutive and within
/// a byte budget.
pub(crate) struct RecentRecords {
    partitions: Mutex<Vec<Partition>>,
    budget: usize,
}

#[derive(Default)]
struct Partition {
    records: VecDeque<LogRecord>,
    bytes: usize,
}

/// What a record counts against the budget.
fn size(record: &LogRecord) -> usize {
    record.payload.len() + record.key.len() + 64
}

impl RecentRecords {
    /// Room for about `budget` bytes of records per partition (always the newest one).
    pub(crate) fn new(partitions: u32, budget: usize) -> Self {
        Self {
            partitions: Mutex::new((0..partitions).map(|_| Partition::default()).collect()),
            budget,
        }
    }

    /// Takes in committed records; each must follow the newest one kept for its partition
    /// (a partition that does not continue is started over).
    pub(crate) fn push(&self, records: impl IntoIterator<Item = LogRecord>) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for record in records {
            let Some(partition) = partitions.get_mut(record.position.partition as usize) else {
                continue;
            };
            if partition
                .records
                .back()
                .is_some_and(|last| last.position.offset + 1 != record.position.offset)
            {
                *partition = Partition::default();
            }
            partition.bytes += size(&record);
            partition.records.push_back(record);
            while partition.bytes > self.budget && partition.records.len() > 1 {
                if let Some(oldest) = partition.records.pop_front() {
                    partition.bytes -= size(&oldest);
                }
            }
        }
    }

    /// Up to `limit` records of `partition` from offset `from` on, when the records kept reach
    /// back to `from` and no further than one past the newest; `None` when the file must be
    /// read instead.
    pub(crate) fn read(&self, partition: u32, from: u64, limit: usize) -> Option<Vec<LogRecord>> {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let records = &partitions.get(partition as usize)?.records;
        let first = records.front()?.position.offset;
        let skip = usize::try_from(from.checked_sub(first)?).ok()?;
        if skip > records.len() {
            return None;
        }
        Some(records.iter().skip(skip).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Position;

    fn record(partition: u32, offset: u64, bytes: usize) -> LogRecord {
        LogRecord {
            position: Position { partition, offset },
            key: "did:plc:a".into(),
            event_type: None,
            schema_version: None,
            payload: vec![0; bytes],
            timestamp_ms: 0,
        }
    }

    fn offsets(records: Option<Vec<LogRecord>>) -> Option<Vec<u64>> {
        records.map(|r| r.iter().map(|r| r.position.offset).collect())
    }

    #[test]
    fn reads_only_from_what_is_kept() {
        let recent = RecentRecords::new(2, 1_000_000);
        recent.push((5..9).map(|offset| record(1, offset, 10)));
        assert_eq!(offsets(recent.read(1, 6, 2)), Some(vec![6, 7]));
        assert_eq!(offsets(recent.read(1, 9, 10)), Some(vec![]));
        assert_eq!(
            offsets(recent.read(1, 4, 10)),
            None,
            "before the first kept"
        );
        assert_eq!(offsets(recent.read(1, 10, 10)), None, "past the end");
        assert_eq!(offsets(recent.read(0, 0, 10)), None, "nothing kept");
        assert_eq!(offsets(recent.read(7, 0, 10)), None, "no such partition");
    }

    #[test]
    fn keeps_the_newest_within_the_budget() {
        let recent = RecentRecords::new(1, 3 * (100 + 9 + 64));
        recent.push((0..10).map(|offset| record(0, offset, 100)));
        assert_eq!(offsets(recent.read(0, 7, 10)), Some(vec![7, 8, 9]));
        assert_eq!(offsets(recent.read(0, 6, 10)), None);
        recent.push([record(0, 10, 10_000)]);
        assert_eq!(
            offsets(recent.read(0, 10, 10)),
            Some(vec![10]),
            "the newest is kept over budget"
        );
    }

    #[test]
    fn a_gap_starts_the_partition_over() {
        let recent = RecentRecords::new(1, 1_000_000);
        recent.push((0..3).map(|offset| record(0, offset, 10)));
        recent.push([record(0, 7, 10)]);
        assert_eq!(offsets(recent.read(0, 1, 10)), None);
        assert_eq!(offsets(recent.read(0, 7, 10)), Some(vec![7]));
    }
}
