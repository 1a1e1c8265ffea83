//! `flagstone users`: accounts from the shell. `create` makes a user (the first one of an
//! installation becomes its superuser), optionally an organisation's admin; `set-password`
//! resets a forgotten password (and signs the user out everywhere).

use std::io::BufRead;

use anyhow::{bail, Context};
use flagstone_access::{password, secrets, Role};
use flagstone_store::accounts::{members, tokens, users};
use flagstone_store::organisations::{self, NewOrganisation};
use flagstone_store::{now_ms, Actor, PageRequest, Store};

use crate::db_args::DbArgs;

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Create a user. The installation's first user becomes its superuser.
    Create(CreateArgs),
    /// Set a user's password; every token and session of the user is revoked.
    SetPassword(SetPasswordArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    email: String,
    #[arg(long, default_value = "")]
    first_name: String,
    #[arg(long, default_value = "")]
    last_name: String,
    /// Make the user `ADMIN` of the organisation (`--organisation`, or the only one, or a new
    /// one if there is none).
    #[arg(long)]
    org_admin: bool,
    /// The organisation to join (id or exact name); the user joins as `USER` unless
    /// `--org-admin`.
    #[arg(long)]
    organisation: Option<String>,
    /// Name of the organisation created when there is none.
    #[arg(long, default_value = "Default organisation")]
    new_organisation_name: String,
    /// Make the user a superuser of the installation.
    #[arg(long)]
    superuser: bool,
    /// Read the password from the first line of standard input; otherwise a random one is
    /// generated and printed once.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Args)]
pub struct SetPasswordArgs {
    #[arg(long)]
    email: String,
    /// Read the password from the first line of standard input; otherwise a random one is
    /// generated and printed once.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn run(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create(a) => create(a).await,
        UsersCommand::SetPassword(a) => set_password(a).await,
    }
}

/// The password to set, and whether it was generated (then it is printed).
fn password_from(stdin: bool, email: &str) -> anyhow::Result<(String, bool)> {
    if stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        password::check_policy(&pw, email).map_err(|e| anyhow::anyhow!("password {e}"))?;
        Ok((pw, false))
    } else {
        Ok((secrets::random_alphanumeric(20), true))
    }
}

async fn hash(pw: String) -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(move || password::hash(&pw, password::Cost::DEFAULT)).await?)
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let store = a.db.open().await?;
    let email = users::validate_email(&a.email)?;
    let (pw, generated) = password_from(a.password_stdin, &email)?;
    let hash = hash(pw.clone()).await?;
    let now = now_ms();
    let actor = Actor::system("flagstone users create");
    let mut ch = store.change(&actor).await?;
    let first = users::claim_bootstrap(ch.tx(), now).await?;
    let user = users::create(
        ch.tx(),
        &users::NewUser {
            email: email.clone(),
            first_name: a.first_name,
            last_name: a.last_name,
            password_hash: Some(hash),
            is_superuser: first || a.superuser,
        },
        now,
    )
    .await?;
    let mut joined = None;
    if a.org_admin || a.organisation.is_some() {
        let org = match &a.organisation {
            Some(o) => find_organisation(&store, o).await?,
            None => match only_organisation(&store).await? {
                Some(id) => id,
                None => {
                    organisations::create(
                        &mut ch,
                        &NewOrganisation {
                            name: a.new_organisation_name.clone(),
                            stop_serving_flags: false,
                            persist_trait_data: true,
                            feature_analytics: false,
                        },
                    )
                    .await?
                    .id
                }
            },
        };
        let role = if a.org_admin { Role::Admin } else { Role::User };
        members::add(&mut ch, org, user.id, &email, role.as_str(), now).await?;
        joined = Some((org, role));
    }
    ch.commit().await?;
    println!("created user {} (id {})", user.email, user.id);
    if user.is_superuser {
        println!("  superuser of this installation");
    }
    if let Some((org, role)) = joined {
        println!("  {role} of organisation {org}");
    }
    if generated {
        println!("  password (shown once): {pw}");
    }
    Ok(())
}

async fn find_organisation(store: &Store, id_or_name: &str) -> anyhow::Result<i64> {
    let mut tx = store.read().await?;
    if let Ok(id) = id_or_name.parse::<i64>() {
        return Ok(organisations::get(&mut tx, id).await?.id);
    }
    let page =
        organisations::list(&mut tx, PageRequest::new(1, PageRequest::MAX_PAGE_SIZE)).await?;
    match page.results.iter().find(|o| o.name == id_or_name) {
        Some(o) => Ok(o.id),
        None => bail!("no organisation named {id_or_name:?}"),
    }
}

async fn only_organisation(store: &Store) -> anyhow::Result<Option<i64>> {
    let mut tx = store.read().await?;
    let page = organisations::list(&mut tx, PageRequest::new(1, 2)).await?;
    match page.results.as_slice() {
        [] => Ok(None),
        [o] => Ok(Some(o.id)),
        _ => bail!("there are several organisations: name one with --organisation"),
    }
}

async fn set_password(a: SetPasswordArgs) -> anyhow::Result<()> {
    let store = a.db.open().await?;
    let (pw, generated) = password_from(a.password_stdin, &a.email)?;
    let hash = hash(pw.clone()).await?;
    let mut tx = store.write().await?;
    let Some(user) = users::find_by_email(&mut tx, &a.email).await? else {
        bail!("no user with email {}", a.email);
    };
    users::set_password_hash(&mut tx, user.id, &hash, now_ms()).await?;
    let revoked = tokens::revoke_all(&mut tx, user.id).await?;
    tx.commit().await?;
    println!(
        "password of {} set; {revoked} tokens and sessions revoked",
        user.email
    );
    if generated {
        println!("  password (shown once): {pw}");
    }
    Ok(())
}
