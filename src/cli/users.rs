//! `dispatch-risk users create|list|disable|set-password|token|revoke-token`: the people who
//! decide approvals. Passwords are read from standard input (never from the command line,
//! where other users and shell histories see them); a token is printed once, alone on the last
//! line. Every change is audited with the operating-system user who made it.

use std::io::Read;

use anyhow::Context;

use super::{CliError, CliResult};
use crate::store::audit::{Actor, AuditEntry};
use crate::store::users::{parse_roles, UserError};

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
    /// Create a user.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// Comma-separated approver roles (dispatch_manager,compliance_manager); `dispatcher`
        /// also lets the user score through their token.
        #[arg(long)]
        roles: String,
        /// Read the password from standard input (without it, the user has none until
        /// `set-password`, and uses tokens only).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their secrets).
    List,
    /// Disable a user and revoke their tokens.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Set a user's password, read from standard input; unlocks a locked account.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Create a personal token for API calls that decide as this person; shown once.
    Token {
        #[arg(long)]
        email: String,
    },
    /// Revoke a personal token by id.
    RevokeToken { id: String },
}

/// Who ran the command, as the audit trail names them.
pub(crate) fn operator() -> Actor {
    Actor {
        kind: "cli".into(),
        id: None,
        name: std::env::var("USER")
            .ok()
            .or_else(|| Some("unknown".into())),
    }
}

fn input(e: UserError) -> CliError {
    match e {
        UserError::Store(s) => CliError::from(anyhow::Error::new(s)),
        other => CliError::input(other),
    }
}

fn read_password() -> CliResult<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

pub fn run(args: Args) -> CliResult {
    super::on_store(args.database_url, async move |store| {
        let now = crate::store::now_text();
        let audit = |action: &str, id: &str, after: serde_json::Value| {
            AuditEntry::new(&now, operator(), action)
                .subject("user", id)
                .change(None, Some(after))
        };
        match args.command {
            Command::Create {
                name,
                email,
                roles,
                password_stdin,
            } => {
                let roles = parse_roles(&roles).map_err(input)?;
                let password = if password_stdin {
                    Some(read_password()?)
                } else {
                    None
                };
                let user = store
                    .create_user(&name, &email, &roles, password.as_deref())
                    .await
                    .map_err(input)?;
                store
                    .audit(&[audit(
                        "user.created",
                        &user.id,
                        serde_json::json!({"email": user.email, "roles": user.roles}),
                    )])
                    .await
                    .context("auditing")?;
                println!(
                    "created {} ({}, roles {})",
                    user.id,
                    user.email,
                    user.roles.join(",")
                );
            }
            Command::List => {
                println!(
                    "{:<16} {:<32} {:<28} {:<10} name",
                    "id", "email", "roles", "disabled"
                );
                for u in store.list_users().await.context("listing users")? {
                    println!(
                        "{:<16} {:<32} {:<28} {:<10} {}",
                        u.id,
                        u.email,
                        u.roles.join(","),
                        if u.disabled_at.is_some() { "yes" } else { "-" },
                        u.name
                    );
                }
            }
            Command::Disable { email } => {
                let user = store.disable_user(&email).await.map_err(input)?;
                store
                    .audit(&[audit(
                        "user.disabled",
                        &user.id,
                        serde_json::json!({"email": user.email}),
                    )])
                    .await
                    .context("auditing")?;
                println!("disabled {} and revoked their tokens", user.email);
            }
            Command::SetPassword { email } => {
                let password = read_password()?;
                let user = store.set_password(&email, &password).await.map_err(input)?;
                store
                    .audit(&[audit(
                        "user.password_set",
                        &user.id,
                        serde_json::json!({"email": user.email}),
                    )])
                    .await
                    .context("auditing")?;
                println!("password set for {}", user.email);
            }
            Command::Token { email } => {
                let (user, id, secret) = store.create_user_token(&email).await.map_err(input)?;
                store
                    .audit(&[audit(
                        "user.token_created",
                        &user.id,
                        serde_json::json!({"email": user.email, "token": id}),
                    )])
                    .await
                    .context("auditing")?;
                println!(
                    "created token {id} for {} (roles {})",
                    user.email,
                    user.roles.join(",")
                );
                println!("store it now: the token is not shown again");
                println!("{secret}");
            }
            Command::RevokeToken { id } => {
                if !store
                    .revoke_user_token(&id)
                    .await
                    .context("revoking the token")?
                {
                    return Err(CliError::input(anyhow::anyhow!(
                        "no active token with id `{id}`"
                    )));
                }
                store
                    .audit(&[AuditEntry::new(&now, operator(), "user.token_revoked")
                        .subject("token", &id)])
                    .await
                    .context("auditing")?;
                println!("revoked {id}");
            }
        }
        Ok(())
    })
}
