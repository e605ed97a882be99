//! A client for the control socket.

use crate::api::{
    ApiError, Envelope, ErrorCode, Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a request did not get a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to patchbayd at {path}: {source} (is patchbayd running? use --socket PATH)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to patchbayd: {0}")]
    Io(#[from] std::io::Error),
    #[error("patchbayd sent a reply that is not a response: {0}")]
    BadReply(String),
    #[error("{0}")]
    Api(ApiError),
    #[error(
        "the request is {0} bytes, over patchbayd's {MAX_REQUEST_BYTES}-byte limit (put big \
         route tables in with 'patchbay route load')"
    )]
    TooBig(usize),
}

/// A connection to `patchbayd`. patchbayd closes a connection that waits
/// too long between requests (or whose place a new client needs); a
/// request sent on it then is sent again on a new connection, unseen.
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            path: path.to_path_buf(),
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// The rest of the connection as a byte stream, without a read
    /// timeout (after a `capture` request: the pcap stream).
    pub fn into_stream(self) -> std::io::Result<BufReader<UnixStream>> {
        self.reader.get_ref().set_read_timeout(None)?;
        Ok(self.reader)
    }

    /// Sends one request and waits for its result.
    pub fn call(&mut self, request: Request) -> Result<serde_json::Value, ClientError> {
        let mut line = serde_json::to_vec(&Envelope {
            v: PROTOCOL_VERSION,
            request,
        })
        .expect("requests serialize");
        line.push(b'\n');
        if line.len() > MAX_REQUEST_BYTES {
            return Err(ClientError::TooBig(line.len()));
        }
        let resp = match self.exchange(&line)? {
            // Not read by patchbayd, which closed the connection: sent again.
            Sent::Unread => {
                *self = Client::connect(&self.path)?;
                match self.exchange(&line)? {
                    Sent::Answered(resp) => resp,
                    Sent::Unread => {
                        return Err(ClientError::BadReply(
                            "patchbayd closed a new connection at once".into(),
                        ))
                    }
                }
            }
            Sent::Answered(resp) => resp,
        };
        match (resp.ok, resp.result, resp.error) {
            (true, result, _) => Ok(result.unwrap_or(serde_json::Value::Null)),
            (false, _, Some(e)) => Err(ClientError::Api(e)),
            (false, _, None) => Err(ClientError::BadReply("error without a message".into())),
        }
    }

    /// Sends a request line and reads the answer.
    fn exchange(&mut self, line: &[u8]) -> Result<Sent, ClientError> {
        use std::io::ErrorKind;
        // patchbayd reads no more of this connection: it closed it, or
        // shut it down to make room (and says why, read below).
        let unsent = match self.writer.write_all(line) {
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                true
            }
            r => r.map(|()| false)?,
        };
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) if unsent => return Ok(Sent::Unread),
            Ok(0) => return Err(ClientError::BadReply("connection closed".into())),
            Ok(_) => {}
            // Closed with the request unread in its queue.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && reply.is_empty() => {
                return Ok(Sent::Unread)
            }
            Err(e) => return Err(e.into()),
        }
        let resp: Response =
            serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
        if resp
            .error
            .as_ref()
            .is_some_and(|e| e.code == ErrorCode::Idle)
        {
            return Ok(Sent::Unread);
        }
        Ok(Sent::Answered(resp))
    }
}

/// What became of a request sent.
enum Sent {
    Answered(Response),
    /// The connection was closed before patchbayd read it.
    Unread,
}
