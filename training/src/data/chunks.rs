//! A history file read as a sequence of frames of string columns, so that a file of any size is
//! parsed by polars a block at a time and never held whole: ten million rows as one frame of
//! strings took ~5 GB before a single value was typed.
//!
//! CSV is cut into blocks of whole records (a newline outside quotes ends one; a quote inside a
//! quoted field is doubled, so the parity of quotes before a newline tells), each parsed with
//! the header in front. Parquet is read a slice of rows at a time.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};

/// CSV bytes parsed per frame: large enough that polars' per-call overhead vanishes, small
/// enough that a frame of strings stays around 150 MB.
const CSV_BLOCK: usize = 48 << 20;
/// Parquet rows per frame.
const PARQUET_ROWS: usize = 250_000;

/// Frames of a history file, in order, with how far through the file they are.
pub struct FrameChunks {
    path: PathBuf,
    kind: Kind,
    /// CSV bytes, or Parquet rows, per frame.
    block: usize,
    /// Whether a frame was returned (an empty file still returns one, with its columns).
    started: bool,
    /// Total bytes (CSV) or rows (Parquet), for progress.
    total: u64,
    done: u64,
}

enum Kind {
    Csv {
        file: File,
        header: Vec<u8>,
        /// Bytes read past the last whole record.
        carry: Vec<u8>,
        eof: bool,
    },
    Parquet {
        file: File,
        metadata: Option<polars::io::parquet::metadata::FileMetadataRef>,
        rows: usize,
        next: usize,
    },
}

pub fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq")
    )
}

fn polars_error(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |source| Error::Polars {
        context: format!("reading {}", path.display()),
        source,
    }
}

/// Opens a file, failing clearly when it is missing or empty.
fn open(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Input(format!("{}: no such file", path.display())),
        _ => Error::io(path, e),
    })?;
    if meta.len() == 0 {
        return Err(Error::Input(format!(
            "{}: the file is empty",
            path.display()
        )));
    }
    Ok((
        File::open(path).map_err(|e| Error::io(path, e))?,
        meta.len(),
    ))
}

impl FrameChunks {
    pub fn open(path: &Path) -> Result<Self> {
        let block = if is_parquet(path) {
            PARQUET_ROWS
        } else {
            CSV_BLOCK
        };
        Self::with_block(path, block)
    }

    /// Frames of `block` CSV bytes or Parquet rows.
    pub fn with_block(path: &Path, block: usize) -> Result<Self> {
        let block = block.max(1);
        let (mut file, len) = open(path)?;
        let kind = if is_parquet(path) {
            let mut reader = ParquetReader::new(file.try_clone().map_err(|e| Error::io(path, e))?);
            let rows = reader.num_rows().map_err(polars_error(path))?;
            let metadata = reader.get_metadata().ok().cloned();
            Kind::Parquet {
                file,
                metadata,
                rows,
                next: 0,
            }
        } else {
            let mut carry = Vec::new();
            let mut eof = false;
            let header = loop {
                if let Some(end) = record_end(&carry, 0) {
                    let rest = carry.split_off(end);
                    break std::mem::replace(&mut carry, rest);
                }
                if eof {
                    break std::mem::take(&mut carry);
                }
                eof = fill(&mut file, &mut carry, 1 << 16).map_err(|e| Error::io(path, e))?;
            };
            Kind::Csv {
                file,
                header,
                carry,
                eof,
            }
        };
        let total = match &kind {
            Kind::Parquet { rows, .. } => *rows as u64,
            Kind::Csv { .. } => len,
        };
        Ok(FrameChunks {
            path: path.to_path_buf(),
            kind,
            block,
            started: false,
            total,
            done: 0,
        })
    }

    /// Bytes (CSV) or rows (Parquet) in the file, and how many of them were read.
    pub fn position(&self) -> (u64, u64) {
        (self.done, self.total)
    }

    /// Whether the unit of [`FrameChunks::position`] is bytes.
    pub fn counts_bytes(&self) -> bool {
        matches!(self.kind, Kind::Csv { .. })
    }

    /// The next frame, every column a string column; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<DataFrame>> {
        let path = self.path.clone();
        let block = self.block;
        let first = !self.started;
        self.started = true;
        match &mut self.kind {
            Kind::Parquet {
                file,
                metadata,
                rows,
                next,
            } => {
                if *next >= *rows && !first {
                    return Ok(None);
                }
                let take = block.min(*rows - *next);
                let mut reader =
                    ParquetReader::new(file.try_clone().map_err(|e| Error::io(&path, e))?)
                        .with_slice(Some((*next, take)));
                if let Some(m) = metadata.clone() {
                    reader.set_metadata(m);
                }
                let df = reader.finish().map_err(polars_error(&path))?;
                *next += take;
                self.done = *next as u64;
                Ok(Some(strings(df).map_err(polars_error(&path))?))
            }
            Kind::Csv {
                file,
                header,
                carry,
                eof,
            } => {
                if *eof && carry.is_empty() {
                    if first {
                        self.done = self.total;
                        return parse_csv(&path, header.clone()).map(Some);
                    }
                    return Ok(None);
                }
                while !*eof && carry.len() < block {
                    *eof =
                        fill(file, carry, block - carry.len()).map_err(|e| Error::io(&path, e))?;
                }
                let cut = if *eof {
                    carry.len()
                } else {
                    match last_record_end(carry) {
                        Some(end) => end,
                        // One record longer than a block: read until it ends.
                        None => loop {
                            *eof = fill(file, carry, block).map_err(|e| Error::io(&path, e))?;
                            if let Some(end) = last_record_end(carry) {
                                break end;
                            }
                            if *eof {
                                break carry.len();
                            }
                        },
                    }
                };
                let rest = carry.split_off(cut);
                let records = std::mem::replace(carry, rest);
                self.done += (records.len() + if first { header.len() } else { 0 }) as u64;
                let mut bytes = Vec::with_capacity(header.len() + records.len());
                bytes.extend_from_slice(header);
                bytes.extend_from_slice(&records);
                drop(records);
                parse_csv(&path, bytes).map(Some)
            }
        }
    }
}

/// Reads up to `want` more bytes onto `buf`; true at the end of the file.
fn fill(file: &mut File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut got = 0;
    while got < want {
        match file.read(&mut buf[start + got..])? {
            0 => {
                buf.truncate(start + got);
                return Ok(true);
            }
            n => got += n,
        }
    }
    buf.truncate(start + got);
    Ok(false)
}

/// The end (one past the newline) of the first record starting at `from`.
fn record_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quotes = 0usize;
    for (i, &b) in bytes[from..].iter().enumerate() {
        if b == b'"' {
            quotes += 1;
        } else if b == b'\n' && quotes.is_multiple_of(2) {
            return Some(from + i + 1);
        }
    }
    None
}

/// The end of the last whole record in `bytes` (which start at a record boundary).
fn last_record_end(bytes: &[u8]) -> Option<usize> {
    // Counting quotes is one vectorised pass; newlines inside quotes are rare, so the last
    // newline usually ends a record and the walk back stops at once.
    let mut quotes = bytes.iter().filter(|&&b| b == b'"').count();
    let mut end = bytes.len();
    while let Some(nl) = memchr::memrchr(b'\n', &bytes[..end]) {
        quotes -= bytes[nl + 1..end].iter().filter(|&&b| b == b'"').count();
        if quotes.is_multiple_of(2) {
            return Some(nl + 1);
        }
        end = nl;
    }
    None
}

fn parse_csv(path: &Path, bytes: Vec<u8>) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|source| {
            Error::Input(format!(
                "{}: not a readable CSV file: {source}",
                path.display()
            ))
        })
}

/// Every column cast to strings, so the import profile decides how each cell is parsed.
fn strings(df: DataFrame) -> PolarsResult<DataFrame> {
    let cols = df
        .columns()
        .iter()
        .map(|c| c.cast(&DataType::String))
        .collect::<PolarsResult<Vec<_>>>()?;
    DataFrame::new(df.height(), cols)
}

/// Reads a whole (small) CSV or Parquet file into one frame of string columns: rate tables and
/// note corpora, whose size is bounded by what a person curates.
pub fn read_frame(path: &Path) -> Result<DataFrame> {
    let mut chunks = FrameChunks::open(path)?;
    let mut out: Option<DataFrame> = None;
    while let Some(df) = chunks.next_frame()? {
        out = Some(match out {
            None => df,
            Some(mut acc) => {
                acc.vstack_mut(&df).map_err(polars_error(path))?;
                acc
            }
        });
    }
    out.ok_or_else(|| Error::Input(format!("{}: the file has no data rows", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_at_newlines_outside_quotes() {
        let text = b"a,b\n\"x\ny\",1\n\"q\"\"\",2\nlast,3";
        assert_eq!(record_end(text, 0), Some(4));
        assert_eq!(
            record_end(text, 4),
            Some(12),
            "the newline inside quotes is data"
        );
        assert_eq!(last_record_end(text), Some(20));
        assert_eq!(last_record_end(b"\"open\nquote"), None);
    }

    #[test]
    fn a_file_read_in_blocks_gives_the_rows_of_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        let mut text = String::from("id,note,n\n");
        for i in 0..200_000 {
            text.push_str(&format!("S{i},\"line one\nline \"\"two\"\", {i}\",{i}\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let mut chunks = FrameChunks::with_block(&path, 1 << 20).unwrap();
        let (mut rows, mut frames, mut last) = (0usize, 0, String::new());
        while let Some(df) = chunks.next_frame().unwrap() {
            frames += 1;
            let ids = df.column("id").unwrap().str().unwrap().clone();
            assert_eq!(ids.get(0), Some(format!("S{rows}").as_str()));
            let note = df
                .column("note")
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .to_string();
            assert_eq!(note, format!("line one\nline \"two\", {rows}"));
            rows += df.height();
            last = ids.get(df.height() - 1).unwrap().to_string();
        }
        assert!(
            frames > 1,
            "the file was read in more than one block ({frames})"
        );
        assert_eq!((rows, last.as_str()), (200_000, "S199999"));
        assert_eq!(chunks.position(), (text.len() as u64, text.len() as u64));
    }
}
