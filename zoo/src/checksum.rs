//! Payload checksums (CRC-32) of the files a run reads back: adapter checkpoints carry theirs in
//! the safetensors metadata, the optimizer state in a `.crc32` file beside it. A mismatch on load
//! is an error naming the file; a file written before checksums existed loads as before.
use std::path::{Path, PathBuf};

/// Safetensors metadata key holding the CRC-32 (8 hex digits) of the tensor data.
pub const SAFETENSORS_KEY: &str = "vlsm_zoo.crc32";

/// The header length, header and tensor data of safetensors `bytes`.
fn split_safetensors(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (len, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or("shorter than a safetensors header")?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|e| e.to_string())?;
    if len > rest.len() {
        return Err(format!(
            "header length {len} exceeds the file ({} bytes)",
            bytes.len()
        ));
    }
    Ok(rest.split_at(len))
}

/// `bytes` (a safetensors file) with the CRC-32 of its tensor data added to the metadata; the
/// data is unchanged.
pub fn seal_safetensors(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (header, data) = split_safetensors(bytes)?;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    let meta = header
        .entry("__metadata__")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let serde_json::Value::Object(meta) = meta else {
        return Err("`__metadata__` is not an object".into());
    };
    meta.insert(
        SAFETENSORS_KEY.into(),
        format!("{:08x}", crc32fast::hash(data)).into(),
    );
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    // The data must start at a multiple of 8 bytes.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// Checks the tensor data of safetensors `bytes` against the CRC-32 in their metadata (files
/// without one pass).
pub fn verify_safetensors(bytes: &[u8]) -> Result<(), String> {
    let (header, data) = split_safetensors(bytes)?;
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    let Some(stored) = header["__metadata__"][SAFETENSORS_KEY].as_str() else {
        return Ok(());
    };
    let actual = format!("{:08x}", crc32fast::hash(data));
    if stored == actual {
        Ok(())
    } else {
        Err(format!(
            "the tensor data fails its checksum (stored {stored}, computed {actual}): the file is \
             corrupt"
        ))
    }
}

/// The checksum file beside `path`.
pub fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".crc32");
    path.with_file_name(name)
}

/// The CRC-32 of `path`'s contents, as 8 hex digits.
pub fn file_crc(path: &Path) -> std::io::Result<String> {
    Ok(format!("{:08x}", crc32fast::hash(&std::fs::read(path)?)))
}

/// Checks `path` against its [`sidecar`] (a file without one passes).
pub fn verify_file(path: &Path) -> Result<(), String> {
    let Ok(stored) = std::fs::read_to_string(sidecar(path)) else {
        return Ok(());
    };
    let actual = file_crc(path).map_err(|e| e.to_string())?;
    if stored.trim() == actual {
        Ok(())
    } else {
        Err(format!(
            "{} fails its checksum (stored {}, computed {actual}): the file is corrupt",
            path.display(),
            stored.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal safetensors file: one f32 tensor of two values.
    fn tiny() -> Vec<u8> {
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  "#;
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header);
        out.extend_from_slice(&1.0f32.to_le_bytes());
        out.extend_from_slice(&2.0f32.to_le_bytes());
        out
    }

    #[test]
    fn a_sealed_file_verifies_and_a_flipped_data_byte_does_not() {
        let sealed = seal_safetensors(&tiny()).unwrap();
        assert!(verify_safetensors(&tiny()).is_ok(), "no checksum: passes");
        assert!(verify_safetensors(&sealed).is_ok());
        let (header, data) = split_safetensors(&sealed).unwrap();
        assert_eq!(header.len() % 8, 0);
        assert_eq!(data, &tiny()[tiny().len() - 8..], "data unchanged");
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let err = verify_safetensors(&flipped).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        let st = safetensors::SafeTensors::deserialize(&sealed).expect("still safetensors");
        assert_eq!(st.tensor("w").unwrap().data().len(), 8);
    }

    #[test]
    fn a_sidecar_catches_a_changed_file() {
        let dir = std::env::temp_dir().join(format!("vlsm-crc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("optim.bpk");
        std::fs::write(&file, b"state").unwrap();
        assert!(verify_file(&file).is_ok(), "no sidecar: passes");
        std::fs::write(sidecar(&file), file_crc(&file).unwrap()).unwrap();
        assert!(verify_file(&file).is_ok());
        std::fs::write(&file, b"statf").unwrap();
        assert!(verify_file(&file).unwrap_err().contains("optim.bpk"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
