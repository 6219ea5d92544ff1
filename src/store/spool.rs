//! The local spool: where answered scores wait, durably, while the shared database
//! (PostgreSQL) is unreachable. An append-only file of frames, one per answered request:
//! `[length u32 LE][CRC-32 u32 LE][JSON of the request's records]`. A group of frames is
//! written and fsync'd before any of its requests is answered; the recorder replays the
//! frames in order once the database is back, then empties the file. Replay writes a score
//! only if its id is not there yet, so a replay cut short by a crash is replayed again from
//! the start without writing anything twice.
//!
//! The file is locked while a process uses it: two instances never share a spool.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::recorder::{Completion, Facts, ScoreRecord, Text, Write};

/// A frame's header: length and checksum.
const HEADER: u64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool {0} is in use by another process")]
    Locked(PathBuf),
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("spool {path}: a frame at byte {at} does not read back: {why}")]
    Corrupt { path: PathBuf, at: u64, why: String },
}

pub struct Spool {
    file: File,
    path: PathBuf,
    /// Bytes written: the next frame goes here.
    end: u64,
    /// Bytes already replayed into the database (not kept on disk: after a restart the whole
    /// file is replayed again, which writes nothing twice).
    replayed: u64,
    max_bytes: u64,
}

impl Spool {
    /// Opens (or creates) the spool at `path`, holding at most `max_bytes`. A frame torn by a
    /// crash while it was written (never acknowledged: frames are synced before their answers
    /// go out) is cut off.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let io_err = |source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        file.try_lock()
            .map_err(|_| SpoolError::Locked(path.to_path_buf()))?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut spool = Spool {
            file,
            path: path.to_path_buf(),
            end: len,
            replayed: 0,
            max_bytes,
        };
        let whole = spool.whole_frames()?;
        if whole < len {
            tracing::warn!(
                spool = %path.display(),
                cut = len - whole,
                "the spool ends in a frame torn by a crash (never acknowledged); cutting it off"
            );
            spool.file.set_len(whole).map_err(io_err)?;
            spool.file.sync_all().map_err(io_err)?;
            spool.end = whole;
        }
        Ok(spool)
    }

    /// Bytes waiting to be replayed.
    pub fn unreplayed(&self) -> u64 {
        self.end - self.replayed
    }

    /// Appends one frame per write and syncs them to disk; all or none, and none when they do
    /// not fit in the bound.
    pub fn append(&mut self, writes: &[&Write]) -> Result<(), SpoolError> {
        let mut bytes = Vec::new();
        for w in writes {
            let body = serde_json::to_vec(&Frame::of(w)).map_err(|e| self.io(e.into()))?;
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        let used = self.end + bytes.len() as u64;
        if used > self.max_bytes {
            return Err(SpoolError::Full {
                used: self.end,
                max: self.max_bytes,
            });
        }
        let written = self
            .file
            .write_all_at(&bytes, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever part made it is past `end` and is overwritten by the next append.
            return Err(self.io(e));
        }
        self.end = used;
        Ok(())
    }

    /// The frames after the replayed ones, up to about `max_rows` records (at least one
    /// frame), and the offset after the last of them.
    pub fn next_frames(&self, max_rows: usize) -> Result<(Vec<Write>, u64), SpoolError> {
        let mut at = self.replayed;
        let mut writes = Vec::new();
        let mut rows = 0;
        while at < self.end && (writes.is_empty() || rows < max_rows) {
            let (body, next) = self.frame_at(at)?;
            let frame: Frame = serde_json::from_slice(&body).map_err(|e| self.corrupt(at, e))?;
            let write = frame.into_write().map_err(|e| self.corrupt(at, e))?;
            rows += write.records.len();
            writes.push(write);
            at = next;
        }
        Ok((writes, at))
    }

    /// Marks everything before `at` as in the database; an emptied spool is truncated.
    pub fn replayed_to(&mut self, at: u64) -> Result<(), SpoolError> {
        self.replayed = at.min(self.end);
        if self.replayed == self.end {
            self.file.set_len(0).map_err(|e| self.io(e))?;
            self.file.sync_all().map_err(|e| self.io(e))?;
            self.end = 0;
            self.replayed = 0;
        }
        Ok(())
    }

    /// The offset after the last whole, checksummed frame.
    fn whole_frames(&self) -> Result<u64, SpoolError> {
        let mut at = 0;
        while at < self.end {
            match self.frame_at(at) {
                Ok((_, next)) => at = next,
                Err(SpoolError::Corrupt { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(at)
    }

    /// The body of the frame at `at` (checksum verified) and the next frame's offset.
    fn frame_at(&self, at: u64) -> Result<(Vec<u8>, u64), SpoolError> {
        if at + HEADER > self.end {
            return Err(self.corrupt(at, "the header is cut short"));
        }
        let mut header = [0u8; HEADER as usize];
        self.file
            .read_exact_at(&mut header, at)
            .map_err(|e| self.io(e))?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let next = at + HEADER + len;
        if next > self.end {
            return Err(self.corrupt(at, "the body is cut short"));
        }
        let mut body = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut body, at + HEADER)
            .map_err(|e| self.io(e))?;
        if crc32fast::hash(&body) != crc {
            return Err(self.corrupt(at, "checksum mismatch"));
        }
        Ok((body, next))
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, at: u64, why: impl ToString) -> SpoolError {
        SpoolError::Corrupt {
            path: self.path.clone(),
            at,
            why: why.to_string(),
        }
    }
}

/// One request's write as the spool keeps it.
#[derive(Serialize, Deserialize)]
struct Frame {
    records: Vec<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completion: Option<(String, String, u16, String)>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    score_id: String,
    shipment_id: String,
    created_at: String,
    endpoint: String,
    request: String,
    response: String,
    model_version: Option<String>,
    policy_version: String,
    source: String,
    risk_band: String,
    delay_risk: f64,
    queue: String,
    requires_approval: bool,
    degraded: bool,
    latency_us: i64,
    api_key_id: Option<String>,
    /// Absent from frames spooled before the facts were kept.
    #[serde(default)]
    facts: Option<FrameFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<Box<super::approvals::ApprovalOp>>,
}

#[derive(Serialize, Deserialize)]
struct FrameFacts {
    scored_carrier: Option<String>,
    warehouse: String,
    destination: String,
    scheduled_date: String,
    date_deadline: String,
}

impl Frame {
    fn of(w: &Write) -> Frame {
        let s = |t: &Text| t.to_string();
        Frame {
            records: w
                .records
                .iter()
                .map(|r| Record {
                    score_id: s(&r.score_id),
                    shipment_id: s(&r.shipment_id),
                    created_at: s(&r.created_at),
                    endpoint: r.endpoint.to_string(),
                    request: s(&r.request),
                    response: s(&r.response),
                    model_version: r.model_version.as_ref().map(s),
                    policy_version: s(&r.policy_version),
                    source: r.source.to_string(),
                    risk_band: r.risk_band.to_string(),
                    delay_risk: r.delay_risk,
                    queue: r.queue.to_string(),
                    requires_approval: r.requires_approval,
                    degraded: r.degraded,
                    latency_us: r.latency_us,
                    api_key_id: r.api_key_id.as_ref().map(s),
                    facts: Some(FrameFacts {
                        scored_carrier: r.facts.scored_carrier.as_ref().map(s),
                        warehouse: s(&r.facts.warehouse),
                        destination: s(&r.facts.destination),
                        scheduled_date: s(&r.facts.scheduled_date),
                        date_deadline: s(&r.facts.date_deadline),
                    }),
                    approval: r.approval.clone(),
                })
                .collect(),
            completion: w
                .completion
                .as_ref()
                .map(|c| (s(&c.owner), s(&c.key), c.status, s(&c.body))),
        }
    }

    fn into_write(self) -> Result<Write, String> {
        let records = self
            .records
            .into_iter()
            .map(|r| {
                let facts = match r.facts {
                    Some(f) => Facts {
                        scored_carrier: f.scored_carrier.map(Text::from),
                        warehouse: f.warehouse.into(),
                        destination: f.destination.into(),
                        scheduled_date: f.scheduled_date.into(),
                        date_deadline: f.date_deadline.into(),
                    },
                    None => super::facts::from_stored(&r.request, &r.response)
                        .ok_or("a spooled score lacks its lane or dates")?,
                };
                Ok(ScoreRecord {
                    score_id: r.score_id.into(),
                    shipment_id: r.shipment_id.into(),
                    created_at: r.created_at.into(),
                    endpoint: word(&r.endpoint, &["score", "batch"])?,
                    request: r.request.into(),
                    response: r.response.into(),
                    model_version: r.model_version.map(Text::from),
                    policy_version: r.policy_version.into(),
                    source: word(&r.source, &["model", "rules"])?,
                    risk_band: word(&r.risk_band, &["low", "medium", "high", "critical"])?,
                    delay_risk: r.delay_risk,
                    queue: word(&r.queue, &["standard", "priority_approval", "exception"])?,
                    requires_approval: r.requires_approval,
                    degraded: r.degraded,
                    latency_us: r.latency_us,
                    api_key_id: r.api_key_id.map(Text::from),
                    facts,
                    approval: r.approval,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Write {
            records,
            completion: self
                .completion
                .map(|(owner, key, status, body)| Completion {
                    owner: owner.into(),
                    key: key.into(),
                    status,
                    body: body.into(),
                }),
        })
    }
}

/// The stored word `s` as the static one records carry.
fn word(s: &str, known: &[&'static str]) -> Result<&'static str, String> {
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .ok_or_else(|| format!("`{s}` is none of {known:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: &str, rows: usize) -> Write {
        let record = |i: usize| ScoreRecord {
            score_id: format!("{id}-{i}").into(),
            shipment_id: format!("WH/OUT/{i}").into(),
            created_at: "2026-12-01T00:00:00.000000Z".into(),
            endpoint: "batch",
            request: "{}".into(),
            response: "{}".into(),
            model_version: Some("v1".into()),
            policy_version: "p".into(),
            source: "model",
            risk_band: "high",
            delay_risk: 0.7,
            queue: "priority_approval",
            requires_approval: true,
            degraded: false,
            latency_us: 12,
            api_key_id: None,
            facts: Facts {
                scored_carrier: Some("DHL".into()),
                warehouse: "WH1".into(),
                destination: "DE-BE".into(),
                scheduled_date: "2026-12-01T08:00:00Z".into(),
                date_deadline: "2026-12-03T18:00:00Z".into(),
            },
            approval: None,
        };
        Write {
            records: (0..rows).map(record).collect(),
            completion: None,
        }
    }

    #[test]
    fn a_frame_spooled_before_the_facts_were_kept_recovers_them_from_its_json() {
        let mut frame = serde_json::to_value(Frame::of(&write("old", 1))).unwrap();
        let record = &mut frame["records"][0];
        record.as_object_mut().unwrap().remove("facts");
        record["request"] = serde_json::json!(
            r#"{"shipment_id":"WH/OUT/0","warehouse":"WH2","destination":"FR-75","scheduled_date":"2026-12-01 09:30:00","date_deadline":"2026-12-02"}"#
        );
        record["response"] = serde_json::json!(r#"{"scored_carrier":"UPS"}"#);
        let old: Frame = serde_json::from_value(frame).unwrap();
        let w = old.into_write().unwrap();
        let f = &w.records[0].facts;
        assert_eq!(f.scored_carrier.as_deref(), Some("UPS"));
        assert_eq!((&*f.warehouse, &*f.destination), ("WH2", "FR-75"));
        assert_eq!(&*f.scheduled_date, "2026-12-01T09:30:00Z");
        assert_eq!(&*f.date_deadline, "2026-12-02T00:00:00Z");
        // And a new frame carries them as they were.
        let w = Frame::of(&write("new", 1)).into_write().unwrap();
        assert_eq!(w.records[0].facts, write("new", 1).records[0].facts);
    }

    #[test]
    fn frames_read_back_in_order_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append(&[&write("a", 2), &write("b", 1)]).unwrap();
        spool.append(&[&write("c", 3)]).unwrap();
        let (frames, at) = spool.next_frames(2).unwrap();
        let ids: Vec<&str> = frames.iter().map(|w| &*w.records[0].score_id).collect();
        assert_eq!(ids, ["a-0"]);
        spool.replayed_to(at).unwrap();
        let (frames, end) = spool.next_frames(100).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].records.len(), 3);
        assert_eq!(frames[1].records[2].queue, "priority_approval");
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(end, len);
        drop(spool);
        // A crash in the middle of a frame: the part written is cut off at the next open.
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all_at(&[9, 0, 0, 0, 1, 2], len).unwrap();
        let mut spool = Spool::open(&path, 1 << 20).unwrap();
        assert_eq!(
            spool.unreplayed(),
            len,
            "a reopened spool replays everything"
        );
        let (frames, end) = spool.next_frames(100).unwrap();
        assert_eq!((frames.len(), end), (3, len));
        spool.replayed_to(end).unwrap();
        assert_eq!(spool.unreplayed(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_spool_refuses_what_does_not_fit_and_one_process_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path, 600).unwrap();
        spool.append(&[&write("a", 1)]).unwrap();
        let used = spool.unreplayed();
        assert!(matches!(
            spool.append(&[&write("b", 1)]),
            Err(SpoolError::Full { used: u, max: 600 }) if u == used
        ));
        assert_eq!(
            spool.unreplayed(),
            used,
            "nothing of a refused frame is kept"
        );
        assert!(matches!(
            Spool::open(&path, 600),
            Err(SpoolError::Locked(_))
        ));
    }
}
