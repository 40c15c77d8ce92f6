//! gzip (RFC 1952) around miniz_oxide's raw deflate: the header, CRC-32 and
//! trailer are a few lines, so only the compressor comes from a crate.
//! Sans-I/O: bytes in, bytes out. TLSRPT reports are a few KiB, so one
//! call on the whole JSON is enough.

use crate::crc32::crc32;

/// Compresses `data` into one gzip member (no file name, mtime 0, OS
/// "unknown"), at miniz level 6 (the zlib default: reports are small, so
/// the level changes little but time).
pub fn compress(data: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, 6);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(0, data).to_le_bytes());
    // ISIZE: the input length modulo 2^32 (RFC 1952 §2.3.1).
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Decompresses one gzip member as [`compress`] writes it (and as any
/// gzip without optional header fields does), checking CRC and length;
/// `None` for anything else. For tests and `tern tlsrpt`; at most `limit`
/// bytes of output.
pub fn decompress(gz: &[u8], limit: usize) -> Option<Vec<u8>> {
    if gz.len() < 18 || gz[..3] != [0x1f, 0x8b, 8] || gz[3] != 0 {
        return None;
    }
    let body = &gz[10..gz.len() - 8];
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(body, limit).ok()?;
    let trailer = &gz[gz.len() - 8..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    (crc == crc32(0, &out) && len == out.len() as u32).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_values() {
        assert_eq!(crc32(0, b""), 0);
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip() {
        let json = br#"{"organization-name":"x","policies":[]}"#.repeat(50);
        let gz = compress(&json);
        assert!(gz.len() < json.len());
        assert_eq!(decompress(&gz, 1 << 20).as_deref(), Some(&json[..]));
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert_eq!(decompress(&bad, 1 << 20), None);
        assert_eq!(decompress(b"not gzip at all, no", 100), None);
    }

    /// The system's gzip reads what we write (when it is installed).
    #[test]
    fn system_gzip_reads_it() {
        use std::io::Write;
        let data = b"{\"report-id\":\"a\"}\n".repeat(20);
        let Ok(mut child) = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            return;
        };
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&compress(&data)).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }
}
