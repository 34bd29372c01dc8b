//! The relay's channel over Redis PUBLISH/SUBSCRIBE (`--pubsub redis://…`), for deployments
//! whose fan-out would crowd PostgreSQL's NOTIFY queue.
//!
//! A minimal RESP client over one TCP connection per direction: publishing writes `PUBLISH`
//! and reads its integer reply; subscribing sends `SUBSCRIBE` and then reads `message` pushes.
//! The channel name is `parlor`, or the URL's `?channel=` parameter (instances that should
//! hear each other use the same one). `redis://:password@host:port` authenticates first.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Where and what to publish.
#[derive(Clone)]
pub struct RedisChannel {
    address: String,
    password: Option<String>,
    name: String,
    /// The publishing connection, opened on first use and again after an error.
    publisher: Arc<Mutex<Option<BufReader<TcpStream>>>>,
}

type Connection = BufReader<TcpStream>;

fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One RESP value, as far as pub/sub needs: bulk strings, integers, simple strings, arrays.
#[derive(Debug, PartialEq)]
enum Reply {
    Text(Vec<u8>),
    Integer(i64),
    Array(Vec<Reply>),
    Nil,
}

async fn read_reply(connection: &mut Connection) -> std::io::Result<Reply> {
    let mut line = Vec::new();
    connection.read_until(b'\n', &mut line).await?;
    if line.len() < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let kind = line[0];
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    match kind {
        b'+' => Ok(Reply::Text(body.into_bytes())),
        b'-' => Err(std::io::Error::other(format!("redis: {body}"))),
        b':' => body
            .parse()
            .map(Reply::Integer)
            .map_err(|_| invalid("bad integer")),
        b'$' => {
            let length: i64 = body.parse().map_err(|_| invalid("bad length"))?;
            let Ok(length) = usize::try_from(length) else {
                return Ok(Reply::Nil);
            };
            let mut data = vec![0; length + 2];
            connection.read_exact(&mut data).await?;
            data.truncate(length);
            Ok(Reply::Text(data))
        }
        b'*' => {
            let count: i64 = body.parse().map_err(|_| invalid("bad array length"))?;
            let mut items = Vec::new();
            for _ in 0..count.max(0) {
                items.push(Box::pin(read_reply(connection)).await?);
            }
            Ok(Reply::Array(items))
        }
        _ => Err(invalid("unknown reply type")),
    }
}

impl RedisChannel {
    /// Parses `redis://[:password@]host[:port][/][?channel=name]`; nothing is connected yet.
    pub fn new(url: &str) -> anyhow::Result<RedisChannel> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| anyhow::anyhow!("a Redis URL starts with redis://"))?;
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.split('/').next().unwrap_or_default();
        let (password, host) = match authority.rsplit_once('@') {
            Some((credentials, host)) => {
                let password = credentials.rsplit(':').next().unwrap_or(credentials);
                (Some(password.to_owned()).filter(|p| !p.is_empty()), host)
            }
            None => (None, authority),
        };
        let address = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        let name = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("channel="))
            .filter(|name| !name.is_empty())
            .unwrap_or("parlor")
            .to_owned();
        Ok(RedisChannel {
            address,
            password,
            name,
            publisher: Arc::default(),
        })
    }

    async fn connect(&self) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        let mut connection = BufReader::new(stream);
        if let Some(password) = &self.password {
            connection
                .get_mut()
                .write_all(&command(&[b"AUTH", password.as_bytes()]))
                .await?;
            read_reply(&mut connection).await?;
        }
        Ok(connection)
    }

    /// Checks that the server answers, so a wrong URL fails at start-up.
    pub async fn check(&self) -> anyhow::Result<()> {
        let mut connection = self
            .connect()
            .await
            .map_err(|error| anyhow::anyhow!("connecting to Redis at {}: {error}", self.address))?;
        connection.get_mut().write_all(&command(&[b"PING"])).await?;
        read_reply(&mut connection).await?;
        Ok(())
    }

    /// Publishes one message.
    pub async fn publish(&self, payload: &str) -> std::io::Result<()> {
        let mut slot = self.publisher.lock().await;
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let Some(connection) = slot.as_mut() else {
            return Ok(());
        };
        let sent = async {
            connection
                .get_mut()
                .write_all(&command(&[
                    b"PUBLISH",
                    self.name.as_bytes(),
                    payload.as_bytes(),
                ]))
                .await?;
            read_reply(connection).await
        }
        .await;
        if sent.is_err() {
            // Reconnect for the next message.
            *slot = None;
        }
        sent.map(|_| ())
    }

    /// Every message published on the channel from now on; ends when the connection drops.
    pub async fn subscribe(&self) -> std::io::Result<BoxStream<'static, String>> {
        let mut connection = self.connect().await?;
        connection
            .get_mut()
            .write_all(&command(&[b"SUBSCRIBE", self.name.as_bytes()]))
            .await?;
        // The confirmation: ["subscribe", channel, 1].
        read_reply(&mut connection).await?;
        Ok(stream::unfold(connection, |mut connection| async move {
            loop {
                match read_reply(&mut connection).await {
                    Ok(Reply::Array(items)) => {
                        if let [Reply::Text(kind), _, Reply::Text(payload)] = items.as_slice()
                            && kind.as_slice() == b"message"
                        {
                            let text = String::from_utf8_lossy(payload).into_owned();
                            return Some((text, connection));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
        .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_address_password_and_channel() {
        let channel = RedisChannel::new("redis://:secret@cache:6380/?channel=app1").unwrap();
        assert_eq!(
            (
                channel.address.as_str(),
                channel.password.as_deref(),
                channel.name.as_str()
            ),
            ("cache:6380", Some("secret"), "app1")
        );
        let channel = RedisChannel::new("redis://127.0.0.1").unwrap();
        assert_eq!(
            (
                channel.address.as_str(),
                channel.password,
                channel.name.as_str()
            ),
            ("127.0.0.1:6379", None, "parlor")
        );
        assert!(RedisChannel::new("http://x").is_err());
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(
            command(&[b"PUBLISH", b"ch", b"hi"]),
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\nhi\r\n".to_vec()
        );
    }
}
