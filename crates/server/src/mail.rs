//! Outgoing mail (password resets, email verification) behind one trait: a log-only mailer by
//! default, and a plain SMTP client for deployments that configure one.
//!
//! The SMTP client speaks just what a relay on a private network or a local MTA needs
//! (EHLO, optional AUTH PLAIN, MAIL/RCPT/DATA). It has no TLS: point it at a local relay
//! (Postfix, an SES/Sendgrid sidecar) rather than at a public server.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail transport: {0}")]
    Transport(#[from] std::io::Error),
    #[error("SMTP server refused: {0}")]
    Refused(String),
    #[error("invalid mailer configuration: {0}")]
    Config(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}

/// Writes each message to the log instead of sending it (development, tests).
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.text, "mail (log-only mailer)");
        Ok(())
    }
}

/// SMTP settings, from `smtp://[user:password@]host[:port]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpMailer {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    from: String,
}

impl SmtpMailer {
    pub fn from_url(url: &str, from: &str) -> Result<SmtpMailer, MailError> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| MailError::Config(format!("{url}: expected smtp://")))?;
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((userinfo, address)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((decode(user), decode(password))), address)
            }
            None => (None, rest),
        };
        let address = address.trim_end_matches('/');
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| MailError::Config(format!("bad port in {url}")))?,
            ),
            None => (address, 25),
        };
        if host.is_empty() {
            return Err(MailError::Config(format!("{url}: no host")));
        }
        Ok(SmtpMailer {
            host: host.to_owned(),
            port,
            credentials,
            from: from.to_owned(),
        })
    }

    async fn deliver(&self, mail: &Mail) -> Result<(), MailError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        expect(&mut reader, 220).await?;
        command(&mut write, &mut reader, "EHLO parlor", 250).await?;
        if let Some((user, password)) = &self.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            command(&mut write, &mut reader, &format!("AUTH PLAIN {token}"), 235).await?;
        }
        command(
            &mut write,
            &mut reader,
            &format!("MAIL FROM:<{}>", clean(&self.from)),
            250,
        )
        .await?;
        command(
            &mut write,
            &mut reader,
            &format!("RCPT TO:<{}>", clean(&mail.to)),
            250,
        )
        .await?;
        command(&mut write, &mut reader, "DATA", 354).await?;
        let mut data = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            clean(&self.from),
            clean(&mail.to),
            clean(&mail.subject)
        );
        for line in mail.text.lines() {
            // Dot-stuffing: a line starting with "." would end the message early.
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        write.write_all(data.as_bytes()).await?;
        expect(&mut reader, 250).await?;
        let _ = command(&mut write, &mut reader, "QUIT", 221).await;
        Ok(())
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        tokio::time::timeout(Duration::from_secs(30), self.deliver(&mail))
            .await
            .map_err(|_| {
                MailError::Transport(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "SMTP timed out",
                ))
            })?
    }
}

/// Header and envelope values may not carry line breaks (header injection).
fn clean(value: &str) -> String {
    value
        .chars()
        .filter(|c| *c != '\r' && *c != '\n' && *c != '<' && *c != '>')
        .collect()
}

fn decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

async fn command(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &str,
    code: u16,
) -> Result<(), MailError> {
    write.write_all(format!("{line}\r\n").as_bytes()).await?;
    expect(reader, code).await
}

/// Reads a (possibly multi-line) reply and checks its code.
async fn expect(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    code: u16,
) -> Result<(), MailError> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(MailError::Refused("connection closed".into()));
        }
        let got: Option<u16> = line.get(..3).and_then(|digits| digits.parse().ok());
        let more = line.as_bytes().get(3) == Some(&b'-');
        if got != Some(code) {
            return Err(MailError::Refused(line.trim_end().to_owned()));
        }
        if !more {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn smtp_urls() {
        let mailer =
            SmtpMailer::from_url("smtp://me%40x.org:p%3Ass@relay.local:2525", "noreply@x.org")
                .unwrap();
        assert_eq!(mailer.host, "relay.local");
        assert_eq!(mailer.port, 2525);
        assert_eq!(mailer.credentials, Some(("me@x.org".into(), "p:ss".into())));
        assert_eq!(
            SmtpMailer::from_url("smtp://relay", "a@b").unwrap().port,
            25
        );
        assert!(SmtpMailer::from_url("http://relay", "a@b").is_err());
    }

    /// A fake SMTP server on loopback records what the client sends.
    #[tokio::test]
    async fn sends_through_a_real_smtp_conversation() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let mut transcript = String::new();
            write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                transcript.push_str(&line);
                let reply: &[u8] = if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        b"250 queued\r\n"
                    } else {
                        continue;
                    }
                } else if line.starts_with("EHLO") {
                    b"250-fake\r\n250 AUTH PLAIN\r\n"
                } else if line.starts_with("AUTH") {
                    b"235 ok\r\n"
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else if line.starts_with("QUIT") {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else {
                    b"250 ok\r\n"
                };
                write.write_all(reply).await.unwrap();
            }
            transcript
        });
        let mailer = SmtpMailer::from_url(
            &format!("smtp://u:p@127.0.0.1:{port}"),
            "noreply@parlor.test",
        )
        .unwrap();
        let mail = Mail {
            to: "alice@example.com".into(),
            subject: "Reset\r\nBcc: evil@x".into(),
            text: "Hi\n.hidden\nbye".into(),
        };
        mailer.send(mail).await.unwrap();
        let transcript = server.await.unwrap();
        assert!(
            transcript.contains("AUTH PLAIN AHUAcA==\r\n"),
            "{transcript}"
        );
        assert!(transcript.contains("RCPT TO:<alice@example.com>\r\n"));
        assert!(
            transcript.contains("Subject: ResetBcc: evil@x\r\n"),
            "no header injection: {transcript}"
        );
        assert!(
            transcript.contains("\r\n..hidden\r\n"),
            "dot-stuffed: {transcript}"
        );
    }
}
