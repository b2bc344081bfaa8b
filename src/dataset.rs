//! Labelled image sets for the demo and evaluation: Fashion-MNIST / MNIST (IDX, gzip or raw), CIFAR-10
//! (the official binary layout) and any image folder with one sub-folder per class.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, RgbImage};

use crate::error::{Error, Result};

pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images and their labels (indices into `class_names`).
pub struct Dataset {
    pub class_names: Vec<String>,
    pub labels: Vec<u16>,
    images: Images,
}

enum Images {
    /// `n x h x w` grey pixels.
    Gray {
        w: u32,
        h: u32,
        pixels: Vec<u8>,
    },
    /// `n x 3 x h x w` planar RGB pixels (CIFAR's layout).
    PlanarRgb {
        w: u32,
        h: u32,
        pixels: Vec<u8>,
    },
    Files(Vec<PathBuf>),
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`, decoded (an image file at no less than `floor`: [`crate::preprocess::decode_for`]).
    pub fn image(&self, i: usize, floor: crate::preprocess::Floor) -> Result<DynamicImage> {
        Ok(match &self.images {
            Images::Gray { w, h, pixels } => {
                let n = (*w * *h) as usize;
                let img =
                    GrayImage::from_raw(*w, *h, pixels[i * n..(i + 1) * n].to_vec()).expect("size");
                DynamicImage::ImageLuma8(img)
            }
            Images::PlanarRgb { w, h, pixels } => {
                let n = (*w * *h) as usize;
                let rec = &pixels[i * 3 * n..(i + 1) * 3 * n];
                let img = RgbImage::from_fn(*w, *h, |x, y| {
                    let p = (y * *w + x) as usize;
                    image::Rgb([rec[p], rec[n + p], rec[2 * n + p]])
                });
                DynamicImage::ImageRgb8(img)
            }
            Images::Files(files) => crate::preprocess::decode_for(&files[i], floor)?,
        })
    }

    /// Indices of the first `k` images of each class, in dataset order (`None`: all).
    pub fn first_per_class(&self, k: Option<usize>) -> Vec<usize> {
        let mut taken = vec![0usize; self.class_names.len()];
        (0..self.len())
            .filter(|&i| {
                let c = self.labels[i] as usize;
                let keep = k.is_none_or(|k| taken[c] < k);
                taken[c] += usize::from(keep);
                keep
            })
            .collect()
    }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::io(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// First existing of `stem` and `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Dataset {
            path: dir.to_path_buf(),
            message: format!("neither {stem} nor {stem}.gz is here"),
        })
}

/// An IDX image file (magic 0x803) and its label file (magic 0x801).
pub fn idx(images: &Path, labels: &Path, class_names: Vec<String>) -> Result<Dataset> {
    let bad = |path: &Path, message: String| Error::Dataset {
        path: path.to_path_buf(),
        message,
    };
    let img = read_maybe_gz(images)?;
    let lab = read_maybe_gz(labels)?;
    let be = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    if img.len() < 16 || be(&img, 0) != 0x803 {
        return Err(bad(
            images,
            "not an IDX image file (magic 0x00000803)".into(),
        ));
    }
    if lab.len() < 8 || be(&lab, 0) != 0x801 {
        return Err(bad(
            labels,
            "not an IDX label file (magic 0x00000801)".into(),
        ));
    }
    let (n, h, w) = (be(&img, 4) as usize, be(&img, 8), be(&img, 12));
    if img.len() != 16 + n * (h * w) as usize {
        return Err(bad(
            images,
            format!(
                "{} bytes, expected {} for {n} images of {h}x{w}",
                img.len(),
                16 + n * (h * w) as usize
            ),
        ));
    }
    if be(&lab, 4) as usize != n || lab.len() != 8 + n {
        return Err(bad(labels, format!("expected {n} labels")));
    }
    let labels: Vec<u16> = lab[8..].iter().map(|&l| l as u16).collect();
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
        return Err(bad(
            images,
            format!("label {l} but only {} classes", class_names.len()),
        ));
    }
    Ok(Dataset {
        class_names,
        labels,
        images: Images::Gray {
            w,
            h,
            pixels: img[16..].to_vec(),
        },
    })
}

/// Fashion-MNIST from a directory holding the four official files (gzip or not).
pub fn fashion_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = if split == Split::Train {
        "train"
    } else {
        "t10k"
    };
    idx(
        &find(dir, &format!("{prefix}-images-idx3-ubyte"))?,
        &find(dir, &format!("{prefix}-labels-idx1-ubyte"))?,
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

/// CIFAR-10 binary records (1 label byte + 3072 planar RGB bytes). `dir` holds `train.bin` / `test.bin`,
/// or the official `data_batch_{1..5}.bin` / `test_batch.bin`.
pub fn cifar10(dir: &Path, split: Split) -> Result<Dataset> {
    let files: Vec<PathBuf> = match split {
        Split::Train if dir.join("train.bin").is_file() => vec![dir.join("train.bin")],
        Split::Train => (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test if dir.join("test.bin").is_file() => vec![dir.join("test.bin")],
        Split::Test => vec![dir.join("test_batch.bin")],
    };
    let (mut labels, mut pixels) = (Vec::new(), Vec::new());
    for f in files {
        let raw = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
        if raw.is_empty() || raw.len() % 3073 != 0 {
            return Err(Error::Dataset {
                path: f,
                message: format!(
                    "{} bytes is not a whole number of 3073-byte CIFAR records",
                    raw.len()
                ),
            });
        }
        for rec in raw.chunks_exact(3073) {
            if rec[0] > 9 {
                return Err(Error::Dataset {
                    path: f,
                    message: format!("label {} is not 0..9", rec[0]),
                });
            }
            labels.push(rec[0] as u16);
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Ok(Dataset {
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        labels,
        images: Images::PlanarRgb {
            w: 32,
            h: 32,
            pixels,
        },
    })
}

/// An image folder: one sub-folder per class (sorted by name), image files inside.
pub fn folder(dir: &Path) -> Result<Dataset> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let (mut names, mut labels, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for c in &classes {
        let found = crate::embed::collect_images(std::slice::from_ref(c))?;
        labels.extend(std::iter::repeat_n(names.len() as u16, found.len()));
        files.extend(found);
        names.push(
            c.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    if names.is_empty() {
        return Err(Error::Dataset {
            path: dir.to_path_buf(),
            message: "no class sub-folders".into(),
        });
    }
    Ok(Dataset {
        class_names: names,
        labels,
        images: Images::Files(files),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Floor;

    #[test]
    fn reads_idx_files_it_writes_gzipped_and_raw() {
        let dir = tempfile::tempdir().unwrap();
        // 3 images of 2x2, labels 2, 0, 1.
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let lab = vec![0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 1];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &img).unwrap();
        std::fs::write(
            dir.path().join("t10k-images-idx3-ubyte.gz"),
            gz.finish().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), &lab).unwrap();
        let ds = fashion_mnist(dir.path(), Split::Test).unwrap();
        assert_eq!(ds.labels, vec![2, 0, 1]);
        assert_eq!(
            ds.image(1, Floor::Full).unwrap().to_luma8().into_raw(),
            vec![5, 6, 7, 8]
        );
        assert_eq!(ds.first_per_class(Some(1)), vec![0, 1, 2]);
        // A truncated image file is an error, not a panic.
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), &img[..20]).unwrap();
        assert!(fashion_mnist(dir.path(), Split::Test).is_err());
    }

    #[test]
    fn reads_cifar_records_as_planar_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![7u8];
        rec.extend(std::iter::repeat_n(10u8, 1024));
        rec.extend(std::iter::repeat_n(20u8, 1024));
        rec.extend(std::iter::repeat_n(30u8, 1024));
        std::fs::write(dir.path().join("test.bin"), &rec).unwrap();
        let ds = cifar10(dir.path(), Split::Test).unwrap();
        assert_eq!(ds.labels, vec![7]);
        assert_eq!(
            ds.image(0, Floor::Full)
                .unwrap()
                .to_rgb8()
                .get_pixel(5, 9)
                .0,
            [10, 20, 30]
        );
        std::fs::write(dir.path().join("test.bin"), &rec[..3000]).unwrap();
        assert!(cifar10(dir.path(), Split::Test).is_err());
    }
}
