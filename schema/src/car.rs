//! CAR v1: a streaming writer and a bounded reader for untrusted input.
//!
//! Layout: `varint(len) ‖ DAG-CBOR {version: 1, roots: [CID]}`, then sections
//! `varint(len) ‖ CID bytes ‖ block bytes`. The reader enforces [`CarLimits`], recomputes every
//! block's CID, and reports corrupt or truncated input as a [`CarError`], never a panic.

use cid::Cid;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

use crate::blocks::BlockMap;
use crate::data::{CborError, CidError, check_repo_cid, from_dag_cbor, to_dag_cbor, verify_cid};

/// Bounds on what a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarLimits {
    /// The largest block, in bytes.
    pub max_block_bytes: usize,
    /// The most blocks.
    pub max_blocks: usize,
    /// The most bytes in all, header included.
    pub max_total_bytes: u64,
}

impl Default for CarLimits {
    /// 2 MiB blocks, a million blocks, 1 GiB in all.
    fn default() -> Self {
        Self {
            max_block_bytes: 2 * 1024 * 1024,
            max_blocks: 1_000_000,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The largest header accepted, in bytes.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A CIDv1 with a sha2-256 multihash is 36 bytes; allow generous room for other encodings.
const MAX_CID_BYTES: usize = 128;

/// Why a CAR could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// The underlying reader failed.
    #[error("reading CAR: {0}")]
    Io(#[from] io::Error),
    /// The input ends inside a header or section.
    #[error("CAR is truncated")]
    Truncated,
    /// A length prefix is not a valid varint.
    #[error("CAR has a malformed length prefix")]
    BadVarint,
    /// The header is not `{version: 1, roots}`.
    #[error("CAR header is invalid: {0}")]
    BadHeader(String),
    /// A section's CID cannot be parsed or is of an unsupported kind.
    #[error("CAR block has an invalid CID: {0}")]
    BadCid(String),
    /// A block's bytes do not hash to its CID.
    #[error("CAR block {0} does not match its CID")]
    CidMismatch(Cid),
    /// A block is larger than the limit.
    #[error("CAR block of {size} bytes exceeds the limit of {limit}")]
    BlockTooLarge {
        /// The block's size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// More blocks than the limit.
    #[error("CAR holds more than {0} blocks")]
    TooManyBlocks(usize),
    /// More bytes than the limit.
    #[error("CAR is larger than {0} bytes")]
    TooLarge(u64),
}

impl From<CidError> for CarError {
    fn from(error: CidError) -> Self {
        match error {
            CidError::Mismatch { cid } => CarError::CidMismatch(cid),
            other => CarError::BadCid(other.to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CarHeader {
    version: u64,
    roots: Vec<Cid>,
}

fn write_varint(writer: &mut impl Write, mut value: u64) -> io::Result<usize> {
    let mut buf = [0u8; 10];
    let mut len = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf[len] = byte;
            len += 1;
            break;
        }
        buf[len] = byte | 0x80;
        len += 1;
    }
    writer.write_all(&buf[..len])?;
    Ok(len)
}

/// Writes a CAR to any [`Write`], one block at a time.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    writer: W,
    bytes_written: u64,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header with the given roots.
    pub fn new(mut writer: W, roots: &[Cid]) -> io::Result<Self> {
        let header = to_dag_cbor(&CarHeader {
            version: 1,
            roots: roots.to_vec(),
        })
        .map_err(io::Error::other)?;
        let prefix = write_varint(&mut writer, header.len() as u64)?;
        writer.write_all(&header)?;
        Ok(Self {
            writer,
            bytes_written: (prefix + header.len()) as u64,
        })
    }

    /// Appends one block.
    pub fn write_block(&mut self, cid: &Cid, bytes: &[u8]) -> io::Result<()> {
        let cid_bytes = cid.to_bytes();
        let prefix = write_varint(&mut self.writer, (cid_bytes.len() + bytes.len()) as u64)?;
        self.writer.write_all(&cid_bytes)?;
        self.writer.write_all(bytes)?;
        self.bytes_written += (prefix + cid_bytes.len() + bytes.len()) as u64;
        Ok(())
    }

    /// How many bytes have been written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// Writes a whole CAR into memory.
pub fn write_car<'a>(
    roots: &[Cid],
    blocks: impl IntoIterator<Item = (&'a Cid, &'a [u8])>,
) -> Vec<u8> {
    let mut writer = CarWriter::new(Vec::new(), roots).expect("writing to memory cannot fail");
    for (cid, bytes) in blocks {
        writer
            .write_block(cid, bytes)
            .expect("writing to memory cannot fail");
    }
    writer.finish().expect("writing to memory cannot fail")
}

/// Reads a CAR from any [`Read`], one block at a time, within [`CarLimits`].
#[derive(Debug)]
pub struct CarReader<R: Read> {
    reader: R,
    limits: CarLimits,
    roots: Vec<Cid>,
    blocks_read: usize,
    bytes_read: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(reader: R, limits: CarLimits) -> Result<Self, CarError> {
        let mut car = Self {
            reader,
            limits,
            roots: Vec::new(),
            blocks_read: 0,
            bytes_read: 0,
        };
        let len = car.read_varint()?.ok_or(CarError::Truncated)?;
        if len == 0 || len > MAX_HEADER_BYTES as u64 {
            return Err(CarError::BadHeader(format!("header length {len}")));
        }
        let bytes = car.read_exact_vec(len as usize)?;
        let header: CarHeader =
            from_dag_cbor(&bytes).map_err(|e: CborError| CarError::BadHeader(e.to_string()))?;
        if header.version != 1 {
            return Err(CarError::BadHeader(format!("version {}", header.version)));
        }
        car.roots = header.roots;
        Ok(car)
    }

    /// The roots named by the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, with its CID checked against its bytes; `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some((cid, bytes)) = self.next_block_unverified()? else {
            return Ok(None);
        };
        verify_cid(&cid, &bytes)?;
        Ok(Some((cid, bytes)))
    }

    /// The next block without checking its bytes against its CID (for diagnostics).
    pub fn next_block_unverified(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some(len) = self.read_varint()? else {
            return Ok(None);
        };
        let limit = self.limits.max_block_bytes + MAX_CID_BYTES;
        if len > limit as u64 {
            return Err(CarError::BlockTooLarge {
                size: len,
                limit: self.limits.max_block_bytes,
            });
        }
        if self.blocks_read >= self.limits.max_blocks {
            return Err(CarError::TooManyBlocks(self.limits.max_blocks));
        }
        let section = self.read_exact_vec(len as usize)?;
        let mut cursor = io::Cursor::new(section.as_slice());
        let cid = Cid::read_bytes(&mut cursor).map_err(|e| CarError::BadCid(e.to_string()))?;
        check_repo_cid(&cid)?;
        let start = cursor.position() as usize;
        let data = section[start..].to_vec();
        if data.len() > self.limits.max_block_bytes {
            return Err(CarError::BlockTooLarge {
                size: data.len() as u64,
                limit: self.limits.max_block_bytes,
            });
        }
        self.blocks_read += 1;
        Ok(Some((cid, data)))
    }

    /// Reads every remaining block into a map, checking each CID.
    pub fn read_all(mut self) -> Result<BlockMap, CarError> {
        let mut blocks = BlockMap::new();
        while let Some((cid, bytes)) = self.next_block()? {
            blocks.insert(cid, bytes);
        }
        Ok(blocks)
    }

    /// A varint length prefix; `None` on a clean end of input.
    fn read_varint(&mut self) -> Result<Option<u64>, CarError> {
        let mut value = 0u64;
        for index in 0..10 {
            let mut byte = [0u8];
            let read = self.reader.read(&mut byte)?;
            if read == 0 {
                return if index == 0 {
                    Ok(None)
                } else {
                    Err(CarError::Truncated)
                };
            }
            self.count(1)?;
            let bits = u64::from(byte[0] & 0x7f);
            if index == 9 && bits > 1 {
                return Err(CarError::BadVarint);
            }
            value |= bits << (7 * index);
            if byte[0] & 0x80 == 0 {
                if index > 0 && byte[0] == 0 {
                    return Err(CarError::BadVarint); // not minimally encoded
                }
                return Ok(Some(value));
            }
        }
        Err(CarError::BadVarint)
    }

    fn read_exact_vec(&mut self, len: usize) -> Result<Vec<u8>, CarError> {
        self.count(len as u64)?;
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(len as u64)
            .read_to_end(&mut bytes)?;
        if read < len {
            return Err(CarError::Truncated);
        }
        Ok(bytes)
    }

    fn count(&mut self, len: u64) -> Result<(), CarError> {
        self.bytes_read = self.bytes_read.saturating_add(len);
        if self.bytes_read > self.limits.max_total_bytes {
            return Err(CarError::TooLarge(self.limits.max_total_bytes));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// Reads a whole CAR held in memory: its roots and its blocks, every CID checked.
pub fn read_car(bytes: &[u8], limits: CarLimits) -> Result<(Vec<Cid>, BlockMap), CarError> {
    let reader = CarReader::new(bytes, limits)?;
    let roots = reader.roots().to_vec();
    Ok((roots, reader.read_all()?))
}
