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

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([b[i], b[i + 1]])
    }
    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    /// Reads an archive back by its central directory, as an unzip tool does.
    fn read_back(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
        let eocd = zip.len() - 22;
        assert_eq!(u32_at(zip, eocd), 0x0605_4b50);
        let (n, mut at) = (u16_at(zip, eocd + 10) as usize, u32_at(zip, eocd + 16) as usize);
        let mut files = Vec::new();
        for _ in 0..n {
            assert_eq!(u32_at(zip, at), 0x0201_4b50);
            let (crc, size, name_len) =
                (u32_at(zip, at + 16), u32_at(zip, at + 24) as usize, u16_at(zip, at + 28) as usize);
            let local = u32_at(zip, at + 42) as usize;
            let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).expect("utf-8");
            assert_eq!(u32_at(zip, local), 0x0403_4b50);
            let data_at = local + 30 + u16_at(zip, local + 26) as usize + u16_at(zip, local + 28) as usize;
            let data = zip[data_at..data_at + size].to_vec();
            assert_eq!(crc32(&data), crc, "{name}");
            files.push((name, data));
            at += 46 + name_len;
        }
        files
    }

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
        assert_eq!(read_back(&zip), files);
        assert_eq!(read_back(&store(&[], Utc::now()).expect("empty")), vec![]);
    }
}
