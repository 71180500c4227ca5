//! Outgoing email (invitations, password resets): over SMTP when configured, otherwise one
//! `.eml` file per message in the outbox directory (the demo's default, and what tests read).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::AccountsConfig;

/// Longest an SMTP exchange may take before the message counts as not sent.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where mail goes.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("email configuration: {0}")]
    Config(String),
    #[error("email could not be sent: {0}")]
    Send(String),
}

impl Mailer {
    pub fn from_config(cfg: &AccountsConfig) -> Result<Self, MailError> {
        let from: Mailbox = cfg
            .email_from
            .parse()
            .map_err(|e| MailError::Config(format!("email.from: {e}")))?;
        Ok(match &cfg.smtp_url {
            Some(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Config(format!("email.smtp_url: {e}")))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
                from,
            },
            None => Mailer::Outbox {
                dir: PathBuf::from(&cfg.outbox_dir),
                from,
            },
        })
    }

    /// Sends one plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let (Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. }) = self;
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Send(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        match self {
            Mailer::Smtp { transport, .. } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Mailer::Outbox { dir, .. } => write_eml(dir, &message.formatted()).await,
        }
    }
}

/// Writes the message under a unique name; the name starts with the time so that a directory
/// listing is in sending order.
async fn write_eml(dir: &PathBuf, bytes: &[u8]) -> Result<(), MailError> {
    let fail = |e: std::io::Error| MailError::Send(format!("outbox {}: {e}", dir.display()));
    tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let name = format!("{now:015}-{}.eml", hex::encode(rand::random::<[u8; 6]>()));
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, bytes).await.map_err(fail)?;
    // Renamed into place so a reader never sees half a message.
    tokio::fs::rename(&tmp, dir.join(name)).await.map_err(fail)
}
