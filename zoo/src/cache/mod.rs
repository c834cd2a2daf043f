//! The frozen-feature cache: frozen outputs computed once per image and once per prompt.
//!
//! When [`ZooModel::frozen_needs`] says the trainable parts read only frozen outputs (the
//! placement and head declare them through core's contract), training and validation take the
//! backbone's frozen vision outputs from here instead of re-running the vision tower every epoch.
//! Entries are keyed by a fingerprint of the backbone (every parameter value as stored, so a
//! backbone cast to half precision has entries of its own; the frozen outputs asked for, the
//! preprocessing and the storage precision) and of the image file (path, length,
//! modification time), so a persistent cache folder is reused by a later run on the same data and
//! weights and is never read for other ones. Text outputs are kept per distinct prompt in memory.
pub mod store;

use crate::data::dataset::{Item, Preprocess};
use crate::error::ZooError;
use crate::model::ZooModel;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use store::{BlobStore, CacheDtype};
use vlsm_core::{FrozenNeeds, FrozenText, FrozenVision};

/// How a run caches frozen features.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheOptions {
    /// Use the cache when the model allows it.
    pub enabled: bool,
    /// Persistent folder (`--cache DIR`); default: a spill folder in the run folder, removed
    /// when the run finishes.
    pub dir: Option<PathBuf>,
    /// Memory budget in bytes; default: a quarter of the memory available at start.
    pub memory_bytes: Option<usize>,
    /// Storage precision.
    pub dtype: CacheDtype,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            memory_bytes: None,
            dtype: CacheDtype::F32,
        }
    }
}

/// A quarter of `MemAvailable` (Linux), else 2 GiB.
pub fn default_memory_budget() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<usize>().ok())
        })
        .map_or(2 << 30, |kib| kib * 1024 / 4)
}

/// 64-bit multiply-xor hash over words (a cache key, not a security measure).
#[derive(Debug, Clone, Copy)]
struct KeyHash(u64);

impl KeyHash {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(tail));
        self.word(bytes.len() as u64);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Hash of every float parameter value of `module`, in visiting order.
fn weights_fingerprint<M: Module>(module: &M, hash: &mut KeyHash) {
    struct Values<'a>(&'a mut KeyHash);
    impl ModuleVisitor for Values<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let data = p.val().into_data();
            self.0.bytes(data.as_bytes());
            self.0.text(&format!("{:?}", data.shape()));
        }
    }
    module.visit(&mut Values(hash));
}

/// Where one cached state lies in an image's blob.
#[derive(Debug, Clone)]
struct StateSlot {
    index: usize,
    dims: [usize; 2],
}

/// Shape of every image's blob, learnt from the first encoding.
#[derive(Debug, Clone)]
struct Layout {
    slots: Vec<StateSlot>,
    grid: [usize; 2],
    len: usize,
}

impl Layout {
    /// `grid rows cols` then one `state index tokens width` line per slot.
    fn to_text(&self) -> String {
        let mut text = format!("grid {} {}\n", self.grid[0], self.grid[1]);
        for s in &self.slots {
            text.push_str(&format!("state {} {} {}\n", s.index, s.dims[0], s.dims[1]));
        }
        text
    }

    /// The layout saved next to a persistent cache's blobs, if readable.
    fn read(path: &std::path::Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut grid = None;
        let mut slots = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<usize>().ok());
            match f.first() {
                Some(&"grid") => grid = Some([num(1)?, num(2)?]),
                Some(&"state") => slots.push(StateSlot {
                    index: num(1)?,
                    dims: [num(2)?, num(3)?],
                }),
                _ => return None,
            }
        }
        let len = slots.iter().map(|s| s.dims[0] * s.dims[1]).sum();
        Some(Self {
            slots,
            grid: grid?,
            len,
        })
    }
}

fn layout_file(dir: &std::path::Path, fingerprint: u64) -> PathBuf {
    dir.join(format!("{fingerprint:016x}.layout"))
}

/// One prompt's frozen text outputs.
#[derive(Debug, Clone)]
struct TextRow {
    cond: Vec<f32>,
    eos: BTreeMap<usize, Vec<f32>>,
}

/// Counters for the run's progress and report (`report.json`'s `cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Images served from the cache.
    pub hits: usize,
    /// Images encoded and stored.
    pub misses: usize,
    /// Stored entries whose payload failed its checksum: encoded again (counted in `misses`).
    #[serde(default)]
    pub corrupt: usize,
}

/// Frozen outputs of a model, per image and per prompt.
pub struct FeatureCache {
    needs: FrozenNeeds,
    fingerprint: u64,
    store: BlobStore,
    layout: Option<Layout>,
    text: HashMap<String, TextRow>,
    spill: PathBuf,
    persistent: bool,
    /// Hit and miss counts so far.
    pub stats: CacheStats,
}

impl FeatureCache {
    /// A cache for `model` when it can train from one (and `opts.enabled`); `run_spill` is the
    /// folder used without a persistent `opts.dir`.
    pub fn for_model(
        model: &ZooModel,
        pre: &Preprocess,
        opts: &CacheOptions,
        run_spill: PathBuf,
    ) -> Option<Self> {
        if !opts.enabled {
            return None;
        }
        let needs = model.frozen_needs()?;
        let info = model.backbone.info();
        let mut hash = KeyHash::new();
        hash.text(&info.name);
        hash.text(&format!(
            "{:?} {:?} {:?} {:?} {:?} {}",
            info.extract_layers, needs, pre.size, pre.mean, pre.std, info.vision_downscale
        ));
        hash.word(opts.dtype.bytes() as u64);
        weights_fingerprint(&model.backbone, &mut hash);
        let (spill, persistent) = match &opts.dir {
            Some(dir) => (dir.clone(), true),
            None => (run_spill, false),
        };
        let budget = opts.memory_bytes.unwrap_or_else(default_memory_budget);
        let layout = if persistent {
            Layout::read(&layout_file(&spill, hash.0))
        } else {
            None
        };
        Some(Self {
            needs,
            fingerprint: hash.0,
            store: BlobStore::new(opts.dtype, budget, spill.clone(), persistent),
            layout,
            text: HashMap::new(),
            spill,
            persistent,
            stats: CacheStats::default(),
        })
    }

    /// What the cache holds per image.
    pub fn needs(&self) -> &FrozenNeeds {
        &self.needs
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
    }

    /// The key of `item`'s image: the model fingerprint, the path, the file's length and
    /// modification time.
    pub fn image_key(&self, item: &Item) -> u64 {
        let mut hash = KeyHash(self.fingerprint);
        hash.text(&item.image_path.to_string_lossy());
        if let Ok(meta) = std::fs::metadata(&item.image_path) {
            hash.word(meta.len());
            if let Ok(modified) = meta.modified()
                && let Ok(since) = modified.duration_since(std::time::UNIX_EPOCH)
            {
                hash.word(since.as_nanos() as u64);
            }
        }
        hash.0
    }

    /// Frozen outputs of a batch: images by `keys` (encoding the rows of `pixels`
    /// `[B, 3, S, S]` that are not cached yet) and prompts by text.
    pub fn batch(
        &mut self,
        model: &ZooModel,
        keys: &[u64],
        pixels: &Tensor<4>,
        prompts: &[&str],
        device: &Device,
    ) -> Result<(FrozenVision, FrozenText), ZooError> {
        let vision = self.vision(model, keys, pixels, device)?;
        let text = self.text(model, prompts, device)?;
        Ok((vision, text))
    }

    fn vision(
        &mut self,
        model: &ZooModel,
        keys: &[u64],
        pixels: &Tensor<4>,
        device: &Device,
    ) -> Result<FrozenVision, ZooError> {
        // Phase 1: rows held in memory are read in place below; the others are read from disk
        // or encoded now.
        let mut owned: Vec<Option<Vec<f32>>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, &key) in keys.iter().enumerate() {
            let Some(len) = self.layout.as_ref().map(|l| l.len) else {
                missing.push(i);
                continue;
            };
            if self.store.in_memory(key, len).is_some() {
                continue;
            }
            match self.store.from_disk(key, len) {
                Some(row) => owned[i] = Some(row),
                None => missing.push(i),
            }
        }
        self.stats.hits += keys.len() - missing.len();
        self.stats.misses += missing.len();
        self.stats.corrupt = self.store.corrupt_entries;
        if !missing.is_empty() {
            let ids: Vec<i64> = missing.iter().map(|&i| i as i64).collect();
            let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [missing.len()]), device);
            let encoded = model.encode_frozen_vision(pixels.clone().select(0, ids), &self.needs)?;
            let fresh = self.layout.is_none();
            let layout = self.layout.get_or_insert_with(|| {
                let slots: Vec<StateSlot> = encoded
                    .states
                    .iter()
                    .map(|(&index, t)| {
                        let [_, n, d] = t.dims();
                        StateSlot {
                            index,
                            dims: [n, d],
                        }
                    })
                    .collect();
                let len = slots.iter().map(|s| s.dims[0] * s.dims[1]).sum();
                Layout {
                    slots,
                    grid: encoded.grid,
                    len,
                }
            });
            if fresh && self.persistent {
                let path = layout_file(&self.spill, self.fingerprint);
                crate::data::write::write_atomic(&path, layout.to_text().as_bytes()).map_err(
                    |e| ZooError::Invalid(format!("feature cache {}: {e}", path.display())),
                )?;
            }
            let per_state: Vec<Vec<f32>> = layout
                .slots
                .iter()
                .map(|s| {
                    encoded.states[&s.index]
                        .clone()
                        .into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .expect("f32 features")
                })
                .collect();
            let len = layout.len;
            let slots = layout.slots.clone();
            for (r, &i) in missing.iter().enumerate() {
                let mut row = Vec::with_capacity(len);
                for (slot, values) in slots.iter().zip(&per_state) {
                    let n = slot.dims[0] * slot.dims[1];
                    row.extend_from_slice(&values[r * n..(r + 1) * n]);
                }
                self.store.put(keys[i], &row).map_err(|e| {
                    ZooError::Invalid(format!("feature cache {}: {e}", self.spill.display()))
                })?;
                owned[i] = Some(row);
            }
        }
        // Phase 2: one batch tensor per state, straight from the stored rows.
        let layout = self.layout.as_ref().expect("set by the first encoding");
        let b = keys.len();
        let mut states = BTreeMap::new();
        let mut offset = 0;
        for slot in &layout.slots {
            let n = slot.dims[0] * slot.dims[1];
            let mut values = Vec::with_capacity(b * n);
            for (row, &key) in owned.iter().zip(keys) {
                match row {
                    Some(row) => values.extend_from_slice(&row[offset..offset + n]),
                    None => self
                        .store
                        .in_memory(key, layout.len)
                        .expect("held in memory (phase 1)")
                        .extend_into(offset..offset + n, &mut values),
                }
            }
            let t = Tensor::from_data(
                TensorData::new(values, [b, slot.dims[0], slot.dims[1]]),
                device,
            );
            states.insert(slot.index, t);
            offset += n;
        }
        Ok(FrozenVision {
            states,
            grid: layout.grid,
        })
    }

    fn text(
        &mut self,
        model: &ZooModel,
        prompts: &[&str],
        device: &Device,
    ) -> Result<FrozenText, ZooError> {
        let mut missing: Vec<&str> = prompts
            .iter()
            .copied()
            .filter(|p| !self.text.contains_key(*p))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let ids = model.tokenize(&missing, device)?;
            let encoded = model.encode_frozen_text(ids, &self.needs)?;
            let rows = |t: Tensor<3>| -> Vec<Vec<f32>> {
                let [b, _, d] = t.dims();
                let v = t
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 features");
                (0..b).map(|r| v[r * d..(r + 1) * d].to_vec()).collect()
            };
            let cond = rows(encoded.cond);
            let eos: Vec<(usize, Vec<Vec<f32>>)> =
                encoded.eos.into_iter().map(|(k, t)| (k, rows(t))).collect();
            for (r, prompt) in missing.iter().enumerate() {
                self.text.insert(
                    prompt.to_string(),
                    TextRow {
                        cond: cond[r].clone(),
                        eos: eos.iter().map(|(k, v)| (*k, v[r].clone())).collect(),
                    },
                );
            }
        }
        let rows: Vec<&TextRow> = prompts.iter().map(|p| &self.text[*p]).collect();
        let stack = |pick: &dyn Fn(&TextRow) -> &Vec<f32>| -> Tensor<3> {
            let d = pick(rows[0]).len();
            let values: Vec<f32> = rows.iter().flat_map(|r| pick(r).iter().copied()).collect();
            Tensor::from_data(TensorData::new(values, [rows.len(), 1, d]), device)
        };
        Ok(FrozenText {
            cond: stack(&|r| &r.cond),
            eos: self
                .needs
                .text_eos
                .iter()
                .map(|&k| (k, stack(&|r| &r.eos[&k])))
                .collect(),
        })
    }

    /// Removes the spill folder unless it is the persistent cache.
    pub fn finish(self) {
        if !self.persistent {
            let _ = std::fs::remove_dir_all(&self.spill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyHash;

    #[test]
    fn the_key_hash_separates_lengths_and_orders() {
        let h = |parts: &[&[u8]]| {
            let mut k = KeyHash::new();
            for p in parts {
                k.bytes(p);
            }
            k.0
        };
        assert_ne!(h(&[b"ab", b"c"]), h(&[b"a", b"bc"]));
        assert_ne!(h(&[b"a\0"]), h(&[b"a"]));
        assert_eq!(h(&[b"same"]), h(&[b"same"]));
    }
}
