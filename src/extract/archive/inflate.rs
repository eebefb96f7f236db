//! Inflating a zip's CSV entry in one call (pure: the zip's bytes in, the CSV's text out).
//!
//! An archive file's single entry, deflated and no larger than the caller's bound (every daily
//! file, and every monthly file of 1m or coarser klines: a month of 1m is about 6.6 MB of
//! text), inflates with libdeflate into one buffer of exactly the size the zip states, at 1.8x
//! the speed of the zip crate's streaming reader (criterion `archive/inflate_month_1m`: 8.3
//! against 14.7 ms for a month of 1m); its CRC-32 is checked against the zip's, as the
//! streaming reader does. Anything else (a larger entry such as a month of 1s klines, about
//! 350 MB of text; a stored or encrypted entry; a zip whose entry offsets are unknown) is left
//! to the streaming reader, so a large file's text is never held whole.

use std::io::Cursor;

use libdeflater::{DecompressionError, Decompressor};
use zip::{CompressionMethod, ZipArchive};

/// The largest entry [`whole`] inflates in one buffer (64 MiB of text).
pub const WHOLE_MAX: u64 = 64 << 20;

/// Inflate the first entry of `archive` (opened on `zip`) in one call into `text` (its
/// previous contents are replaced; a buffer reused from file to file is written over, not
/// faulted in afresh) and return `true`; or return `false` when the entry is not one this path
/// takes (not deflated, encrypted, larger than `max` bytes, offsets unknown): then read it with
/// the zip crate's streaming reader. An error says why the entry's bytes are corrupt (they do
/// not inflate, inflate to another size than the zip states, or fail the CRC-32).
pub fn whole(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    zip: &[u8],
    max: u64,
    text: &mut Vec<u8>,
) -> Result<bool, String> {
    let entry = archive
        .by_index_raw(0)
        .map_err(|e| format!("cannot open the zip's csv: {e}"))?;
    let (size, packed, crc) = (entry.size(), entry.compressed_size(), entry.crc32());
    let Some(start) = entry.data_start() else {
        return Ok(false);
    };
    if entry.compression() != CompressionMethod::Deflated || entry.encrypted() || size > max {
        return Ok(false);
    }
    drop(entry);
    let data = usize::try_from(start)
        .ok()
        .zip(usize::try_from(packed).ok())
        .and_then(|(s, n)| zip.get(s..s.checked_add(n)?))
        .ok_or_else(|| {
            format!(
                "the csv's {packed} compressed bytes at offset {start} run past the zip's end ({} bytes)",
                zip.len()
            )
        })?;
    // `size <= max`, which fits in memory by construction. A reused buffer keeps its bytes:
    // only its growth is zeroed (the inflate overwrites the first `size` bytes, and `n` below
    // is checked against `size`), not every byte of every file.
    let size_bytes = size as usize;
    if text.len() < size_bytes {
        text.resize(size_bytes, 0);
    } else {
        text.truncate(size_bytes);
    }
    let n = Decompressor::new()
        .deflate_decompress(data, text)
        .map_err(|e| match e {
            DecompressionError::BadData => "cannot inflate the csv: corrupt deflate stream".to_owned(),
            DecompressionError::InsufficientSpace => {
                format!("cannot inflate the csv: it inflates to more than the {size} bytes the zip states")
            }
        })?;
    if n as u64 != size {
        return Err(format!(
            "cannot inflate the csv: it inflates to {n} bytes, the zip states {size}"
        ));
    }
    let found = libdeflater::crc32(text);
    if found != crc {
        return Err(format!(
            "cannot inflate the csv: its CRC-32 is {found:08x}, the zip states {crc:08x}"
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Write as _;
    use std::io::{Read, Write as _};

    fn zip_with(data: &[u8], method: CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file("x.csv", opts).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    /// [`whole`] into a fresh buffer: `Ok(None)` when it leaves the entry to the stream.
    fn inflated(zip: &[u8], max: u64) -> Result<Option<Vec<u8>>, String> {
        let mut a = ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut text = b"left over from the previous file".to_vec();
        Ok(whole(&mut a, zip, max, &mut text)?.then_some(text))
    }

    fn streamed(zip: &[u8]) -> Vec<u8> {
        let mut a = ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut out = Vec::new();
        a.by_index(0).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn csv(rows: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..rows {
            let o = 1_700_000_000_000i64 + i as i64 * 60_000;
            let _ = writeln!(s, "{o},{i}.5,2.0,0.5,1.5,10,{},15,3,5,7.5,0", o + 59_999);
        }
        s.into_bytes()
    }

    #[test]
    fn a_deflated_entry_inflates_whole_to_the_streamed_text() {
        let text = csv(2_000);
        let zip = zip_with(&text, CompressionMethod::Deflated);
        assert_eq!(inflated(&zip, WHOLE_MAX).unwrap().unwrap(), text);
        assert_eq!(streamed(&zip), text);
    }

    #[test]
    fn a_reused_buffer_longer_than_the_entry_holds_exactly_the_entry() {
        let (long, short) = (csv(3_000), csv(1_000));
        let mut text = Vec::new();
        for (rows, want) in [(&long, &long), (&short, &short), (&long, &long)] {
            let zip = zip_with(rows, CompressionMethod::Deflated);
            let mut a = ZipArchive::new(Cursor::new(&zip[..])).unwrap();
            assert!(whole(&mut a, &zip, WHOLE_MAX, &mut text).unwrap());
            assert_eq!(&text, want);
        }
    }

    #[test]
    fn other_entries_are_left_to_the_streaming_reader() {
        let text = csv(100);
        let stored = zip_with(&text, CompressionMethod::Stored);
        assert_eq!(inflated(&stored, WHOLE_MAX).unwrap(), None);
        let deflated = zip_with(&text, CompressionMethod::Deflated);
        let small = text.len() as u64 - 1;
        assert_eq!(
            inflated(&deflated, small).unwrap(),
            None,
            "larger than the bound"
        );
        assert!(inflated(&deflated, small + 1).unwrap().is_some());
    }

    #[test]
    fn corrupt_entries_are_errors_that_say_why() {
        let text = csv(2_000);
        let zip = zip_with(&text, CompressionMethod::Deflated);
        let start = {
            let mut a = ZipArchive::new(Cursor::new(&zip[..])).unwrap();
            a.by_index_raw(0).unwrap().data_start().unwrap() as usize
        };
        // Bytes flipped inside the deflate stream: it no longer inflates, or not to the
        // stated size, or not to the stated CRC-32. Never to other text silently.
        for at in [start + 10, start + 200, start + 1_000] {
            let mut bad = zip.clone();
            bad[at] ^= 0x55;
            let err = inflated(&bad, WHOLE_MAX).unwrap_err();
            assert!(err.starts_with("cannot inflate the csv"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn whole_and_streamed_agree(text in proptest::collection::vec(any::<u8>(), 0..5_000), repeat in 1usize..20) {
            let text = text.repeat(repeat);
            let zip = zip_with(&text, CompressionMethod::Deflated);
                let got = inflated(&zip, WHOLE_MAX).unwrap().unwrap();
            prop_assert_eq!(&got, &text);
            prop_assert_eq!(streamed(&zip), text);
        }
    }
}
