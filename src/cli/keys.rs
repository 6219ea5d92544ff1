//! `dispatch-risk keys create|list|revoke`: API keys in the service's database. `create`
//! prints the new key alone on its last line, so scripts can capture it with `tail -n1`.

use anyhow::Context;

use super::{CliError, CliResult};
use crate::store::audit::AuditEntry;
use crate::store::keys::Role;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// The service's database (as for `serve`).
    #[arg(long, env = "DATABASE_URL", global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a key; the key is printed once, on the last line, and only its hash is stored.
    Create {
        /// What the key is for (e.g. "n8n production").
        #[arg(long)]
        name: String,
        /// workflow, manager, analyst or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Requests per second the key may send; past it the service answers 429 (no limit
        /// without it).
        #[arg(long, value_name = "PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
        rate_limit: Option<u32>,
    },
    /// List keys (ids, names, roles; never the keys).
    List,
    /// Revoke a key by id; it stops working within seconds on every instance.
    Revoke { id: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a role; expected one of {}",
            Role::ALL.map(|r| r.as_str()).join(", ")
        )
    })
}

pub fn run(args: Args) -> CliResult {
    super::on_store(args.database_url, async move |store| {
        match args.command {
            Command::Create {
                name,
                role,
                rate_limit,
            } => {
                if name.trim().is_empty() {
                    return Err(CliError::input(anyhow::anyhow!("--name must not be empty")));
                }
                let (info, secret) = store
                    .create_key_with(name.trim(), role, rate_limit)
                    .await
                    .context("creating the key")?;
                let entry =
                    AuditEntry::new(&info.created_at, super::users::operator(), "key.created")
                        .subject("key", &info.id)
                        .change(
                            None,
                            Some(
                                serde_json::json!({"name": info.name, "role": info.role.as_str()}),
                            ),
                        );
                store.audit(&[entry]).await.context("auditing")?;
                let limit = info
                    .rate_limit
                    .map_or(String::new(), |r| format!(", {r} requests/s"));
                println!(
                    "created {} ({}, role {}{limit})",
                    info.id,
                    info.name,
                    info.role.as_str()
                );
                println!("store it now: the key is not shown again");
                println!("{secret}");
            }
            Command::List => {
                let keys = store.list_keys().await.context("listing keys")?;
                println!(
                    "{:<18} {:<9} {:<28} {:<28} {:<8} name",
                    "id", "role", "created", "revoked", "limit/s"
                );
                for k in keys {
                    println!(
                        "{:<18} {:<9} {:<28} {:<28} {:<8} {}",
                        k.id,
                        k.role.as_str(),
                        k.created_at,
                        k.revoked_at.as_deref().unwrap_or("-"),
                        k.rate_limit.map_or("-".to_string(), |r| r.to_string()),
                        k.name
                    );
                }
            }
            Command::Revoke { id } => {
                if store.revoke_key(&id).await.context("revoking the key")? {
                    let entry = AuditEntry::new(
                        &crate::store::now_text(),
                        super::users::operator(),
                        "key.revoked",
                    )
                    .subject("key", &id);
                    store.audit(&[entry]).await.context("auditing")?;
                    println!("revoked {id}");
                } else {
                    return Err(CliError::input(anyhow::anyhow!(
                        "no active key with id `{id}`"
                    )));
                }
            }
        }
        Ok(())
    })
}
