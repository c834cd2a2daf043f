//! `vlsm-zoo data init`: build the medvlsm layout for the user's own images and masks.
//!
//! Images and masks are paired by file stem, split reproducibly (seeded shuffle, fractions such
//! as 0.8/0.1/0.1), copied under `<out>/images` and `<out>/masks`, and given template prompts
//! derived from each mask: class name, size (area), count (4-connected components) and location
//! (centroid), following medvlsm's keys (`p0` empty, `p1` class, … `p6` with location). An empty
//! mask gets "no `<class>`" prompts.
use super::records::{PromptValue, Record, SPLITS};
use super::write::write_splits;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Summary of what `init` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSummary {
    /// Records per split (train, val, test).
    pub counts: [usize; 3],
    /// Images without a mask of the same stem (not used).
    pub unpaired_images: Vec<String>,
    /// Masks without an image (not used).
    pub unpaired_masks: Vec<String>,
}

fn by_stem(dir: &Path) -> Result<HashMap<String, PathBuf>, String> {
    let mut map = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file()
            && let Some(stem) = path.file_stem()
        {
            map.insert(stem.to_string_lossy().into_owned(), path);
        }
    }
    Ok(map)
}

/// Facts about a mask for its prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskFacts {
    /// Foreground fraction of the image.
    pub area: f64,
    /// 4-connected components.
    pub count: usize,
    /// Centroid `(x, y)` as fractions of width and height.
    pub centroid: (f64, f64),
}

/// Measures a binary mask (`> 127`).
pub fn mask_facts(mask: &image::GrayImage) -> MaskFacts {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let fg: Vec<bool> = mask.pixels().map(|p| p.0[0] > 127).collect();
    let n = fg.iter().filter(|&&v| v).count();
    let (mut sx, mut sy) = (0.0, 0.0);
    for (i, _) in fg.iter().enumerate().filter(|(_, v)| **v) {
        sx += (i % w) as f64;
        sy += (i / w) as f64;
    }
    let mut seen = vec![false; fg.len()];
    let mut count = 0;
    for start in 0..fg.len() {
        if fg[start] && !seen[start] {
            count += 1;
            let mut stack = vec![start];
            seen[start] = true;
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                let mut push = |j: usize| {
                    if fg[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                };
                if x > 0 {
                    push(i - 1)
                }
                if x + 1 < w {
                    push(i + 1)
                }
                if y > 0 {
                    push(i - w)
                }
                if y + 1 < h {
                    push(i + w)
                }
            }
        }
    }
    let centroid = if n == 0 {
        (0.5, 0.5)
    } else {
        (sx / n as f64 / w as f64, sy / n as f64 / h as f64)
    };
    MaskFacts {
        area: n as f64 / fg.len().max(1) as f64,
        count,
        centroid,
    }
}

/// Template prompts for a mask of `class`.
pub fn template_prompts(class: &str, f: &MaskFacts) -> BTreeMap<String, PromptValue> {
    let one = |s: String| PromptValue::One(s);
    let mut p = BTreeMap::new();
    p.insert("p0".to_string(), one(String::new()));
    if f.count == 0 {
        p.insert("p1".into(), one(format!("no {class}")));
        p.insert("p2".into(), one(format!("no {class} in the image")));
        return p;
    }
    let size = if f.area < 0.05 {
        "small"
    } else if f.area < 0.2 {
        "medium"
    } else {
        "large"
    };
    let third = |v: f64| ((v * 3.0).floor() as usize).min(2);
    let loc = match (
        ["top", "", "bottom"][third(f.centroid.1)],
        ["left", "", "right"][third(f.centroid.0)],
    ) {
        ("", "") => "center".to_string(),
        ("", c) => c.to_string(),
        (r, "") => r.to_string(),
        (r, c) => format!("{r} {c}"),
    };
    let count = ["no", "one", "two", "three", "four"]
        .get(f.count)
        .copied()
        .unwrap_or("several");
    let plural = if f.count > 1 { "s" } else { "" };
    p.insert("p1".into(), one(class.to_string()));
    p.insert("p2".into(), one(format!("{size} {class}")));
    p.insert("p3".into(), one(format!("{count} {size} {class}{plural}")));
    p.insert(
        "p4".into(),
        one(format!(
            "{count} {size} {class}{plural}, located in {loc} of the image"
        )),
    );
    p
}

/// Pairs, splits, copies and annotates.
pub fn init(
    images: &Path,
    masks: &Path,
    class: &str,
    out: &Path,
    split: [f64; 3],
    seed: u64,
) -> Result<InitSummary, String> {
    if class.trim().is_empty() {
        return Err("--class must name the structure (e.g. polyp)".into());
    }
    let total: f64 = split.iter().sum();
    if split.iter().any(|&f| f < 0.0) || (total - 1.0).abs() > 1e-6 {
        return Err(format!(
            "--split fractions must be ≥ 0 and add up to 1 (got {split:?})"
        ));
    }
    let (imgs, msks) = (by_stem(images)?, by_stem(masks)?);
    let mut stems: Vec<String> = imgs
        .keys()
        .filter(|s| msks.contains_key(*s))
        .cloned()
        .collect();
    stems.sort();
    if stems.is_empty() {
        return Err(format!(
            "no image in {} has a mask of the same file stem in {}",
            images.display(),
            masks.display()
        ));
    }
    let mut unpaired_images: Vec<String> = imgs
        .keys()
        .filter(|s| !msks.contains_key(*s))
        .cloned()
        .collect();
    let mut unpaired_masks: Vec<String> = msks
        .keys()
        .filter(|s| !imgs.contains_key(*s))
        .cloned()
        .collect();
    unpaired_images.sort();
    unpaired_masks.sort();
    stems.shuffle(&mut StdRng::seed_from_u64(seed));
    let n = stems.len();
    let n_train = (split[0] * n as f64).round() as usize;
    let n_val = ((split[1] * n as f64).round() as usize).min(n - n_train);
    let bounds = [0, n_train, n_train + n_val, n];
    let mut splits = Vec::new();
    for (k, name) in SPLITS.iter().enumerate() {
        let mut records = Vec::new();
        for stem in &stems[bounds[k]..bounds[k + 1]] {
            let (img, msk) = (&imgs[stem], &msks[stem]);
            let mask = image::open(msk)
                .map_err(|e| format!("{}: {e}", msk.display()))?
                .to_luma8();
            let (iw, ih) =
                image::image_dimensions(img).map_err(|e| format!("{}: {e}", img.display()))?;
            if (iw, ih) != mask.dimensions() {
                return Err(format!(
                    "{}: mask is {:?} but the image is {:?}",
                    msk.display(),
                    mask.dimensions(),
                    (iw, ih)
                ));
            }
            let img_name = img.file_name().unwrap().to_string_lossy().into_owned();
            let mask_name = msk.file_name().unwrap().to_string_lossy().into_owned();
            for (from, dir, name) in [(img, "images", &img_name), (msk, "masks", &mask_name)] {
                let to = out.join(dir).join(name);
                std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
                std::fs::copy(from, &to)
                    .map_err(|e| format!("{} → {}: {e}", from.display(), to.display()))?;
            }
            records.push(Record {
                img_name,
                mask_name,
                prompts: template_prompts(class, &mask_facts(&mask)),
            });
        }
        splits.push((*name, records));
    }
    let counts = [splits[0].1.len(), splits[1].1.len(), splits[2].1.len()];
    write_splits(out, &splits)?;
    Ok(InitSummary {
        counts,
        unpaired_images,
        unpaired_masks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_and_prompts_from_a_mask() {
        let mut m = image::GrayImage::new(30, 30);
        for y in 0..5 {
            for x in 0..5 {
                m.put_pixel(x + 22, y + 1, image::Luma([255]));
                m.put_pixel(x + 22, y + 10, image::Luma([255]));
            }
        }
        let f = mask_facts(&m);
        assert_eq!(f.count, 2);
        let p = template_prompts("polyp", &f);
        assert_eq!(p["p1"], PromptValue::One("polyp".into()));
        assert_eq!(
            p["p4"],
            PromptValue::One("two medium polyps, located in top right of the image".into())
        );
        let empty = template_prompts("polyp", &mask_facts(&image::GrayImage::new(4, 4)));
        assert_eq!(empty["p1"], PromptValue::One("no polyp".into()));
    }
}
