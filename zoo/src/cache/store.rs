//! Where cached feature blobs live: in memory up to a byte budget, then on disk.
//!
//! A blob is one image's frozen outputs as a flat `f32` list (stored as `f32`, exact, or `f16`).
//! Blobs beyond the memory budget go to one file each in the spill folder, written to a
//! temporary name and renamed, so an interrupted run never leaves a torn entry; a file whose
//! header or length does not fit, or whose payload fails its CRC-32, is treated as absent (and
//! counted, when the checksum failed) and rewritten. With a persistent folder
//! (`--cache DIR`) every blob is also written there, and a later run with the same key reads it.
use half::f16;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Storage precision of cached features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDtype {
    /// Exact: training from the cache equals training without it.
    F32,
    /// Half the memory and disk; features rounded to f16.
    F16,
}

impl CacheDtype {
    fn tag(self) -> u8 {
        match self {
            CacheDtype::F32 => 4,
            CacheDtype::F16 => 2,
        }
    }
    /// Bytes per value.
    pub fn bytes(self) -> usize {
        self.tag() as usize
    }
}

/// File header: magic, then the dtype tag and the payload's CRC-32 (little-endian).
const MAGIC: &[u8; 8] = b"VLSMFC02";

/// A blob held in memory, in its storage precision.
#[derive(Debug, Clone)]
pub enum MemoryBlob {
    /// Exact values.
    F32(Vec<f32>),
    /// Rounded values.
    F16(Vec<f16>),
}

impl MemoryBlob {
    fn from_values(values: &[f32], dtype: CacheDtype) -> Self {
        match dtype {
            CacheDtype::F32 => MemoryBlob::F32(values.to_vec()),
            CacheDtype::F16 => MemoryBlob::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            MemoryBlob::F32(v) => 4 * v.len(),
            MemoryBlob::F16(v) => 2 * v.len(),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            MemoryBlob::F32(v) => v.len(),
            MemoryBlob::F16(v) => v.len(),
        }
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends values `range` as f32 to `out`.
    pub fn extend_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        match self {
            MemoryBlob::F32(v) => out.extend_from_slice(&v[range]),
            MemoryBlob::F16(v) => out.extend(v[range].iter().map(|h| h.to_f32())),
        }
    }
}

/// Memory-first blob store with a disk spill folder.
pub struct BlobStore {
    dtype: CacheDtype,
    memory: HashMap<u64, MemoryBlob>,
    memory_bytes: usize,
    budget: usize,
    spill: PathBuf,
    persistent: bool,
    /// Blobs read from or written to disk (for the report).
    pub disk_entries: usize,
    /// Files whose payload failed its checksum (read as absent, then rewritten).
    pub corrupt_entries: usize,
}

impl BlobStore {
    /// A store keeping up to `budget` bytes in memory and the rest under `spill`; with
    /// `persistent` every blob is written to `spill` as well, and read from there on a miss.
    pub fn new(dtype: CacheDtype, budget: usize, spill: PathBuf, persistent: bool) -> Self {
        Self {
            dtype,
            memory: HashMap::new(),
            memory_bytes: 0,
            budget,
            spill,
            persistent,
            disk_entries: 0,
            corrupt_entries: 0,
        }
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    fn file(&self, key: u64) -> PathBuf {
        self.spill.join(format!("{key:016x}.blob"))
    }

    /// The in-memory blob of `key` with `len` values, if held.
    pub fn in_memory(&self, key: u64, len: usize) -> Option<&MemoryBlob> {
        self.memory.get(&key).filter(|b| b.len() == len)
    }

    /// The blob of `key` with `len` values from disk, if stored there (kept in memory when
    /// the budget allows).
    pub fn from_disk(&mut self, key: u64, len: usize) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.file(key)).ok()?;
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&tag, body) = body.split_first()?;
        let (crc, body) = body.split_first_chunk::<4>()?;
        if tag != self.dtype.tag() || body.len() != len * self.dtype.bytes() {
            return None;
        }
        if u32::from_le_bytes(*crc) != crc32fast::hash(body) {
            self.corrupt_entries += 1;
            return None;
        }
        self.disk_entries += 1;
        let values = decode(body, self.dtype);
        self.keep_in_memory(key, &values);
        Some(values)
    }

    /// The blob of `key` with `len` values, if stored (memory first, then disk).
    pub fn get(&mut self, key: u64, len: usize) -> Option<Vec<f32>> {
        if let Some(blob) = self.in_memory(key, len) {
            let mut out = Vec::with_capacity(len);
            blob.extend_into(0..len, &mut out);
            return Some(out);
        }
        self.from_disk(key, len)
    }

    /// Stores `values` under `key`.
    pub fn put(&mut self, key: u64, values: &[f32]) -> std::io::Result<()> {
        let bytes = values.len() * self.dtype.bytes();
        let fits = self.memory_bytes + bytes <= self.budget;
        if self.persistent || !fits {
            write_blob(&self.file(key), self.dtype, &encode(values, self.dtype))?;
            self.disk_entries += 1;
        }
        self.keep_in_memory(key, values);
        Ok(())
    }

    fn keep_in_memory(&mut self, key: u64, values: &[f32]) {
        let bytes = values.len() * self.dtype.bytes();
        if self.memory_bytes + bytes <= self.budget && !self.memory.contains_key(&key) {
            let blob = MemoryBlob::from_values(values, self.dtype);
            self.memory_bytes += blob.bytes();
            self.memory.insert(key, blob);
        }
    }
}

fn write_blob(path: &Path, dtype: CacheDtype, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(MAGIC.len() + 5 + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(dtype.tag());
    bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    bytes.extend_from_slice(body);
    crate::data::write::write_atomic(path, &bytes)
}

fn encode(values: &[f32], dtype: CacheDtype) -> Vec<u8> {
    match dtype {
        CacheDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        CacheDtype::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

fn decode(bytes: &[u8], dtype: CacheDtype) -> Vec<f32> {
    match dtype {
        CacheDtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        CacheDtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vlsm-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn blobs_over_the_budget_spill_to_disk_and_read_back_exactly() {
        let dir = temp("spill");
        let mut store = BlobStore::new(CacheDtype::F32, 16, dir.clone(), false);
        let a = [1.0f32, -2.5, 3.25, 1e-7];
        let b = [0.1f32, 0.2, 0.3, 0.4];
        store.put(1, &a).expect("put");
        store.put(2, &b).expect("put");
        assert_eq!(store.memory_bytes(), 16, "only the first fits in memory");
        assert!(!dir.join(format!("{:016x}.blob", 1u64)).exists());
        assert!(dir.join(format!("{:016x}.blob", 2u64)).exists());
        assert_eq!(store.get(1, 4).as_deref(), Some(a.as_slice()));
        assert_eq!(store.get(2, 4).as_deref(), Some(b.as_slice()));
        assert_eq!(store.get(2, 5), None, "a wrong length is a miss");
        assert_eq!(store.get(3, 4), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_persistent_store_is_read_by_a_new_store_and_f16_rounds() {
        let dir = temp("persist");
        let values = [1.0f32, 0.333_333_34, -1234.5];
        BlobStore::new(CacheDtype::F16, 1 << 20, dir.clone(), true)
            .put(7, &values)
            .expect("put");
        let mut again = BlobStore::new(CacheDtype::F16, 1 << 20, dir.clone(), true);
        let read = again.get(7, 3).expect("persisted");
        for (r, v) in read.iter().zip(values) {
            assert_eq!(*r, f16::from_f32(v).to_f32());
        }
        assert_eq!(again.disk_entries, 1);
        let mut other_dtype = BlobStore::new(CacheDtype::F32, 1 << 20, dir.clone(), true);
        assert_eq!(
            other_dtype.get(7, 3),
            None,
            "another precision is another entry"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_flipped_payload_byte_is_a_counted_miss() {
        let dir = temp("corrupt");
        let values = [1.0f32, 2.0, 3.0, 4.0];
        BlobStore::new(CacheDtype::F32, 0, dir.clone(), true)
            .put(9, &values)
            .expect("put");
        let file = dir.join(format!("{:016x}.blob", 9u64));
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();
        let mut again = BlobStore::new(CacheDtype::F32, 0, dir.clone(), true);
        assert_eq!(
            again.get(9, 4),
            None,
            "header and length intact, payload flipped"
        );
        assert_eq!(again.corrupt_entries, 1);
        again.put(9, &values).expect("rewrite");
        assert_eq!(again.get(9, 4).as_deref(), Some(values.as_slice()));
        assert_eq!(again.corrupt_entries, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
