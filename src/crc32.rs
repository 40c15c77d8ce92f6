//! CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: zlib's and
//! gzip's), table-driven with 1 KiB of constants built at compile time.
//! One copy for the queue file's `check`, the state log's records and the
//! gzip trailer of TLSRPT reports. Sans-I/O.

/// The CRC-32 of `data` continued from `crc` (0 to start):
/// `crc32(crc32(0, a), b) == crc32(0, a ++ b)`. A queue file is checked on
/// every delivery attempt, so the table (not the bitwise loop, ~5 times
/// slower per byte on a router's CPU).
pub fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};
