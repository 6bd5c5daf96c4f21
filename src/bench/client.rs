//! A minimal HTTP/1.1 keep-alive client over one tokio `TcpStream`, made for load generation:
//! requests are prebuilt byte strings, responses are parsed in place and their bodies kept
//! only when asked. One request at a time per connection (no pipelining).
//!
//! Bodies are framed by `Content-Length`, `Transfer-Encoding: chunked`, or the end of the
//! connection. Everything read from the server is checked: a malformed answer is a
//! [`ClientError::Protocol`], never a panic.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Headers parsed per response at most.
const MAX_HEADERS: usize = 32;
/// Largest response head (status line and headers) accepted.
const MAX_HEAD_LEN: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK_LEN: usize = 64 * 1024;

/// Why a request got no HTTP answer.
#[derive(Debug)]
pub enum ClientError {
    /// The connection failed or closed before a whole answer arrived.
    Io(io::Error),
    /// The server's bytes are not a valid HTTP/1.1 answer.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Protocol(m) => write!(f, "malformed HTTP answer: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// An answer: its status, the length of its body, and the body when it was asked for.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body_len: u64,
    pub body: Option<Vec<u8>>,
}

/// One keep-alive connection; it reconnects by itself after the server closed it.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Bytes read from the socket and not yet consumed.
    buf: Vec<u8>,
}

/// A prebuilt request: `GET path` or `POST path` with a body.
pub fn get_request(host: &str, path_and_query: &str) -> Vec<u8> {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n").into_bytes()
}

pub fn post_request(host: &str, path_and_query: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// How the body of an answer ends.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> Result<Connection, ClientError> {
        let mut conn = Connection {
            addr,
            stream: None,
            buf: Vec::with_capacity(READ_CHUNK_LEN),
        };
        conn.ensure_connected().await?;
        Ok(conn)
    }

    async fn ensure_connected(&mut self) -> Result<&mut TcpStream, ClientError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.buf.clear();
            self.stream = Some(stream);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| ClientError::Protocol("no connection".into()))
    }

    /// Sends `request` and reads its whole answer. On failure the connection is dropped and
    /// the next call opens a new one.
    pub async fn send(&mut self, request: &[u8], keep_body: bool) -> Result<Response, ClientError> {
        let result = self.exchange(request, keep_body).await;
        if result.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        result
    }

    async fn exchange(&mut self, request: &[u8], keep_body: bool) -> Result<Response, ClientError> {
        // A server may close an idle keep-alive connection: a request that fails before any
        // byte of its answer arrived is sent again once, on a new connection.
        let reused = self.stream.is_some();
        match self.exchange_once(request, keep_body).await {
            Err(ClientError::Io(e)) if reused && self.buf.is_empty() && is_stale(&e) => {
                self.stream = None;
                self.exchange_once(request, keep_body).await
            }
            other => other,
        }
    }

    async fn exchange_once(
        &mut self,
        request: &[u8],
        keep_body: bool,
    ) -> Result<Response, ClientError> {
        self.ensure_connected().await?.write_all(request).await?;
        let (status, framing, head_len, close) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD_LEN {
                return Err(ClientError::Protocol(format!(
                    "the head of the answer is over {MAX_HEAD_LEN} bytes"
                )));
            }
            if self.fill().await? == 0 {
                return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        };
        self.buf.drain(..head_len);
        let mut body = keep_body.then(Vec::new);
        let body_len = match framing {
            Framing::Length(len) => self.read_exact_body(len, &mut body).await?,
            Framing::Chunked => self.read_chunked_body(&mut body).await?,
            Framing::UntilClose => {
                let mut len = self.take_buffered(usize::MAX, &mut body);
                while self.fill().await? > 0 {
                    len += self.take_buffered(usize::MAX, &mut body);
                }
                self.stream = None;
                len
            }
        };
        if close {
            self.stream = None;
            self.buf.clear();
        }
        Ok(Response {
            status,
            body_len,
            body,
        })
    }

    /// Reads more bytes from the socket into `buf`; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| ClientError::Protocol("no connection".into()))?;
        self.buf.reserve(READ_CHUNK_LEN);
        Ok(stream.read_buf(&mut self.buf).await?)
    }

    /// Moves up to `max` buffered bytes into `body` (when kept); returns how many.
    fn take_buffered(&mut self, max: usize, body: &mut Option<Vec<u8>>) -> u64 {
        let n = self.buf.len().min(max);
        if let Some(body) = body.as_mut() {
            body.extend_from_slice(&self.buf[..n]);
        }
        self.buf.drain(..n);
        n as u64
    }

    async fn read_exact_body(
        &mut self,
        len: u64,
        body: &mut Option<Vec<u8>>,
    ) -> Result<u64, ClientError> {
        let mut left = len;
        loop {
            left -= self.take_buffered(usize::try_from(left).unwrap_or(usize::MAX), body);
            if left == 0 {
                return Ok(len);
            }
            if self.fill().await? == 0 {
                return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    async fn read_chunked_body(&mut self, body: &mut Option<Vec<u8>>) -> Result<u64, ClientError> {
        let mut total = 0u64;
        loop {
            let (size, line_len) = loop {
                if let Some(found) = parse_chunk_size(&self.buf)? {
                    break found;
                }
                if self.fill().await? == 0 {
                    return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
            };
            self.buf.drain(..line_len);
            if size == 0 {
                // No trailers are expected; the body ends with an empty line.
                while self.buf.len() < 2 {
                    if self.fill().await? == 0 {
                        return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                if &self.buf[..2] != b"\r\n" {
                    return Err(ClientError::Protocol("trailers are not supported".into()));
                }
                self.buf.drain(..2);
                return Ok(total);
            }
            total += self.read_exact_body(size, body).await?;
            while self.buf.len() < 2 {
                if self.fill().await? == 0 {
                    return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(ClientError::Protocol(
                    "a chunk does not end with CRLF".into(),
                ));
            }
            self.buf.drain(..2);
        }
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// The status, body framing, head length and whether the server closes the connection, once
/// the whole head is in `buf`.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, Framing, usize, bool)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    };
    let status = response
        .code
        .ok_or_else(|| ClientError::Protocol("no status code".into()))?;
    let mut framing = Framing::UntilClose;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ClientError::Protocol("unreadable Content-Length".into()))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(len);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    // 1xx, 204 and 304 answers have no body.
    if status < 200 || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }
    Ok(Some((status, framing, head_len, close)))
}

/// The size of the next chunk and the length of its size line, once that line is in `buf`.
fn parse_chunk_size(buf: &[u8]) -> Result<Option<(u64, usize)>, ClientError> {
    match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete((line_len, size))) => Ok(Some((size, line_len))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ClientError::Protocol("unreadable chunk size".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve_bytes(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for answer in answers {
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                // Split writes show that partial heads and bodies are reassembled.
                let (a, b) = answer.split_at(answer.len() / 2);
                socket.write_all(a).await.unwrap();
                socket.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                socket.write_all(b).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn length_and_chunked_bodies_are_read_on_one_kept_alive_connection() {
        let addr = serve_bytes(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut conn = Connection::connect(addr).await.unwrap();
        let request = get_request("h", "/x");
        let first = conn.send(&request, true).await.unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body.as_deref(), Some(&b"hello"[..]));
        let second = conn.send(&request, true).await.unwrap();
        assert_eq!(second.status, 404);
        assert_eq!(second.body.as_deref(), Some(&b"abcde"[..]));
        assert_eq!(second.body_len, 5);
        let third = conn.send(&request, false).await.unwrap();
        assert_eq!((third.status, third.body_len), (204, 0));
        assert!(third.body.is_none());
    }

    #[tokio::test]
    async fn a_malformed_answer_is_a_protocol_error() {
        let addr = serve_bytes(vec![b"HTTX/1.1 200 OK\r\n\r\n"]).await;
        let mut conn = Connection::connect(addr).await.unwrap();
        let result = conn.send(&get_request("h", "/"), false).await;
        assert!(
            matches!(result, Err(ClientError::Protocol(_))),
            "{result:?}"
        );
    }

    #[test]
    fn a_post_request_declares_its_body_length() {
        let request = post_request("h:1", "/v1/ingest", "text/csv", b"a,b\n");
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("POST /v1/ingest HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\n\r\na,b\n"));
    }
}
