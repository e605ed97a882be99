//! A client for the control socket.

use crate::api::{ApiError, Envelope, Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
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

/// A connection to `patchbayd`.
pub struct Client {
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
        self.writer.write_all(&line)?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(ClientError::BadReply("connection closed".into()));
        }
        let resp: Response =
            serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
        match (resp.ok, resp.result, resp.error) {
            (true, result, _) => Ok(result.unwrap_or(serde_json::Value::Null)),
            (false, _, Some(e)) => Err(ClientError::Api(e)),
            (false, _, None) => Err(ClientError::BadReply("error without a message".into())),
        }
    }
}
