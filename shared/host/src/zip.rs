//! A ZIP archive of small files, stored without compression: what an evidence pack is sent as (every
//! operating system opens one without extra software). No ZIP64: each file and the whole archive stay under
//! 4 GiB, which [`store`] checks.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The CRC-32 (ISO-HDLC) of `bytes`, as ZIP records it.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

/// MS-DOS date and time (local time is not known here: UTC, to the even second).
fn dos_time(t: DateTime<Utc>) -> (u16, u16) {
    let year = t.year().clamp(1980, 2107) as u16;
    let date = ((year - 1980) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    (time, date)
}

/// Too large for a ZIP without ZIP64.
#[derive(Debug, thiserror::Error)]
#[error("{0} is too large for the archive (at most 4 GiB)")]
pub struct TooLarge(pub String);

/// The archive of `files` (name, content), every entry dated `at`, names as given (UTF-8 flag set).
pub fn store(files: &[(String, Vec<u8>)], at: DateTime<Utc>) -> Result<Vec<u8>, TooLarge> {
    let (time, date) = dos_time(at);
    let mut out = Vec::new();
    let mut central = Vec::new();
    let u32_of = |n: usize, what: &str| u32::try_from(n).map_err(|_| TooLarge(what.to_string()));
    for (name, data) in files {
        let offset = u32_of(out.len(), "the archive")?;
        let size = u32_of(data.len(), name)?;
        let name_len = u16::try_from(name.len()).map_err(|_| TooLarge(name.clone()))?;
        let crc = crc32(data);
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0
            v.extend_from_slice(&0x0800u16.to_le_bytes()); // names in UTF-8
            v.extend_from_slice(&0u16.to_le_bytes()); // stored
            v.extend_from_slice(&time.to_le_bytes());
            v.extend_from_slice(&date.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&name_len.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: 2.0
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // no comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk 0
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let entries = u16::try_from(files.len()).map_err(|_| TooLarge("the file count".into()))?;
    let cd_offset = u32_of(out.len(), "the archive")?;
    let cd_size = u32_of(central.len(), "the archive")?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    u32_of(out.len(), "the archive")?;
    Ok(out)
}

/// An archive `read` cannot take apart.
#[derive(Debug, thiserror::Error)]
#[error("not an archive of this kind: {0}")]
pub struct Malformed(pub String);

/// Takes apart an archive as [`store`] writes it (stored entries, no ZIP64), by its central directory, as an
/// unzip tool does; every entry's CRC-32 is checked. Input from elsewhere: every offset is bounds-checked.
pub fn read(zip: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Malformed> {
    let bad = |what: &str| Malformed(what.to_string());
    let u16_at = |i: usize| zip.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |i: usize| zip.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let eocd = zip.len().checked_sub(22).ok_or_else(|| bad("too short"))?;
    if u32_at(eocd) != Some(0x0605_4b50) {
        return Err(bad("no end of central directory (an archive comment is not written by Datum)"));
    }
    let n = u16_at(eocd + 10).ok_or_else(|| bad("end record"))?;
    let mut at = u32_at(eocd + 16).ok_or_else(|| bad("end record"))?;
    let mut files = Vec::with_capacity(n.min(65_535));
    for _ in 0..n {
        if u32_at(at) != Some(0x0201_4b50) {
            return Err(bad("central directory entry"));
        }
        let field = |off: usize| u32_at(at + off).ok_or_else(|| bad("central directory entry"));
        let (method, crc, size) = (u16_at(at + 10).ok_or_else(|| bad("entry"))?, field(16)?, field(24)?);
        let (name_len, extra_len, comment_len) = (
            u16_at(at + 28).ok_or_else(|| bad("entry"))?,
            u16_at(at + 30).ok_or_else(|| bad("entry"))?,
            u16_at(at + 32).ok_or_else(|| bad("entry"))?,
        );
        if method != 0 {
            return Err(bad("a compressed entry"));
        }
        let local = field(42)?;
        let name = zip.get(at + 46..at + 46 + name_len).ok_or_else(|| bad("entry name"))?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad("an entry name that is not UTF-8"))?;
        if u32_at(local) != Some(0x0403_4b50) {
            return Err(bad("local header"));
        }
        let local_names = u16_at(local + 26).zip(u16_at(local + 28)).ok_or_else(|| bad("local header"))?;
        let data_at = local + 30 + local_names.0 + local_names.1;
        let data = zip.get(data_at..data_at + size).ok_or_else(|| bad("entry data past the end"))?;
        if crc32(data) != crc as u32 {
            return Err(Malformed(format!("{name}: its CRC-32 does not match")));
        }
        files.push((name, data.to_vec()));
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn an_archive_reads_back_with_its_names_and_contents() {
        let files = vec![
            ("index.html".to_string(), b"<!doctype html>".to_vec()),
            ("empty.csv".to_string(), Vec::new()),
            ("Prüfung.json".to_string(), vec![0, 1, 2, 255]),
        ];
        let zip = store(&files, Utc::now()).expect("zip");
        assert_eq!(read(&zip).expect("read"), files);
        assert_eq!(read(&store(&[], Utc::now()).expect("empty")).expect("read"), vec![]);
    }

    #[test]
    fn a_damaged_archive_is_an_error_never_a_panic() {
        let files = vec![("a/index.html".to_string(), b"<p>evidence</p>".to_vec()), ("b.csv".into(), b"x,y".to_vec())];
        let zip = store(&files, Utc::now()).expect("zip");
        for cut in 0..zip.len() {
            assert!(read(&zip[..cut]).is_err(), "cut at {cut}");
        }
        // Any single changed byte: an error or an archive read, never a panic (headers' dates and versions are
        // not checked; the pack's manifest signature is what proves the content).
        for i in 0..zip.len() {
            let mut bad = zip.clone();
            bad[i] ^= 0x40;
            let _ = read(&bad);
        }
        let mut data = zip.clone();
        data[30 + "a/index.html".len()] ^= 1;
        assert!(read(&data).expect_err("a changed byte of content").to_string().contains("CRC-32"));
    }
}
