//! A deliberately minimal HTTP/1.1 keep-alive client.
//!
//! Why not reqwest (hyper)? A general client does per-request work the load
//! generator does not need: it builds a `Request`, serialises headers, keeps a
//! pool keyed by host, parses every response header into a map, allocates the
//! body, and wakes several tasks per exchange. On a 2-core machine the
//! generator shares the CPU with the server it measures, so every microsecond
//! it spends is taken from the server and shows up as server slowness. Here a
//! request is a pre-built byte string written with one `write` call, and a
//! response is read into a reused buffer and parsed only as far as framing
//! needs: the status line, `Content-Length` (or chunked encoding) and
//! `Connection: close`. Nothing is allocated per request.
//!
//! It speaks plain HTTP/1.1 only (no TLS, no pipelining, no `Expect`), which
//! is what a benchmark of a server on this machine needs.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to send: the resolved address plus what goes into each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host` header value (`host:port`).
    pub host_header: String,
    /// Base URL without a trailing slash, for the admin API and messages.
    pub base: String,
    /// Path of the webhook under the base.
    pub webhook_path: String,
}

/// Parses `http://host[:port][/prefix]` and resolves the host.
pub fn parse_target(raw: &str, webhook: &str) -> anyhow::Result<Target> {
    let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("--url {raw:?}: {e}"))?;
    if url.scheme() != "http" {
        anyhow::bail!(
            "--url {raw:?}: only http:// is supported (the load generator speaks plain HTTP/1.1; \
             measure TLS separately)"
        );
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("--url {raw:?} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| anyhow::anyhow!("--url {raw:?}: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--url {raw:?}: {host} resolves to no address"))?;
    let prefix = url.path().trim_end_matches('/');
    let base = format!("http://{host}:{port}{prefix}");
    Ok(Target {
        addr,
        host_header: format!("{host}:{port}"),
        base,
        webhook_path: format!("{prefix}{webhook}"),
    })
}

/// What [`parse_response`] found in the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole response: its status, how many bytes it took, and whether the
    /// server will close the connection after it.
    Complete {
        status: u16,
        len: usize,
        close: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed status line")]
    StatusLine,
    #[error("malformed header")]
    Header,
    #[error("malformed chunked body")]
    Chunk,
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("response without Content-Length or chunked encoding (unsupported)")]
    Unframed,
}

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response at the start of `buf`: status line, the headers that
/// frame the body, and the body's extent. Never allocates.
pub fn parse_response(buf: &[u8]) -> Result<Parsed, ParseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(ParseError::HeadTooLarge)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let head = &buf[..head_end];
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or(ParseError::StatusLine)?;
    // "HTTP/1.1 200 OK": version, space, three digits, then space or end.
    let version_ok = status_line.starts_with(b"HTTP/1.");
    if !version_ok || status_line.len() < 12 || status_line[8] != b' ' {
        return Err(ParseError::StatusLine);
    }
    let code = &status_line[9..12];
    if !code.iter().all(u8::is_ascii_digit) || status_line.get(12).is_some_and(|b| *b != b' ') {
        return Err(ParseError::StatusLine);
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let http10 = status_line[7] == b'0';

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = http10;
    for line in lines {
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or(ParseError::Header)?;
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(ParseError::Header)?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = contains_token(value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    let body_start = head_end + 4;
    let body = &buf[body_start..];
    let body_len = if (100..200).contains(&status) || status == 204 || status == 304 {
        Some(0)
    } else if chunked {
        chunked_len(body)?
    } else if let Some(n) = content_length {
        (body.len() >= n).then_some(n)
    } else {
        return Err(ParseError::Unframed);
    };
    Ok(match body_len {
        Some(n) => Parsed::Complete {
            status,
            len: body_start + n,
            close,
        },
        None => Parsed::Incomplete,
    })
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// The length of a complete chunked body at the start of `body`, or `None`
/// while it is incomplete. Chunk extensions and trailers are skipped.
fn chunked_len(body: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&body[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = &body[at..at + eol];
        let size_part = line.split(|b| *b == b';').next().unwrap_or(line);
        let size_text = std::str::from_utf8(trim(size_part)).map_err(|_| ParseError::Chunk)?;
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ParseError::Chunk)?;
        at += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(&body[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        if &body[at + size..at + size + 2] != b"\r\n" {
            return Err(ParseError::Chunk);
        }
        at += size + 2;
    }
}

/// Why an exchange produced no response.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection ended before a whole response; `nothing_received`
    /// tells a stale keep-alive connection (closed by the server while idle)
    /// from one that broke mid-response.
    #[error("connection closed before a complete response")]
    Closed { nothing_received: bool },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// One keep-alive connection with a reused read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    /// Responses received on this connection so far.
    pub served: u64,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 4096],
            filled: 0,
            served: 0,
        })
    }

    /// Writes `request` and reads one response; returns its status and
    /// whether the server will close the connection.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, bool), ExchangeError> {
        self.stream.write_all(request).await?;
        loop {
            if let Parsed::Complete { status, len, close } =
                parse_response(&self.buf[..self.filled])?
            {
                // No pipelining: anything after the response would be a
                // protocol error, but keep it rather than lose sync.
                self.buf.copy_within(len..self.filled, 0);
                self.filled -= len;
                self.served += 1;
                return Ok((status, close));
            }
            if self.filled == self.buf.len() {
                if self.buf.len() >= 1 << 24 {
                    return Err(ParseError::HeadTooLarge.into());
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = match self.stream.read(&mut self.buf[self.filled..]).await {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && self.filled == 0 => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(ExchangeError::Closed {
                    nothing_received: self.filled == 0,
                });
            }
            self.filled += n;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn complete(status: u16, len: usize, close: bool) -> Result<Parsed, ParseError> {
        Ok(Parsed::Complete { status, len, close })
    }

    #[test]
    fn content_length_response() {
        let r =
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: application/json\r\n\r\nhello";
        assert_eq!(parse_response(r), complete(200, r.len(), false));
        // Every prefix is incomplete, never an error.
        for cut in 0..r.len() {
            assert_eq!(parse_response(&r[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        // Bytes after the response are not part of it.
        let mut two = r.to_vec();
        two.extend_from_slice(b"HTTP/1.1 503");
        assert_eq!(parse_response(&two), complete(200, r.len(), false));
    }

    #[test]
    fn status_and_connection_handling() {
        let r =
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(r), complete(503, r.len(), true));
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(r), complete(200, r.len(), true));
        let r = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(r), complete(200, r.len(), false));
        let r = b"HTTP/1.1 204\r\n\r\n";
        assert_eq!(parse_response(r), complete(204, r.len(), false));
        let r = b"HTTP/1.1 401 Unauthorized\r\nCONTENT-LENGTH:  2 \r\n\r\n{}";
        assert_eq!(parse_response(r), complete(401, r.len(), false));
    }

    #[test]
    fn chunked_response() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(parse_response(r), complete(200, r.len(), false));
        for cut in 0..r.len() {
            assert_eq!(parse_response(&r[..cut]), Ok(Parsed::Incomplete), "{cut}");
        }
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(parse_response(bad), Err(ParseError::Chunk));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert_eq!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(ParseError::StatusLine)
        );
        assert_eq!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ParseError::StatusLine)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
            Err(ParseError::Header)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ParseError::Header)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nbody until close"),
            Err(ParseError::Unframed)
        );
        assert_eq!(
            parse_response(&vec![b'a'; MAX_HEAD + 1]),
            Err(ParseError::HeadTooLarge)
        );
    }

    #[test]
    fn targets() {
        let t = parse_target("http://127.0.0.1:18080", "/api/webhook/whatsapp").unwrap();
        assert_eq!(t.addr, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(t.host_header, "127.0.0.1:18080");
        assert_eq!(t.base, "http://127.0.0.1:18080");
        assert_eq!(t.webhook_path, "/api/webhook/whatsapp");
        let t = parse_target("http://127.0.0.1/leadhook/", "/api/webhook/whatsapp").unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.webhook_path, "/leadhook/api/webhook/whatsapp");
        assert!(parse_target("https://127.0.0.1", "/x").is_err());
        assert!(parse_target("not a url", "/x").is_err());
    }

    #[tokio::test]
    async fn exchange_over_a_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            for answer in [
                &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..],
                &b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"[..],
            ] {
                let n = s.read(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"PING");
                // Dribble the answer out to exercise partial reads.
                for part in answer.chunks(7) {
                    s.write_all(part).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            }
            // Then close: the next exchange sees a stale connection.
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        assert_eq!(conn.exchange(b"PING").await.unwrap(), (200, false));
        assert_eq!(conn.exchange(b"PING").await.unwrap(), (503, false));
        server.await.unwrap();
        match conn.exchange(b"PING").await {
            Err(ExchangeError::Closed {
                nothing_received: true,
            })
            | Err(ExchangeError::Io(_)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.served, 2);
    }
}
