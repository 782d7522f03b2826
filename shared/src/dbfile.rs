//! Is a file on disk plausibly a whole SQLite database? A check of its 100-byte header and length, made before
//! the database is opened: SQLite treats a 0-byte file as a new empty database (a hub would start empty and
//! serve nothing), and a garbage file fails only when a connection is first used, which a connection pool
//! retries until its time-out. Pure: the caller reads the bytes.

/// How many bytes of the file `check` wants to see.
pub const HEADER_LEN: usize = 100;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks the header (`head`: the first `HEADER_LEN` bytes, or fewer if the file is shorter) against the file's
/// length. `wal_in_use`: a non-empty `-wal` file lies beside the database; then the header's page count may run
/// ahead of the file until the next checkpoint, and the length is not compared with it. Returns what is wrong,
/// in words for the person who must restore the file.
pub fn check(head: &[u8], file_len: u64, wal_in_use: bool) -> Result<(), String> {
    if file_len < HEADER_LEN as u64 || head.len() < HEADER_LEN {
        return Err(format!("the file is {file_len} bytes, too short to be a SQLite database"));
    }
    if &head[..16] != MAGIC {
        return Err("the file is not a SQLite database (its header is wrong)".into());
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(format!("the header names an impossible page size ({n})")),
    };
    let change_counter = &head[24..28];
    let valid_for = &head[92..96];
    let pages = u64::from(u32::from_be_bytes([head[28], head[29], head[30], head[31]]));
    // The page count in the header is only meaningful when it was written by the same change as the counter.
    if change_counter == valid_for && pages > 0 && !wal_in_use {
        let expected = pages * page_size;
        if file_len < expected {
            return Err(format!("the file is truncated: {file_len} bytes of {expected}"));
        }
    }
    if !file_len.is_multiple_of(page_size) {
        return Err(format!("the file is {file_len} bytes, not a whole number of {page_size}-byte pages"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size: u16, pages: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&page_size.to_be_bytes());
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[92..96].copy_from_slice(&7u32.to_be_bytes());
        h
    }

    #[test]
    fn whole_databases_pass() {
        assert_eq!(check(&header(4096, 3), 3 * 4096, false), Ok(()));
        // Grown since the header was written (a page more than it says) is fine.
        assert_eq!(check(&header(4096, 3), 4 * 4096, false), Ok(()));
        // With a write-ahead log in use, the header may count pages not yet checkpointed into the file.
        assert_eq!(check(&header(4096, 31), 8 * 4096, true), Ok(()));
    }

    #[test]
    fn damage_is_named() {
        assert!(check(&[], 0, false).unwrap_err().contains("0 bytes"));
        assert!(check(&[b'x'; 100], 4096, true).unwrap_err().contains("not a SQLite database"));
        assert!(check(&header(4096, 10), 5 * 4096, false).unwrap_err().contains("truncated: 20480 bytes of 40960"));
        assert!(check(&header(4096, 10), 40_000, false).unwrap_err().contains("truncated"));
        assert!(check(&header(1000, 1), 1000, false).unwrap_err().contains("page size"));
        assert!(check(&header(4096, 1), 4096 + 17, true).unwrap_err().contains("whole number"));
    }
}
