//! The newest records this process appended, kept in memory so that readers in the same
//! process that keep up with the appends take them from here instead of reading back from the
//! log what was just written: the embedded log's writer adds each group commit, the Kafka
//! adapter each record the brokers acknowledged.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::watch;

use crate::LogRecord;

/// The newest appended records of every partition by offset, within a byte budget per
/// partition. Records may arrive out of order, and a partition's offsets may have gaps (records
/// other processes appended): a read returns only consecutive records.
pub(crate) struct RecentRecords {
    partitions: Mutex<Vec<Partition>>,
    budget: usize,
    /// Per partition, told after every push of records of that partition (readers of the
    /// other partitions are not woken).
    pushed: Vec<watch::Sender<()>>,
}

#[derive(Default)]
struct Partition {
    records: BTreeMap<u64, LogRecord>,
    bytes: usize,
    tail: Option<Tail>,
}

/// What memory knows of the end of a partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// The highest offset ever pushed (kept or not).
    pub(crate) newest: u64,
    /// When the last push of the partition's records came.
    pub(crate) pushed_at: Instant,
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
            pushed: (0..partitions).map(|_| watch::Sender::new(())).collect(),
        }
    }

    /// Takes in appended records (durable ones only: readers treat them as the log's).
    pub(crate) fn push(&self, records: impl IntoIterator<Item = LogRecord>) {
        let mut touched: Vec<usize> = Vec::new();
        let now = Instant::now();
        {
            let mut partitions = self
                .partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for record in records {
                let index = record.position.partition as usize;
                let Some(partition) = partitions.get_mut(index) else {
                    continue;
                };
                if !touched.contains(&index) {
                    touched.push(index);
                }
                let newest = partition.tail.map_or(record.position.offset, |tail| {
                    tail.newest.max(record.position.offset)
                });
                partition.tail = Some(Tail {
                    newest,
                    pushed_at: now,
                });
                partition.bytes += size(&record);
                if let Some(replaced) = partition.records.insert(record.position.offset, record) {
                    partition.bytes -= size(&replaced);
                }
                while partition.bytes > self.budget && partition.records.len() > 1 {
                    if let Some((_, oldest)) = partition.records.pop_first() {
                        partition.bytes -= size(&oldest);
                    }
                }
            }
        }
        for pushed in touched
            .into_iter()
            .filter_map(|index| self.pushed.get(index))
        {
            pushed.send_replace(());
        }
    }

    /// Up to `limit` consecutive records of `partition` from offset `from` on; `None` when
    /// the record at `from` is not kept (the log must be read instead).
    pub(crate) fn read(&self, partition: u32, from: u64, limit: usize) -> Option<Vec<LogRecord>> {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let records = &partitions.get(partition as usize)?.records;
        records.get(&from)?;
        Some(
            records
                .range(from..)
                .zip(from..)
                .take_while(|((offset, _), expected)| *offset == expected)
                .take(limit)
                .map(|((_, record), _)| record.clone())
                .collect(),
        )
    }

    /// The newest offset pushed for `partition` and when; `None` before the first push.
    pub(crate) fn tail(&self, partition: u32) -> Option<Tail> {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        partitions.get(partition as usize)?.tail
    }

    /// Changes after each push of records of `partition` (to wait for one after a read found
    /// nothing); `None` for a partition it does not keep.
    pub(crate) fn subscribe(&self, partition: u32) -> Option<watch::Receiver<()>> {
        self.pushed
            .get(partition as usize)
            .map(watch::Sender::subscribe)
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
        assert_eq!(offsets(recent.read(1, 8, 10)), Some(vec![8]));
        assert_eq!(
            offsets(recent.read(1, 4, 10)),
            None,
            "before the first kept"
        );
        assert_eq!(offsets(recent.read(1, 9, 10)), None, "past the end");
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
    fn the_tail_is_the_newest_offset_pushed() {
        let recent = RecentRecords::new(2, 3 * (100 + 9 + 64));
        assert_eq!(recent.tail(0), None);
        let before = Instant::now();
        recent.push([record(0, 7, 100), record(0, 3, 100)]);
        let tail = recent.tail(0).unwrap();
        assert_eq!(tail.newest, 7, "the highest, whatever the order");
        assert!(tail.pushed_at >= before);
        recent.push((8..20).map(|offset| record(0, offset, 100)));
        assert_eq!(recent.tail(0).unwrap().newest, 19);
        recent.push([record(0, 5, 100)]);
        assert_eq!(
            recent.tail(0).unwrap().newest,
            19,
            "a late push of an older record"
        );
        assert_eq!(recent.tail(1), None, "another partition");
        assert_eq!(recent.tail(9), None, "no such partition");
    }

    #[test]
    fn a_read_stops_at_a_gap() {
        let recent = RecentRecords::new(1, 1_000_000);
        recent.push((0..3).map(|offset| record(0, offset, 10)));
        recent.push([record(0, 7, 10)]);
        assert_eq!(offsets(recent.read(0, 1, 10)), Some(vec![1, 2]));
        assert_eq!(offsets(recent.read(0, 3, 10)), None);
        assert_eq!(offsets(recent.read(0, 7, 10)), Some(vec![7]));
    }

    #[test]
    fn records_may_arrive_out_of_order() {
        let recent = RecentRecords::new(1, 1_000_000);
        let pushed = recent.subscribe(0).unwrap();
        recent.push([record(0, 4, 10), record(0, 6, 10)]);
        assert!(pushed.has_changed().unwrap());
        assert_eq!(offsets(recent.read(0, 4, 10)), Some(vec![4]));
        recent.push([record(0, 5, 10)]);
        assert_eq!(offsets(recent.read(0, 4, 10)), Some(vec![4, 5, 6]));
    }

    #[test]
    fn a_push_tells_only_the_readers_of_its_partitions() {
        let recent = RecentRecords::new(3, 1_000_000);
        let mut readers: Vec<_> = (0..3).map(|p| recent.subscribe(p).unwrap()).collect();
        assert!(recent.subscribe(3).is_none(), "no such partition");
        recent.push([record(1, 0, 10), record(1, 1, 10)]);
        let told = |readers: &mut Vec<watch::Receiver<()>>| -> Vec<bool> {
            readers
                .iter_mut()
                .map(|reader| {
                    let changed = reader.has_changed().unwrap();
                    reader.borrow_and_update();
                    changed
                })
                .collect()
        };
        assert_eq!(told(&mut readers), [false, true, false]);
        recent.push([record(0, 0, 10), record(2, 0, 10)]);
        assert_eq!(told(&mut readers), [true, false, true]);
    }
}
