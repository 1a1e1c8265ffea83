//! Sending email (invitations), through SMTP with `lettre` when `flagstone serve --smtp-url` is
//! given. [`Mailer`] is a trait so tests and other transports can stand in. The SMTP URL may
//! hold credentials: it is never logged (see [`SmtpMailer::describe`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How long one message may take to send before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// One plain-text message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Something that sends mail. `send` answers why it failed, in words for the admin.
pub trait Mailer: Send + Sync {
    fn send<'a>(
        &'a self,
        mail: Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Mail through an SMTP server: `smtp://host:25` (plain, or `?tls=required` for STARTTLS),
/// `smtps://user:password@host:465` (TLS), as `lettre` reads them.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    described: String,
}

impl SmtpMailer {
    /// A mailer for `url`, sending as `from` (`Flagstone <flags@example.com>` or an address).
    pub fn new(url: &str, from: &str) -> Result<SmtpMailer, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("--smtp-from {from:?} is not an email address: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("--smtp-url is not a valid SMTP URL: {e}"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(SmtpMailer {
            transport,
            from,
            described: flagstone_store::db::redact_url(url),
        })
    }

    /// The SMTP URL with its password hidden, for the log.
    pub fn describe(&self) -> &str {
        &self.described
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        mail: Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let to: Mailbox = mail
                .to
                .parse()
                .map_err(|e| format!("{:?} is not an address mail can be sent to: {e}", mail.to))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject)
                .body(mail.text)
                .map_err(|e| format!("could not build the message: {e}"))?;
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| format!("the mail server refused or failed: {e}"))
        })
    }
}
