//! The framing between supervisor and worker: a 4-byte little-endian length, then that many
//! bytes of JSON. Plain Rust data only; nothing of the engine crosses a pipe.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::io::{self, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::outcome::Execution;
use crate::script::Invocation;

/// Frames above this are refused: an Invocation holds at most a 100 KB script and an Execution
/// is bounded by its limits, so a larger frame means a broken peer.
const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    /// With `script: Known`, its `source` and `configuration` are empty: the worker has them.
    pub invocation: Invocation,
    pub script: Script,
    /// Scripts the worker may forget: the supervisor will send them again before using them.
    #[serde(default)]
    pub forget: Vec<ScriptDigest>,
}

/// A script and its configuration, named by their SHA-256 (the first 16 bytes).
pub type ScriptDigest = [u8; 16];

/// Whether a request carries its script and configuration or names ones it sent before. The
/// supervisor decides which a worker holds (the last `KEPT_SCRIPTS`), and the worker keeps
/// exactly those, so nothing is resent on every run and nothing is asked for again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// In this request; the worker keeps it under this digest.
    Sent(ScriptDigest),
    /// Sent before under this digest.
    Known(ScriptDigest),
}

/// Scripts one worker keeps for the supervisor.
pub const KEPT_SCRIPTS: usize = 64;

/// The digest of a script and its configuration.
pub fn digest(invocation: &Invocation) -> ScriptDigest {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((invocation.source.len() as u64).to_le_bytes());
    h.update(invocation.source.as_bytes());
    for (k, v) in &invocation.configuration {
        for part in [k, v] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub execution: Execution,
    /// Jobs the run started on the worker's blocking pool that were still running when it
    /// ended: the worker is stopped rather than kept busy after its run.
    #[serde(default)]
    pub native_jobs_left: usize,
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes is above the {MAX_FRAME} byte limit"),
    )
}

pub async fn write<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value)?;
    if body.len() > MAX_FRAME {
        return Err(too_large(body.len()));
    }
    w.write_all(&(body.len() as u32).to_le_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read<R: AsyncRead + Unpin, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(serde_json::from_slice(&body)?))
}

/// Blocking forms for the worker, whose JavaScript thread has nothing else to do while it
/// waits for the next request.
pub fn write_blocking<W: Write, T: Serialize>(w: &mut W, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value)?;
    if body.len() > MAX_FRAME {
        return Err(too_large(body.len()));
    }
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

pub fn read_blocking<R: Read, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}
