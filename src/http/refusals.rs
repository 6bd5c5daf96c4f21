//! hyper's own refusals as JSON errors.
//!
//! hyper answers a request it cannot parse (400), a request target over 65,534 bytes (414) or a
//! head over its buffer or header count (431) itself, before any route runs, with a bare head:
//! `content-length: 0` and no body. [`JsonRefusals`] wraps a connection and rewrites exactly
//! those heads into the API's `{"error": {"code", "message"}}` answers. Every answer of the API
//! with one of these statuses has a JSON body, so a bare one is always hyper's.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{ApiError, ErrorCode};

/// A bare head is a few hundred bytes; anything longer is not one.
const MAX_BARE_HEAD_LEN: usize = 1024;

/// A connection whose bare refusals by hyper are sent as JSON errors.
pub struct JsonRefusals<T> {
    inner: T,
    /// Bytes of a rewritten refusal not yet written to `inner`.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonRefusals<T> {
    pub fn new(inner: T) -> Self {
        JsonRefusals {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The JSON answer replacing `head` when it is one of hyper's bare refusals.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() > MAX_BARE_HEAD_LEN || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (status_line, error) = match head.get(..13)? {
        b"HTTP/1.1 400 " => (
            "HTTP/1.1 400 Bad Request",
            ApiError::new(
                ErrorCode::InvalidArgument,
                "the request is not well-formed HTTP/1.1",
            ),
        ),
        b"HTTP/1.1 414 " => (
            "HTTP/1.1 414 URI Too Long",
            ApiError::new(
                ErrorCode::UriTooLong,
                format!(
                    "the request target is over the {} bytes the server reads",
                    u16::MAX - 1
                ),
            ),
        ),
        b"HTTP/1.1 431 " => (
            "HTTP/1.1 431 Request Header Fields Too Large",
            ApiError::new(
                ErrorCode::HeadersTooLarge,
                "the request head is over what the server reads",
            ),
        ),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    lines.next();
    let mut bare = false;
    let mut kept = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if line.eq_ignore_ascii_case("content-length: 0") {
            bare = true;
        } else {
            let lower = line.to_ascii_lowercase();
            if !(lower.starts_with("content-type:") || lower.starts_with("connection:")) {
                kept.push(line);
            }
        }
    }
    if !bare {
        return None;
    }
    let body = super::error::to_json(&error);
    let mut out = format!("{status_line}\r\n");
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> JsonRefusals<T> {
    /// Writes what is left of a rewritten refusal.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.pending.get(self.written..).filter(|r| !r.is_empty()) {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `head` as written when it is a bare refusal, queuing its JSON answer instead.
    fn poll_refusal(
        &mut self,
        cx: &mut Context<'_>,
        head: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        let answer = rewrite(head)?;
        self.pending = answer;
        self.written = 0;
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // The answer is queued either way: hyper's bytes are taken.
            _ => Poll::Ready(Ok(head.len())),
        })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonRefusals<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        if let Some(done) = this.poll_refusal(cx, buf) {
            return done;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= MAX_BARE_HEAD_LEN {
            let head: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(done) = this.poll_refusal(cx, &head) {
                return done;
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_refusals_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\
                     date: Fri, 04 Dec 2026 22:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(bare).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("date: Fri"), "{head}");
        assert_eq!(head.matches("connection: close").count(), 1, "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        let with_body =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 12\r\n\r\n";
        assert!(rewrite(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(ok).is_none());
        let not_a_head = b"HTTP/1.1 400 \r\ncontent-length: 0\r\n";
        assert!(rewrite(not_a_head).is_none());
    }
}
