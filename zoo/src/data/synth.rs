//! Deterministic synthetic data sets in the medvlsm layout (`vlsm-zoo data synth`).
//!
//! Domains:
//! * `shapes`: open-domain referring segmentation, the stand-in for CLIPSeg's pretraining data:
//!   2–4 coloured circles, squares and triangles on a textured background; the mask is one of
//!   them and the prompts name it by shape, colour, size and position.
//! * `polyp`: pink-red mucosa texture with specular highlights and a bumpy, shaded blob.
//! * `lesion`: skin tones with an irregular dark-brown region.
//! * `ultrasound`: grey speckle in a fan with a dark hypoechoic region; 20 % "normal" images
//!   have an empty mask and a "no tumor" prompt.
//!
//! Prompts follow medvlsm: `p0` empty, then class, shape, colour, size, count, location, and
//! lists of descriptive sentences (`p7`–`p9`). Sample `i` of a split depends only on
//! (domain, size, seed, split, i).
use super::records::{PromptValue, Record};
use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A synthetic domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Coloured shapes (open-domain referring segmentation).
    Shapes,
    /// Colonoscopy-like polyps.
    Polyp,
    /// Dermoscopy-like skin lesions.
    Lesion,
    /// Breast-ultrasound-like tumours, with normal (empty) cases.
    Ultrasound,
}

impl Domain {
    /// All domains.
    pub const ALL: [Domain; 4] = [
        Domain::Shapes,
        Domain::Polyp,
        Domain::Lesion,
        Domain::Ultrasound,
    ];

    /// Parses a domain name.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                format!("unknown synthetic domain `{name}` (shapes, polyp, lesion, ultrasound)")
            })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Shapes => "shapes",
            Domain::Polyp => "polyp",
            Domain::Lesion => "lesion",
            Domain::Ultrasound => "ultrasound",
        }
    }
}

/// One generated image with its mask and prompts.
pub struct Sample {
    /// RGB image.
    pub image: RgbImage,
    /// Mask, 0 or 255.
    pub mask: GrayImage,
    /// Prompts `p0..p9`.
    pub prompts: BTreeMap<String, PromptValue>,
}

/// Generates sample `index` of `split`.
pub fn generate(domain: Domain, size: usize, seed: u64, split: &str, index: usize) -> Sample {
    let split_id = match split {
        "train" => 1u64,
        "val" => 2,
        "test" => 3,
        _ => 4,
    };
    let mut rng =
        StdRng::seed_from_u64(seed ^ (split_id << 56) ^ ((index as u64) << 8) ^ domain as u64);
    let mut c = Canvas::new(size);
    match domain {
        Domain::Shapes => shapes(&mut c, &mut rng),
        Domain::Polyp => polyp(&mut c, &mut rng),
        Domain::Lesion => lesion(&mut c, &mut rng),
        Domain::Ultrasound => ultrasound(&mut c, &mut rng),
    }
}

/// Float RGB canvas with a mask.
struct Canvas {
    n: usize,
    rgb: Vec<[f32; 3]>,
    mask: Vec<bool>,
}

impl Canvas {
    fn new(n: usize) -> Self {
        Self {
            n,
            rgb: vec![[0.0; 3]; n * n],
            mask: vec![false; n * n],
        }
    }

    fn finish(self, prompts: BTreeMap<String, PromptValue>) -> Sample {
        let n = self.n as u32;
        let image = RgbImage::from_fn(n, n, |x, y| {
            let p = self.rgb[(y * n + x) as usize];
            Rgb(p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        });
        let mask = GrayImage::from_fn(n, n, |x, y| {
            Luma([if self.mask[(y * n + x) as usize] {
                255
            } else {
                0
            }])
        });
        Sample {
            image,
            mask,
            prompts,
        }
    }
}

/// Smooth value noise in [0, 1] at (x, y) with cells of `scale` pixels.
fn noise(seed: u32, x: f32, y: f32, scale: f32) -> f32 {
    fn hash(seed: u32, x: i32, y: i32) -> f32 {
        let mut h = seed.wrapping_mul(0x9E37_79B9)
            ^ (x as u32).wrapping_mul(0x85EB_CA6B)
            ^ (y as u32).wrapping_mul(0xC2B2_AE35);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        h ^= h >> 12;
        (h & 0xFFFF) as f32 / 65535.0
    }
    let (fx, fy) = (x / scale, y / scale);
    let (ix, iy) = (fx.floor() as i32, fy.floor() as i32);
    let (tx, ty) = (fx - ix as f32, fy - iy as f32);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = hash(seed, ix, iy) + (hash(seed, ix + 1, iy) - hash(seed, ix, iy)) * sx;
    let b = hash(seed, ix, iy + 1) + (hash(seed, ix + 1, iy + 1) - hash(seed, ix, iy + 1)) * sx;
    a + (b - a) * sy
}

fn fractal(seed: u32, x: f32, y: f32, scale: f32) -> f32 {
    (noise(seed, x, y, scale) * 0.55
        + noise(seed + 1, x, y, scale / 2.0) * 0.3
        + noise(seed + 2, x, y, scale / 4.0) * 0.15)
        .clamp(0.0, 1.0)
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Words for an object of normalised radius `r` (fraction of the side).
fn size_word(r: f32) -> &'static str {
    if r < 0.11 {
        "small"
    } else if r < 0.19 {
        "medium"
    } else {
        "large"
    }
}

/// "top left", "center", … from a centroid in pixels.
fn location(cx: f32, cy: f32, n: usize) -> String {
    let third = |v: f32| ((v / n as f32) * 3.0).floor().clamp(0.0, 2.0) as usize;
    let row = ["top", "", "bottom"][third(cy)];
    let col = ["left", "", "right"][third(cx)];
    match (row, col) {
        ("", "") => "center".into(),
        ("", c) => c.into(),
        (r, "") => r.into(),
        (r, c) => format!("{r} {c}"),
    }
}

fn count_word(k: usize) -> &'static str {
    ["no", "one", "two", "three", "four"][k.min(4)]
}

/// The medvlsm prompt ladder for one described object.
struct Description<'a> {
    class: &'a str,
    shape: &'a str,
    colour: &'a str,
    size: &'a str,
    count: usize,
    location: String,
    definition: [&'a str; 3],
}

fn prompt_ladder(d: &Description) -> BTreeMap<String, PromptValue> {
    let one = |s: String| PromptValue::One(s);
    let p5 = format!(
        "{} {} {} {} {}",
        count_word(d.count),
        d.size,
        d.colour,
        d.shape,
        d.class
    );
    let mut p = BTreeMap::new();
    p.insert("p0".into(), one(String::new()));
    p.insert("p1".into(), one(d.class.to_string()));
    p.insert("p2".into(), one(format!("{} {}", d.shape, d.class)));
    p.insert(
        "p3".into(),
        one(format!("{} {} {}", d.colour, d.shape, d.class)),
    );
    p.insert(
        "p4".into(),
        one(format!("{} {} {} {}", d.size, d.colour, d.shape, d.class)),
    );
    p.insert("p5".into(), one(p5.clone()));
    p.insert(
        "p6".into(),
        one(format!("{p5}, located in {} of the image", d.location)),
    );
    p.insert(
        "p7".into(),
        PromptValue::Many(
            d.definition
                .iter()
                .map(|s| format!("{} which is {s}", d.class))
                .collect(),
        ),
    );
    p.insert(
        "p8".into(),
        PromptValue::Many(vec![
            format!("a {} {} {} in the image", d.colour, d.shape, d.class),
            format!("{} {} that looks {}", d.size, d.class, d.colour),
        ]),
    );
    p.insert(
        "p9".into(),
        PromptValue::Many(vec![
            format!("the {} {} at the {}", d.colour, d.class, d.location),
            format!(
                "{} {} {} on the {} side",
                count_word(d.count),
                d.size,
                d.class,
                d.location
            ),
        ]),
    );
    p
}

const COLOURS: [(&str, [f32; 3]); 6] = [
    ("red", [0.85, 0.12, 0.1]),
    ("green", [0.15, 0.7, 0.2]),
    ("blue", [0.15, 0.25, 0.85]),
    ("yellow", [0.92, 0.85, 0.15]),
    ("purple", [0.55, 0.2, 0.7]),
    ("white", [0.95, 0.95, 0.95]),
];

fn inside_shape(kind: usize, dx: f32, dy: f32, r: f32) -> bool {
    match kind {
        0 => dx * dx + dy * dy <= r * r,
        1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
        _ => {
            // upward equilateral triangle with circumradius r: apex (0, -r), base at y = r/2
            dy >= -r && dy <= r * 0.5 && dx.abs() <= (dy + r) / 3f32.sqrt()
        }
    }
}

fn shapes(c: &mut Canvas, rng: &mut StdRng) -> Sample {
    let n = c.n as f32;
    let seed: u32 = rng.random();
    let (bg1, bg2) = (
        [
            rng.random_range(0.2..0.6),
            rng.random_range(0.2..0.6),
            rng.random_range(0.2..0.6),
        ],
        [rng.random_range(0.3..0.8); 3],
    );
    for y in 0..c.n {
        for x in 0..c.n {
            c.rgb[y * c.n + x] = mix(bg1, bg2, fractal(seed, x as f32, y as f32, n / 4.0));
        }
    }
    let count = rng.random_range(2..=4usize);
    let mut colours: Vec<usize> = (0..COLOURS.len()).collect();
    let mut objects = Vec::new();
    for _ in 0..count {
        let ci = colours.remove(rng.random_range(0..colours.len()));
        let r = rng.random_range(0.07..0.24) * n;
        let (cx, cy) = (rng.random_range(r..n - r), rng.random_range(r..n - r));
        objects.push((rng.random_range(0..3usize), ci, r, cx, cy));
    }
    let target = rng.random_range(0..count);
    for (i, &(kind, ci, r, cx, cy)) in objects.iter().enumerate() {
        for y in 0..c.n {
            for x in 0..c.n {
                if inside_shape(kind, x as f32 - cx, y as f32 - cy, r) {
                    let shade = 0.85 + 0.15 * noise(i as u32 + seed, x as f32, y as f32, 6.0);
                    c.rgb[y * c.n + x] = COLOURS[ci].1.map(|v| v * shade);
                    c.mask[y * c.n + x] = i == target;
                }
            }
        }
    }
    let (kind, ci, r, cx, cy) = objects[target];
    let noun = ["circle", "square", "triangle"][kind];
    let adj = ["round", "boxy", "pointed"][kind];
    let prompts = prompt_ladder(&Description {
        class: noun,
        shape: adj,
        colour: COLOURS[ci].0,
        size: size_word(r / n),
        count: 1,
        location: location(cx, cy, c.n),
        definition: [
            "a flat geometric shape",
            "a coloured figure",
            "one of several shapes in the picture",
        ],
    });
    std::mem::replace(c, Canvas::new(0)).finish(prompts)
}

/// A bumpy blob: radius modulated by a few sinusoids. (The phase range 0..6.28 is part of the
/// deterministic generator: `TAU` would change every generated data set.)
#[allow(clippy::approx_constant)]
fn blob(rng: &mut StdRng, base: f32, bumpiness: f32) -> impl Fn(f32, f32) -> bool + use<> {
    let waves: Vec<(f32, f32, f32)> = (0..4)
        .map(|k| {
            (
                rng.random_range(2.0..7.0f32).floor() + k as f32,
                rng.random_range(0.0..6.28f32),
                rng.random_range(0.0..bumpiness),
            )
        })
        .collect();
    let stretch = rng.random_range(0.7..1.3f32);
    move |dx: f32, dy: f32| {
        let (dx, dy) = (dx * stretch, dy / stretch);
        let angle = dy.atan2(dx);
        let radius = base
            * (1.0
                + waves
                    .iter()
                    .map(|(f, p, a)| a * (f * angle + p).sin())
                    .sum::<f32>());
        dx * dx + dy * dy <= radius * radius
    }
}

fn polyp(c: &mut Canvas, rng: &mut StdRng) -> Sample {
    let n = c.n as f32;
    let seed: u32 = rng.random();
    let (dark, light) = ([0.55, 0.12, 0.12], [0.93, 0.55, 0.5]);
    let r = rng.random_range(0.09..0.26) * n;
    let (cx, cy) = (rng.random_range(r..n - r), rng.random_range(r..n - r));
    let shape = blob(rng, r, 0.12);
    let tone = rng.random_range(0.0..1.0f32);
    for y in 0..c.n {
        for x in 0..c.n {
            let (fx, fy) = (x as f32, y as f32);
            let vignette =
                1.0 - 0.5 * (((fx - n / 2.0).powi(2) + (fy - n / 2.0).powi(2)).sqrt() / n);
            let mut p = mix(dark, light, fractal(seed, fx, fy, n / 5.0)).map(|v| v * vignette);
            let (dx, dy) = (fx - cx, fy - cy);
            if shape(dx, dy) {
                let light_dir =
                    1.0 - ((dx + r * 0.4).powi(2) + (dy + r * 0.4).powi(2)).sqrt() / (2.0 * r);
                p = mix(
                    [0.75, 0.3 + 0.2 * tone, 0.3],
                    [0.98, 0.75, 0.65],
                    light_dir.clamp(0.0, 1.0) * 0.8,
                );
                c.mask[y * c.n + x] = true;
            }
            if noise(seed + 7, fx, fy, 3.0) > 0.93 {
                p = [1.0, 1.0, 0.97]; // specular highlight
            }
            c.rgb[y * c.n + x] = p;
        }
    }
    let prompts = prompt_ladder(&Description {
        class: "polyp",
        shape: if r / n > 0.2 { "oval" } else { "round" },
        colour: if tone > 0.5 { "pink" } else { "red" },
        size: size_word(r / n),
        count: 1,
        location: location(cx, cy, c.n),
        definition: [
            "a growth of tissue on the colon lining",
            "a small bump protruding from the bowel wall",
            "an abnormal clump of cells in the intestine",
        ],
    });
    std::mem::replace(c, Canvas::new(0)).finish(prompts)
}

fn lesion(c: &mut Canvas, rng: &mut StdRng) -> Sample {
    let n = c.n as f32;
    let seed: u32 = rng.random();
    let skin = [
        rng.random_range(0.75..0.95),
        rng.random_range(0.55..0.75),
        rng.random_range(0.45..0.62),
    ];
    let r = rng.random_range(0.12..0.3) * n;
    let (cx, cy) = (
        rng.random_range(n * 0.3..n * 0.7),
        rng.random_range(n * 0.3..n * 0.7),
    );
    let shape = blob(rng, r, 0.2);
    let darkness = rng.random_range(0.0..1.0f32);
    for y in 0..c.n {
        for x in 0..c.n {
            let (fx, fy) = (x as f32, y as f32);
            let mut p = skin.map(|v| v * (0.9 + 0.1 * fractal(seed, fx, fy, n / 6.0)));
            let ragged = (noise(seed + 3, fx, fy, n / 12.0) - 0.5) * r * 0.5;
            if shape(fx - cx + ragged, fy - cy - ragged) {
                let t = fractal(seed + 5, fx, fy, n / 10.0);
                p = mix(
                    [0.35 - 0.15 * darkness, 0.2 - 0.1 * darkness, 0.12],
                    [0.55, 0.35, 0.22],
                    t,
                );
                c.mask[y * c.n + x] = true;
            }
            if noise(seed + 9, fx, fy, 2.0) > 0.97 {
                p = p.map(|v| v * 0.6); // hair and pores
            }
            c.rgb[y * c.n + x] = p;
        }
    }
    let prompts = prompt_ladder(&Description {
        class: "skin lesion",
        shape: "irregular",
        colour: if darkness > 0.5 {
            "dark brown"
        } else {
            "brown"
        },
        size: size_word(r / n),
        count: 1,
        location: location(cx, cy, c.n),
        definition: [
            "a patch of skin that looks different from its surroundings",
            "a pigmented spot on the skin",
            "an area of abnormal skin growth",
        ],
    });
    std::mem::replace(c, Canvas::new(0)).finish(prompts)
}

fn ultrasound(c: &mut Canvas, rng: &mut StdRng) -> Sample {
    let n = c.n as f32;
    let seed: u32 = rng.random();
    let normal = rng.random_range(0.0..1.0f32) < 0.2;
    let r = rng.random_range(0.08..0.2) * n;
    let (cx, cy) = (
        rng.random_range(n * 0.3..n * 0.7),
        rng.random_range(n * 0.35..n * 0.75),
    );
    let shape = blob(rng, r, 0.08);
    for y in 0..c.n {
        for x in 0..c.n {
            let (fx, fy) = (x as f32, y as f32);
            let in_fan = fy > n * 0.05 && (fx - n / 2.0).abs() < (fy - n * 0.02) * 0.9;
            let speckle = noise(seed, fx, fy, 1.3) * noise(seed + 1, fx, fy, 2.1);
            let tissue = 0.25 + 0.35 * fractal(seed + 2, fx, fy, n / 6.0);
            let mut v = if in_fan {
                tissue * (0.5 + speckle)
            } else {
                0.0
            };
            if in_fan && !normal && shape(fx - cx, fy - cy) {
                v = 0.05 + 0.1 * speckle;
                c.mask[y * c.n + x] = true;
            }
            c.rgb[y * c.n + x] = [v; 3];
        }
    }
    let prompts = if normal {
        let mut p = BTreeMap::new();
        p.insert("p0".into(), PromptValue::One(String::new()));
        for (i, s) in [
            "no tumor",
            "no tumor in the breast",
            "no tumor in the breast ultrasound image",
            "normal breast tissue",
        ]
        .iter()
        .enumerate()
        {
            p.insert(format!("p{}", i + 1), PromptValue::One(s.to_string()));
        }
        p
    } else {
        prompt_ladder(&Description {
            class: "tumor",
            shape: "oval",
            colour: "dark",
            size: size_word(r / n),
            count: 1,
            location: location(cx, cy, c.n),
            definition: [
                "a hypoechoic mass in the breast",
                "a dark region in the ultrasound image",
                "an abnormal lump of breast tissue",
            ],
        })
    };
    std::mem::replace(c, Canvas::new(0)).finish(prompts)
}

/// Names of sample `i`: image and mask files.
pub fn file_names(split: &str, index: usize) -> (String, String) {
    (
        format!("{split}_{index:05}.png"),
        format!("{split}_{index:05}.png"),
    )
}

/// The record of a generated sample.
pub fn record(split: &str, index: usize, sample: &Sample) -> Record {
    let (img_name, mask_name) = file_names(split, index);
    Record {
        img_name,
        mask_name,
        prompts: sample.prompts.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_masks_are_binary() {
        for domain in Domain::ALL {
            let a = generate(domain, 48, 7, "train", 3);
            let b = generate(domain, 48, 7, "train", 3);
            assert_eq!(a.image, b.image, "{domain:?}");
            assert_eq!(a.mask, b.mask);
            assert!(a.mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
            let other = generate(domain, 48, 7, "train", 4);
            assert_ne!(a.image, other.image, "{domain:?}: samples differ");
        }
    }

    #[test]
    fn objects_are_present_and_prompts_follow_the_ladder() {
        let s = generate(Domain::Polyp, 64, 1, "val", 0);
        assert!(s.mask.pixels().filter(|p| p.0[0] == 255).count() > 50);
        assert_eq!(s.prompts["p1"], PromptValue::One("polyp".into()));
        assert!(matches!(&s.prompts["p6"], PromptValue::One(t) if t.contains("located in")));
        assert_eq!(s.prompts["p0"], PromptValue::One(String::new()));
    }

    #[test]
    fn ultrasound_has_normal_cases_with_empty_masks() {
        let normal = (0..40)
            .map(|i| generate(Domain::Ultrasound, 32, 3, "train", i))
            .filter(|s| s.mask.pixels().all(|p| p.0[0] == 0))
            .collect::<Vec<_>>();
        assert!(!normal.is_empty());
        assert!(
            matches!(&normal[0].prompts["p1"], PromptValue::One(t) if t.starts_with("no tumor"))
        );
    }
}
