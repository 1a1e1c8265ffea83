//! How invitations reach people: the server's public address (for join links) and the SMTP
//! server that mails them (`flagstone serve --public-url … --smtp-url … --smtp-from …`).

use std::sync::Arc;

use flagstone_api::mail::SmtpMailer;
use flagstone_api::Invitations;

#[derive(clap::Args, Clone, Debug)]
pub struct InviteArgs {
    /// Where people reach this server, e.g. `https://flags.example.com`: invitation links start
    /// with it. Needed for mailed invitations.
    #[arg(long, env = "FLAGSTONE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Mail invitations through this SMTP server: `smtp://host:25` (plain),
    /// `smtp://user:password@host:587?tls=required` (STARTTLS), `smtps://…:465` (TLS).
    /// Without it, invitation links are shown to the admin who invites, to pass on.
    #[arg(
        long,
        env = "FLAGSTONE_SMTP_URL",
        hide_env_values = true,
        requires = "public_url",
        requires = "smtp_from"
    )]
    pub smtp_url: Option<String>,
    /// The sender of invitation mails, e.g. `Flagstone <flags@example.com>`.
    #[arg(long, env = "FLAGSTONE_SMTP_FROM")]
    pub smtp_from: Option<String>,
}

impl InviteArgs {
    pub fn invitations(&self) -> anyhow::Result<Invitations> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("--public-url must start with https:// or http://, not {url:?}");
            }
        }
        // clap checks `requires` on flags and variables only, not on defaults (where the
        // configuration file's values go): checked again here.
        if self.smtp_url.is_some() && (self.smtp_from.is_none() || self.public_url.is_none()) {
            anyhow::bail!("--smtp-url (smtp_url) needs --smtp-from and --public-url too");
        }
        let mailer = match (&self.smtp_url, &self.smtp_from) {
            (Some(url), Some(from)) => {
                let m = SmtpMailer::new(url, from).map_err(anyhow::Error::msg)?;
                tracing::info!(smtp = %m.describe(), "invitations are mailed");
                Some(Arc::new(m) as Arc<dyn flagstone_api::mail::Mailer>)
            }
            _ => None,
        };
        Ok(Invitations {
            public_url: self.public_url.clone(),
            mailer,
        })
    }
}
