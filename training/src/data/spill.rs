//! Validated blocks of a table kept on disk between two passes over a file: batch scoring's
//! first pass parses and checks each block once and writes it here, and the second reads the
//! columns back instead of parsing the file again (at ten million rows the second parse cost
//! about as much as the model). The file is unnamed (`tempfile`, in `TMPDIR`), so nothing is
//! left behind whatever ends the process; it takes roughly three quarters of a CSV's size.
//!
//! The layout is the columns' own, little-endian, block after block; it is read only by the
//! process that wrote it, so it carries no version, but every length and offset is checked
//! on the way back, and a file that does not add up is an error, not a panic.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::columns::{Labels, Texts};
use super::table::{CategoricalColumn, NumericColumn, ShipmentTable};
use crate::error::{Error, Result};

/// Blocks being written.
pub struct Spill {
    file: BufWriter<File>,
    blocks: usize,
}

/// Blocks being read back, in the order written.
pub struct SpillReader {
    file: BufReader<File>,
    left: usize,
}

fn spill_error(source: std::io::Error) -> Error {
    Error::io(
        PathBuf::from(format!(
            "{} (temporary file for batch scoring's second pass; TMPDIR sets where)",
            std::env::temp_dir().display()
        )),
        source,
    )
}

fn corrupt(what: &str) -> Error {
    spill_error(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the temporary file does not read back: {what}"),
    ))
}

impl Spill {
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile().map_err(spill_error)?;
        Ok(Spill {
            file: BufWriter::with_capacity(1 << 20, file),
            blocks: 0,
        })
    }

    pub fn push(&mut self, table: &ShipmentTable) -> Result<()> {
        write_table(&mut self.file, table).map_err(spill_error)?;
        self.blocks += 1;
        Ok(())
    }

    /// Everything written, to be read from the start.
    pub fn into_reader(self) -> Result<SpillReader> {
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| spill_error(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        Ok(SpillReader {
            file: BufReader::with_capacity(1 << 20, file),
            left: self.blocks,
        })
    }
}

impl SpillReader {
    /// The next block; `None` after the last.
    pub fn next_block(&mut self) -> Result<Option<ShipmentTable>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        read_table(&mut self.file).map(Some)
    }
}

fn write_table(w: &mut impl Write, t: &ShipmentTable) -> std::io::Result<()> {
    let n = t.len();
    put_u64(w, n as u64)?;
    put_texts(w, &t.shipment_id)?;
    put_words(w, &t.scheduled_date, |v| v.to_le_bytes())?;
    put_words(w, &t.date_deadline, |v| v.to_le_bytes())?;
    let delivered: Vec<u8> = t.delivered_at.iter().map(|d| d.is_some() as u8).collect();
    put_bytes(w, &delivered)?;
    put_words(w, &t.delivered_at, |d| d.unwrap_or_default().to_le_bytes())?;
    for labels in [&t.carrier, &t.warehouse, &t.destination] {
        put_labels(w, labels)?;
    }
    put_u64(w, t.numeric.len() as u64)?;
    for c in &t.numeric {
        put_bytes(w, c.name.as_bytes())?;
        put_words(w, &c.values, |v| v.to_le_bytes())?;
    }
    put_u64(w, t.categorical.len() as u64)?;
    for c in &t.categorical {
        put_bytes(w, c.name.as_bytes())?;
        put_labels(w, &c.values)?;
    }
    put_texts(w, &t.notes)
}

fn read_table(r: &mut impl Read) -> Result<ShipmentTable> {
    let n = get_len(r)?;
    let shipment_id = get_texts(r, n)?;
    let scheduled_date = get_words(r, n, i64::from_le_bytes)?;
    let date_deadline = get_words(r, n, i64::from_le_bytes)?;
    let delivered = get_bytes(r)?;
    let times = get_words(r, n, i64::from_le_bytes)?;
    if delivered.len() != n {
        return Err(corrupt("delivery flags"));
    }
    let delivered_at = times
        .into_iter()
        .zip(delivered)
        .map(|(t, d)| (d != 0).then_some(t))
        .collect();
    let carrier = get_labels(r, n)?;
    let warehouse = get_labels(r, n)?;
    let destination = get_labels(r, n)?;
    let mut numeric = Vec::new();
    for _ in 0..get_len(r)? {
        numeric.push(NumericColumn {
            name: get_string(r)?,
            values: get_words(r, n, f64::from_le_bytes)?,
        });
    }
    let mut categorical = Vec::new();
    for _ in 0..get_len(r)? {
        categorical.push(CategoricalColumn {
            name: get_string(r)?,
            values: get_labels(r, n)?,
        });
    }
    let notes = get_texts(r, n)?;
    Ok(ShipmentTable {
        shipment_id,
        scheduled_date,
        date_deadline,
        delivered_at,
        carrier,
        warehouse,
        destination,
        numeric,
        categorical,
        notes,
    })
}

fn put_u64(w: &mut impl Write, v: u64) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    put_u64(w, b.len() as u64)?;
    w.write_all(b)
}

/// Fixed-width values, through one buffer so a column is one write.
fn put_words<T, const N: usize>(
    w: &mut impl Write,
    values: &[T],
    bytes: impl Fn(&T) -> [u8; N],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * N);
    for v in values {
        buf.extend_from_slice(&bytes(v));
    }
    put_u64(w, values.len() as u64)?;
    w.write_all(&buf)
}

fn put_texts(w: &mut impl Write, t: &Texts) -> std::io::Result<()> {
    let (bytes, ends) = t.parts();
    put_bytes(w, bytes.as_bytes())?;
    put_words(w, ends, |e| e.to_le_bytes())
}

fn put_labels(w: &mut impl Write, l: &Labels) -> std::io::Result<()> {
    let (codes, dict) = l.parts();
    put_u64(w, dict.len() as u64)?;
    for v in dict {
        put_bytes(w, v.as_bytes())?;
    }
    put_words(w, codes, |c| c.to_le_bytes())
}

fn get_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(spill_error)?;
    Ok(u64::from_le_bytes(b))
}

/// A count, bounded so a damaged length cannot ask for all of memory.
fn get_len(r: &mut impl Read) -> Result<usize> {
    const MAX: u64 = 1 << 40;
    match get_u64(r)? {
        v if v <= MAX => Ok(v as usize),
        _ => Err(corrupt("a length out of range")),
    }
}

fn get_bytes(r: &mut impl Read) -> Result<Vec<u8>> {
    let n = get_len(r)?;
    let mut b = Vec::new();
    r.take(n as u64).read_to_end(&mut b).map_err(spill_error)?;
    if b.len() != n {
        return Err(corrupt("a column ends early"));
    }
    Ok(b)
}

fn get_string(r: &mut impl Read) -> Result<String> {
    String::from_utf8(get_bytes(r)?).map_err(|_| corrupt("text that is not UTF-8"))
}

fn get_words<T, const N: usize>(
    r: &mut impl Read,
    rows: usize,
    from: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    if get_len(r)? != rows {
        return Err(corrupt("a column of the wrong length"));
    }
    let mut b = vec![0u8; rows * N];
    r.read_exact(&mut b).map_err(spill_error)?;
    Ok(b.chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks of N bytes")))
        .collect())
}

fn get_texts(r: &mut impl Read, rows: usize) -> Result<Texts> {
    let bytes = get_string(r)?;
    let ends = get_words(r, rows, u64::from_le_bytes)?;
    Texts::from_parts(bytes, ends).ok_or_else(|| corrupt("text offsets"))
}

fn get_labels(r: &mut impl Read, rows: usize) -> Result<Labels> {
    let mut dict = Vec::new();
    for _ in 0..get_len(r)? {
        dict.push(get_string(r)?.into_boxed_str());
    }
    let codes = get_words(r, rows, u32::from_le_bytes)?;
    Labels::from_parts(codes, dict).ok_or_else(|| corrupt("label codes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(offset: usize, n: usize) -> ShipmentTable {
        let ids: Vec<String> = (offset..offset + n).map(|i| format!("S-{i}é")).collect();
        ShipmentTable {
            shipment_id: ids.iter().map(|s| Some(s.as_str())).collect(),
            scheduled_date: (0..n as i64).map(|i| i * 3600 - 7).collect(),
            date_deadline: (0..n as i64).map(|i| i64::MIN + i).collect(),
            delivered_at: (0..n as i64)
                .map(|i| (i % 3 != 0).then_some(i * 7))
                .collect(),
            carrier: (0..n)
                .map(|i| (i % 4 != 1).then_some(["A", "B"][(i + offset) % 2]))
                .collect(),
            warehouse: (0..n).map(|_| "WH").collect(),
            destination: (0..n).map(|i| ["x", "y", "z"][i % 3]).collect(),
            numeric: vec![NumericColumn {
                name: "weight_kg".into(),
                values: (0..n)
                    .map(|i| if i % 5 == 0 { f64::NAN } else { i as f64 / 3.0 })
                    .collect(),
            }],
            categorical: vec![CategoricalColumn {
                name: "tier".into(),
                values: (0..n).map(|i| (i % 2 == 0).then_some("gold")).collect(),
            }],
            notes: (0..n)
                .map(|i| (i % 2 == 1).then_some("late, «wet» pallet"))
                .collect(),
        }
    }

    /// Equal column by column, NaN where NaN was (a table's `==` says NaN != NaN).
    fn same(a: &ShipmentTable, b: &ShipmentTable) -> bool {
        let bits = |t: &ShipmentTable| -> Vec<Vec<u64>> {
            t.numeric
                .iter()
                .map(|c| c.values.iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        let (mut a2, mut b2) = (a.clone(), b.clone());
        a2.numeric.clear();
        b2.numeric.clear();
        a2 == b2 && bits(a) == bits(b)
    }

    #[test]
    fn blocks_read_back_as_written_in_order() {
        let blocks = [block(0, 1000), block(1000, 0), block(1000, 37)];
        let mut spill = Spill::new().unwrap();
        for b in &blocks {
            spill.push(b).unwrap();
        }
        let mut reader = spill.into_reader().unwrap();
        for b in &blocks {
            let back = reader.next_block().unwrap().expect("a block");
            assert!(same(&back, b), "block of {} rows", b.len());
        }
        assert!(reader.next_block().unwrap().is_none());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        write_table(&mut bytes, &block(0, 50)).unwrap();
        // Cut short, and with an id's byte made 0xff (never UTF-8).
        for damaged in [bytes[..bytes.len() - 3].to_vec(), {
            let mut b = bytes.clone();
            let at = 8 + 8 + 4; // past the row count and the ids' length, into the ids
            b[at] = 0xff;
            b
        }] {
            assert!(read_table(&mut damaged.as_slice()).is_err());
        }
        let mut ok = bytes.as_slice();
        assert!(same(&read_table(&mut ok).unwrap(), &block(0, 50)));
    }
}
