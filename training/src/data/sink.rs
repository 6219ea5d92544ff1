//! Frames written one after another into one CSV or Parquet file (by extension), so that a
//! command producing rows a block at a time never holds its whole output.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::io::csv::write::BatchedWriter as CsvBatched;
use polars::io::parquet::write::BatchedWriter as ParquetBatched;
use polars::prelude::*;

use super::chunks::is_parquet;
use crate::error::{Error, Result};

pub struct FrameSink {
    path: PathBuf,
    writer: Option<Writer>,
}

enum Writer {
    Csv(CsvBatched<BufWriter<File>>),
    Parquet(Box<ParquetBatched<File>>),
}

impl FrameSink {
    /// A sink writing `path`; the file is created with the first frame (whose schema every
    /// later frame shares).
    pub fn new(path: &Path) -> Self {
        FrameSink {
            path: path.to_path_buf(),
            writer: None,
        }
    }

    pub fn write(&mut self, df: &mut DataFrame) -> Result<()> {
        let path = self.path.clone();
        let err = |source| Error::Polars {
            context: format!("writing {}", path.display()),
            source,
        };
        if self.writer.is_none() {
            let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
            let schema = df.schema().as_ref().clone();
            self.writer = Some(if is_parquet(&path) {
                Writer::Parquet(Box::new(
                    ParquetWriter::new(file).batched(&schema).map_err(err)?,
                ))
            } else {
                Writer::Csv(
                    CsvWriter::new(BufWriter::new(file))
                        .batched(&schema)
                        .map_err(err)?,
                )
            });
        }
        // Batched writers want one chunk per column.
        df.rechunk_mut();
        match self.writer.as_mut().expect("created above") {
            Writer::Csv(w) => w.write_batch(df).map_err(err),
            Writer::Parquet(w) => w.write_batch(df).map_err(err),
        }
    }

    /// Completes the file (Parquet's footer); a sink that got no frame writes none.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let err = |source| Error::Polars {
            context: format!("writing {}", path.display()),
            source,
        };
        match self.writer {
            None => Ok(()),
            Some(Writer::Csv(mut w)) => w.finish().map_err(err),
            Some(Writer::Parquet(w)) => w.finish().map(|_| ()).map_err(err),
        }
    }
}
