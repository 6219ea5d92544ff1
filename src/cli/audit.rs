//! `dispatch-risk audit verify|export`: for auditors. `verify` walks the hash chain and names
//! the first row that does not follow (exit code 1 when one does not); `export` writes the
//! trail from a time on as JSON lines or CSV.

use std::io::Write;

use anyhow::Context;

use super::{CliError, CliResult};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The service's database (as for `serve`).
    #[arg(long, env = "DATABASE_URL", global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check every row's hash against the row before it.
    Verify,
    /// Write the rows at or after `--since` to standard output.
    Export {
        /// RFC 3339 time or date (2026-12-01).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
}

const PAGE: i64 = 10_000;

pub fn run(args: Args) -> CliResult {
    super::on_store(args.database_url, async move |store| {
        match args.command {
            Command::Verify => {
                let v = store
                    .verify_audit()
                    .await
                    .context("reading the audit trail")?;
                match v.broken {
                    None => println!("audit trail intact: {} rows", v.rows),
                    Some((seq, why)) => {
                        println!(
                            "audit trail broken at row {seq}: {why} ({} rows before it verified)",
                            v.rows
                        );
                        return Err(CliError::from(anyhow::anyhow!(
                            "the audit trail does not verify"
                        )));
                    }
                }
            }
            Command::Export { since, format } => {
                let since = since
                    .map(|s| since_text(&s))
                    .transpose()
                    .map_err(CliError::input)?;
                export(&store, since.as_deref(), format).await?;
            }
        }
        Ok(())
    })
}

/// A time or date as the stored text compares: RFC 3339 in UTC.
fn since_text(s: &str) -> anyhow::Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(crate::clock::text(t.with_timezone(&chrono::Utc)));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--since `{s}`: expected an RFC 3339 time or a date (2026-12-01)")
    })?;
    Ok(crate::clock::text(
        d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    ))
}

async fn export(store: &Store, since: Option<&str>, format: Format) -> CliResult {
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Jsonl => {
            let mut out = out;
            each_row(store, since, |r| {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            out.flush().context("writing")?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "at",
                "actor_kind",
                "actor_id",
                "actor_name",
                "role",
                "action",
                "subject_kind",
                "subject_id",
                "before",
                "after",
                "reason_code",
                "comment",
                "request_id",
                "hash",
            ])
            .context("writing CSV")?;
            each_row(store, since, |r| {
                let e = &r.entry;
                let (kind, id) = e.subject.clone().unzip();
                let o = |v: &Option<String>| v.clone().unwrap_or_default();
                w.write_record([
                    r.seq.to_string(),
                    e.at.clone(),
                    e.actor.kind.clone(),
                    o(&e.actor.id),
                    o(&e.actor.name),
                    o(&e.role),
                    e.action.clone(),
                    kind.unwrap_or_default(),
                    id.unwrap_or_default(),
                    o(&e.before),
                    o(&e.after),
                    o(&e.reason_code),
                    o(&e.comment),
                    o(&e.request_id),
                    r.hash.clone(),
                ])?;
                Ok(())
            })
            .await?;
            w.flush().context("writing CSV")?;
        }
    }
    Ok(())
}

/// Calls `f` on every row at or after `since`, in order, a page at a time.
async fn each_row(
    store: &Store,
    since: Option<&str>,
    mut f: impl FnMut(&crate::store::audit::AuditRow) -> anyhow::Result<()>,
) -> CliResult {
    let mut after = 0;
    loop {
        let page = store
            .audit_page(after, since, PAGE)
            .await
            .context("reading the audit trail")?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        for r in &page {
            f(r).context("writing the export")?;
        }
    }
}
