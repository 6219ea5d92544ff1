//! The audit trail: one append-only table of every step an auditor may ask about (approval
//! transitions, claims, logins, users and keys, reloads, refusals). Each row carries
//! `hash = SHA-256(previous row's hash, "\n", the row's canonical JSON)`, so a row changed,
//! removed or slipped in behind the service's back breaks the chain at that row, and
//! [`Store::verify_audit`] names it. The database itself refuses UPDATE and DELETE (migration
//! 0007's triggers); the chain catches whoever drops the triggers first.
//!
//! Appends run inside the transaction of the change they record, on whichever connection
//! makes it: sqlx's ([`append`]) or the SQLite recorder's own ([`append_sqlite`]). Both take
//! the chain's head row first, which orders concurrent appenders.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::keys::hex;
use super::{Store, StoreError};

/// Who did something: a person, a machine's key, or the service itself (timers, reloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `user`, `key` or `system`.
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            kind: "system".into(),
            id: None,
            name: Some("dispatch-risk".into()),
        }
    }

    pub fn key(id: &str) -> Actor {
        Actor {
            kind: "key".into(),
            id: Some(id.into()),
            name: None,
        }
    }

    pub fn user(id: &str, name: &str) -> Actor {
        Actor {
            kind: "user".into(),
            id: Some(id.into()),
            name: Some(name.into()),
        }
    }
}

/// One step, before the chain gives it a place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub actor: Actor,
    /// The role the actor acted in.
    pub role: Option<String>,
    pub action: String,
    /// What the step was about: (`approval`, its id), (`key`, its id)...
    pub subject: Option<(String, String)>,
    /// JSON texts, as stored.
    pub before: Option<String>,
    pub after: Option<String>,
    pub reason_code: Option<String>,
    pub comment: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEntry {
    pub fn new(at: &str, actor: Actor, action: &str) -> AuditEntry {
        AuditEntry {
            at: at.into(),
            actor,
            role: None,
            action: action.into(),
            subject: None,
            before: None,
            after: None,
            reason_code: None,
            comment: None,
            request_id: None,
        }
    }

    pub fn subject(mut self, kind: &str, id: &str) -> Self {
        self.subject = Some((kind.into(), id.into()));
        self
    }

    pub fn role(mut self, role: Option<&str>) -> Self {
        self.role = role.map(str::to_string);
        self
    }

    pub fn change(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.before = before.map(|v| v.to_string());
        self.after = after.map(|v| v.to_string());
        self
    }

    pub fn reason(mut self, code: Option<&str>, comment: Option<&str>) -> Self {
        self.reason_code = code.map(str::to_string);
        self.comment = comment.map(str::to_string);
        self
    }

    pub fn request(mut self, id: Option<&str>) -> Self {
        self.request_id = id.map(str::to_string);
        self
    }
}

/// The hash before the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The row's hash: its canonical JSON is an array of its columns in table order (fixed by this
/// code, not by a map's key order), chained to the hash of the row before. Written straight
/// into the hash: `verify` hashes every row of the trail.
pub fn chain_hash(previous: &str, seq: i64, e: &AuditEntry) -> String {
    let (subject_kind, subject_id) = match &e.subject {
        Some((k, i)) => (Some(k.as_str()), Some(i.as_str())),
        None => (None, None),
    };
    let canonical = (
        seq,
        &e.at,
        &e.actor.kind,
        &e.actor.id,
        &e.actor.name,
        &e.role,
        &e.action,
        subject_kind,
        subject_id,
        &e.before,
        &e.after,
        &e.reason_code,
        &e.comment,
        &e.request_id,
    );
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(b"\n");
    // Serializing plain values into a hasher cannot fail.
    let _ = serde_json::to_writer(Hashing(&mut h), &canonical);
    hex(&h.finalize())
}

/// Feeds what is written into the hash.
struct Hashing<'a>(&'a mut Sha256);

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const TAKE_HEAD: &str = "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";
const SET_HEAD: &str = "UPDATE audit_head SET hash = $1 WHERE id = 1";
const INSERT: &str = "INSERT INTO audit (seq, at, actor_kind, actor_id, actor_name, role, action, \
     subject_kind, subject_id, before_json, after_json, reason_code, comment, request_id, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// The chained rows of `entries` after the head (`seq` is the head's new number).
fn chained(head_seq: i64, head_hash: String, entries: &[AuditEntry]) -> Vec<(i64, String)> {
    let first = head_seq - entries.len() as i64 + 1;
    let mut previous = head_hash;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seq = first + i as i64;
            previous = chain_hash(&previous, seq, e);
            (seq, previous.clone())
        })
        .collect()
}

/// Appends `entries` in the transaction `conn` is in.
pub async fn append(conn: &mut AnyConnection, entries: &[AuditEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = sqlx::query(TAKE_HEAD)
        .bind(entries.len() as i64)
        .fetch_one(&mut *conn)
        .await?;
    let rows = chained(head.try_get(0)?, head.try_get(1)?, entries);
    for (e, (seq, hash)) in entries.iter().zip(&rows) {
        let (kind, id) = e.subject.clone().unzip();
        sqlx::query(INSERT)
            .bind(*seq)
            .bind(&e.at)
            .bind(&e.actor.kind)
            .bind(&e.actor.id)
            .bind(&e.actor.name)
            .bind(&e.role)
            .bind(&e.action)
            .bind(kind)
            .bind(id)
            .bind(&e.before)
            .bind(&e.after)
            .bind(&e.reason_code)
            .bind(&e.comment)
            .bind(&e.request_id)
            .bind(hash)
            .execute(&mut *conn)
            .await?;
    }
    let last = rows.last().map(|(_, h)| h.clone()).unwrap_or_default();
    sqlx::query(SET_HEAD).bind(last).execute(&mut *conn).await?;
    Ok(())
}

/// [`append`] on the SQLite recorder's connection.
pub fn append_sqlite(tx: &rusqlite::Transaction, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (seq, hash): (i64, String) = tx.query_row(TAKE_HEAD, [entries.len() as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    let rows = chained(seq, hash, entries);
    let mut insert = tx.prepare_cached(INSERT)?;
    for (e, (seq, hash)) in entries.iter().zip(&rows) {
        let (kind, id) = e.subject.clone().unzip();
        insert.execute(rusqlite::params![
            seq,
            e.at,
            e.actor.kind,
            e.actor.id,
            e.actor.name,
            e.role,
            e.action,
            kind,
            id,
            e.before,
            e.after,
            e.reason_code,
            e.comment,
            e.request_id,
            hash,
        ])?;
    }
    let last = rows.last().map(|(_, h)| h.clone()).unwrap_or_default();
    tx.execute(SET_HEAD, [last])?;
    Ok(())
}

/// A stored row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub hash: String,
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub rows: u64,
    /// The first row whose hash does not follow from the row before it, and why.
    pub broken: Option<(i64, String)>,
}

const SELECT: &str = "SELECT seq, at, actor_kind, actor_id, actor_name, role, action, \
    subject_kind, subject_id, before_json, after_json, reason_code, comment, request_id, hash \
    FROM audit";

fn row_of(r: &sqlx::any::AnyRow) -> Result<AuditRow, sqlx::Error> {
    let kind: Option<String> = r.try_get(7)?;
    let id: Option<String> = r.try_get(8)?;
    Ok(AuditRow {
        seq: r.try_get(0)?,
        entry: AuditEntry {
            at: r.try_get(1)?,
            actor: Actor {
                kind: r.try_get(2)?,
                id: r.try_get(3)?,
                name: r.try_get(4)?,
            },
            role: r.try_get(5)?,
            action: r.try_get(6)?,
            subject: kind.zip(id),
            before: r.try_get(9)?,
            after: r.try_get(10)?,
            reason_code: r.try_get(11)?,
            comment: r.try_get(12)?,
            request_id: r.try_get(13)?,
        },
        hash: r.try_get(14)?,
    })
}

/// Rows read per page when walking the whole trail.
const PAGE: i64 = 10_000;

impl Store {
    /// Appends `entries` in a transaction of their own (steps that change nothing else: a
    /// login, a refusal).
    pub async fn audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        append(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The rows about one subject, oldest first.
    pub async fn audit_of(&self, kind: &str, id: &str) -> Result<Vec<AuditRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE subject_kind = $1 AND subject_id = $2 ORDER BY seq"
        ));
        let rows = sqlx::query(sql)
            .bind(kind)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(row_of).collect::<Result<_, _>>()?)
    }

    /// Rows from `after_seq` on (exclusive), at most `limit`, oldest first; `since` keeps those
    /// at or after a time.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3"
        ));
        let rows = sqlx::query(sql)
            .bind(after_seq)
            .bind(since.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(row_of).collect::<Result<_, _>>()?)
    }

    /// Walks the chain from its first row and names the first that does not follow: a hash
    /// that is not the row's, a gap in the numbers, or a head that does not match the last.
    pub async fn verify_audit(&self) -> Result<Verified, StoreError> {
        let mut previous = GENESIS.to_string();
        let mut expected_seq = 1_i64;
        let mut rows = 0_u64;
        loop {
            let page = self.audit_page(expected_seq - 1, None, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for r in &page {
                if r.seq != expected_seq {
                    return Ok(Verified {
                        rows,
                        broken: Some((
                            expected_seq,
                            format!("row {expected_seq} is missing (the next is {})", r.seq),
                        )),
                    });
                }
                let hash = chain_hash(&previous, r.seq, &r.entry);
                if hash != r.hash {
                    return Ok(Verified {
                        rows,
                        broken: Some((
                            r.seq,
                            "its content does not match its hash: it was changed, or a row \
                             before it was"
                                .into(),
                        )),
                    });
                }
                previous = hash;
                expected_seq += 1;
                rows += 1;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let (seq, hash): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
        if seq != expected_seq - 1 || hash != previous {
            return Ok(Verified {
                rows,
                broken: Some((
                    seq,
                    format!(
                        "the chain's head says row {seq}, the table ends at row {}: rows were \
                         removed from its end",
                        expected_seq - 1
                    ),
                )),
            });
        }
        Ok(Verified { rows, broken: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical form is the JSON array of the columns: pinned, since every stored hash
    /// depends on it.
    #[test]
    fn the_canonical_form_is_the_array_of_columns() {
        let e = AuditEntry::new(
            "2026-12-01T00:00:00Z",
            Actor::user("usr_1", "Ann \"A\""),
            "approval.approved",
        )
        .subject("approval", "apr_1")
        .reason(Some("risk_accepted"), Some("ok"));
        let text = serde_json::json!([
            7,
            e.at,
            "user",
            "usr_1",
            "Ann \"A\"",
            null,
            "approval.approved",
            "approval",
            "apr_1",
            null,
            null,
            "risk_accepted",
            "ok",
            null
        ])
        .to_string();
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(b"\n");
        h.update(text.as_bytes());
        let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(chain_hash(GENESIS, 7, &e), expected);
    }

    #[test]
    fn a_changed_field_changes_the_hash_and_so_every_later_one() {
        let e = AuditEntry::new("2026-12-01T00:00:00Z", Actor::system(), "model.reloaded");
        let a = chain_hash(GENESIS, 1, &e);
        assert_eq!(a, chain_hash(GENESIS, 1, &e.clone()));
        let mut changed = e.clone();
        changed.comment = Some("x".into());
        assert_ne!(a, chain_hash(GENESIS, 1, &changed));
        assert_ne!(a, chain_hash(GENESIS, 2, &e));
        assert_ne!(a, chain_hash(&a, 1, &e));
    }
}
