//! The transport the SMTP drivers read and write: plain TCP, or TLS over
//! rustls's `unbuffered` API on the connection slot's fixed buffers.
//!
//! * TLS records are read into the slot's incoming buffer, handed to rustls,
//!   and written from the slot's outgoing buffer; decrypted data goes to the
//!   slot's plaintext buffer. Nothing here grows with the peer's behaviour.
//! * Every method is an `async fn` with no timer of its own: the driver wraps
//!   each call in its timeout and drops the [`Stream`] when one fires (a
//!   cancelled call leaves the stream unusable, never unsafe).
//! * [`Stream::write_all`] has written every byte to the socket when it
//!   returns; [`Stream::flush`] exists for symmetry and does nothing more.
//! * STARTTLS: [`Stream::start_tls_server`] / [`Stream::start_tls_client`]
//!   start from empty TLS and plaintext buffers. In plain mode the stream
//!   holds no read-ahead at all (reads go straight from the socket into the
//!   caller's buffer), so no byte received before the upgrade can come out of
//!   the stream after it; the caller must drop its own input buffer.
//! * Implicit TLS (port 465): call `start_tls_server` right after accept.
//!
//! Limits a peer can hit (each gives an `io::Error`, the session ends):
//! a handshake message larger than the incoming buffer (a certificate chain
//! over ~18 KB); more than 16 KiB of unread application data while we write
//! (a peer pipelining far beyond SMTP's needs).
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};
use rustls::{ClientConfig, ServerConfig};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::Async;

use super::keyinfo::{self, HandshakeSignature};
use super::pool::{Slot, SlotBuffers, INCOMING_TLS_LEN, OUTGOING_TLS_LEN, PLAINTEXT_LEN};
use super::summary::{PeerCertNames, TlsSummary, MAX_SNI_LEN};

/// Upper bound on state-machine steps per call; each step does I/O or
/// advances rustls, so this only stops a logic error from spinning.
const MAX_STEPS: usize = 100_000;

/// Largest plaintext given to one `encrypt` call: the record (header, AEAD
/// tag, TLS 1.3 content type, TLS 1.2 explicit nonce) must fit the outgoing
/// buffer together with nothing else.
const WRITE_CHUNK: usize = OUTGOING_TLS_LEN - 64;

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn other(msg: &'static str) -> io::Error {
    io::Error::other(msg)
}

/// Both unbuffered connection types, behind one interface.
trait Conn {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn common(&self) -> &rustls::CommonState;
}

impl Conn for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &rustls::CommonState {
        self
    }
}

impl Conn for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &rustls::CommonState {
        self
    }
}

enum Tls {
    Server(Box<UnbufferedServerConnection>),
    Client(Box<UnbufferedClientConnection>),
}

/// What one call to rustls asked for.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// rustls did something; ask again.
    Progress,
    /// rustls needs more bytes from the peer.
    NeedRead,
    /// Application data may be written (`WriteTraffic`).
    Writable,
    /// Plaintext was taken; more is waiting but our buffer is full.
    PlaintextFull,
    /// The peer sent close_notify (edge-triggered).
    PeerClosed,
    /// Both sides closed.
    Closed,
}

/// What to do in the `WriteTraffic` state.
enum WriteOp<'a> {
    /// Nothing (the state is only observed).
    None,
    /// Encrypt this chunk (≤ [`WRITE_CHUNK`]).
    Data(&'a [u8]),
    /// Encrypt close_notify.
    CloseNotify,
}

/// Socket plus slot buffers and their fill levels.
struct Io {
    tcp: Async<TcpStream>,
    slot: Slot,
    in_len: usize,
    out_len: usize,
    p_start: usize,
    p_end: usize,
    signature: Option<HandshakeSignature>,
    client_signature: Option<HandshakeSignature>,
    sni: Option<heapless::String<MAX_SNI_LEN>>,
    /// The peer's close_notify was seen: reads return 0 from now on.
    peer_closed: bool,
    /// The first bytes the peer sent since the handshake began, kept so
    /// that a failed handshake can tell a cleartext SMTP greeting (`220
    /// ...`, an implicit-TLS client on a STARTTLS port) from TLS.
    first: [u8; FIRST_BYTES],
    first_len: usize,
}

/// How many of the peer's first handshake bytes [`Stream::handshake_prefix`] keeps.
pub const FIRST_BYTES: usize = 64;

async fn write_out(tcp: &mut Async<TcpStream>, buf: &[u8], len: &mut usize) -> io::Result<()> {
    let data = buf
        .get(..*len)
        .ok_or_else(|| other("outgoing length out of range"))?;
    tcp.write_all(data).await?;
    *len = 0;
    Ok(())
}

impl Io {
    /// One `process_tls_records` call and its state handled; `op` is applied
    /// if rustls is in `WriteTraffic`.
    async fn step<C: Conn>(&mut self, conn: &mut C, op: WriteOp<'_>) -> io::Result<Step> {
        let Io {
            tcp,
            slot,
            in_len,
            out_len,
            p_start,
            p_end,
            ..
        } = self;
        let SlotBuffers {
            incoming,
            outgoing,
            plaintext,
        } = slot.buffers();
        let incoming: &mut [u8] = &mut incoming[..];
        let outgoing: &mut [u8] = &mut outgoing[..];
        let plaintext: &mut [u8] = &mut plaintext[..];
        let filled = incoming
            .get_mut(..*in_len)
            .ok_or_else(|| other("incoming length out of range"))?;
        let status = conn.process(filled);
        let mut discard = status.discard;
        let state = match status.state {
            Ok(s) => s,
            Err(e) => {
                return Err(tls_error(e));
            }
        };
        let step = match state {
            ConnectionState::EncodeTlsData(mut enc) => {
                loop {
                    let room = outgoing.get_mut(*out_len..).unwrap_or_default();
                    match enc.encode(room) {
                        Ok(n) => {
                            *out_len += n;
                            break;
                        }
                        Err(EncodeError::InsufficientSize(_)) if *out_len > 0 => {
                            write_out(tcp, outgoing, out_len).await?;
                        }
                        Err(_) => return Err(other("TLS record larger than the outgoing buffer")),
                    }
                }
                Step::Progress
            }
            ConnectionState::TransmitTlsData(t) => {
                write_out(tcp, outgoing, out_len).await?;
                t.done();
                Step::Progress
            }
            ConnectionState::BlockedHandshake => Step::NeedRead,
            ConnectionState::WriteTraffic(mut w) => {
                match op {
                    WriteOp::None => {}
                    WriteOp::Data(data) => encrypt(&mut w, tcp, outgoing, out_len, data).await?,
                    WriteOp::CloseNotify => {
                        if *out_len > 0 {
                            write_out(tcp, outgoing, out_len).await?;
                        }
                        let room = outgoing.get_mut(*out_len..).unwrap_or_default();
                        let n = w
                            .queue_close_notify(room)
                            .map_err(|_| other("close_notify does not fit the outgoing buffer"))?;
                        *out_len += n;
                        write_out(tcp, outgoing, out_len).await?;
                    }
                }
                Step::Writable
            }
            ConnectionState::ReadTraffic(mut r) => {
                if *p_start == *p_end {
                    *p_start = 0;
                    *p_end = 0;
                } else if *p_start > 0 {
                    plaintext.copy_within(*p_start..*p_end, 0);
                    *p_end -= *p_start;
                    *p_start = 0;
                }
                let mut step = Step::Progress;
                while let Some(len) = r.peek_len() {
                    if len.get() > PLAINTEXT_LEN - *p_end {
                        step = Step::PlaintextFull;
                        break;
                    }
                    match r.next_record() {
                        Some(Ok(rec)) => {
                            let n = rec.payload.len();
                            let dst = plaintext
                                .get_mut(*p_end..*p_end + n)
                                .ok_or_else(|| other("record larger than announced"))?;
                            dst.copy_from_slice(rec.payload);
                            *p_end += n;
                            discard += rec.discard;
                        }
                        Some(Err(e)) => return Err(tls_error(e)),
                        None => break,
                    }
                }
                step
            }
            ConnectionState::PeerClosed => Step::PeerClosed,
            ConnectionState::Closed => Step::Closed,
            // No early data is ever accepted (rustls's default), so this and
            // any future state are protocol errors for us.
            _ => return Err(other("unexpected TLS connection state")),
        };
        if discard > 0 {
            if discard > *in_len {
                return Err(other("rustls discarded more than was buffered"));
            }
            incoming.copy_within(discard..*in_len, 0);
            *in_len -= discard;
        }
        if let Some(sig) = keyinfo::take() {
            self.signature = Some(sig);
        }
        if let Some(sig) = keyinfo::take_client() {
            self.client_signature = Some(sig);
        }
        if let Some(sni) = keyinfo::take_sni() {
            self.sni = Some(sni);
        }
        Ok(step)
    }

    /// Reads more TLS bytes from the socket into the incoming buffer.
    async fn fill_incoming(&mut self) -> io::Result<()> {
        let start = self.in_len;
        if start >= INCOMING_TLS_LEN {
            return Err(other("TLS message larger than the incoming buffer"));
        }
        let buf = &mut self.slot.buffers().incoming[start..];
        let n = self.tcp.read(buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without TLS close_notify",
            ));
        }
        if self.first_len < FIRST_BYTES {
            let take = n.min(FIRST_BYTES - self.first_len);
            let (dst, src) = (&mut self.first[self.first_len..], &buf[..take]);
            dst[..take].copy_from_slice(src);
            self.first_len += take;
        }
        self.in_len += n;
        Ok(())
    }

    /// Sends the alert rustls queued after a failure (best effort), so the
    /// peer learns why (e.g. `bad_certificate`).
    async fn send_alert<C: Conn>(&mut self, conn: &mut C) {
        for _ in 0..4 {
            match self.step(conn, WriteOp::None).await {
                Ok(Step::Progress) if self.out_len > 0 => {
                    let Io {
                        tcp, slot, out_len, ..
                    } = self;
                    let _ = write_out(tcp, &slot.buffers().outgoing[..], out_len).await;
                    return;
                }
                Ok(Step::Progress) => continue,
                _ => return,
            }
        }
    }

    async fn handshake<C: Conn>(&mut self, conn: &mut C) -> io::Result<()> {
        for _ in 0..MAX_STEPS {
            let step = match self.step(conn, WriteOp::None).await {
                Ok(s) => s,
                Err(e) => {
                    self.send_alert(conn).await;
                    return Err(e);
                }
            };
            match step {
                Step::Progress => {}
                Step::Writable if !conn.common().is_handshaking() => return Ok(()),
                Step::NeedRead | Step::Writable => self.fill_incoming().await?,
                Step::PlaintextFull => return Err(other("application data during handshake")),
                // The peer finished the handshake, sent its data and closed
                // at once (all in one segment): the handshake did complete;
                // reads return what was sent, then end of stream.
                Step::PeerClosed | Step::Closed if !conn.common().is_handshaking() => {
                    self.peer_closed = true;
                    return Ok(());
                }
                Step::PeerClosed | Step::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed during the TLS handshake",
                    ))
                }
            }
        }
        Err(other("TLS handshake did not converge"))
    }

    fn take_plaintext(&mut self, buf: &mut [u8]) -> usize {
        let avail = self.p_end - self.p_start;
        let n = avail.min(buf.len());
        let start = self.p_start;
        buf[..n].copy_from_slice(&self.slot.buffers().plaintext[start..start + n]);
        self.p_start += n;
        n
    }

    async fn read<C: Conn>(&mut self, conn: &mut C, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        for _ in 0..MAX_STEPS {
            if self.p_start < self.p_end {
                return Ok(self.take_plaintext(buf));
            }
            if self.peer_closed {
                return Ok(0);
            }
            match self.step(conn, WriteOp::None).await? {
                Step::Progress | Step::PlaintextFull => {}
                Step::NeedRead | Step::Writable => {
                    // A record may be complete already after a discard.
                    self.fill_incoming().await?
                }
                Step::PeerClosed | Step::Closed => self.peer_closed = true,
            }
        }
        Err(other("TLS read did not converge"))
    }

    async fn write_all<C: Conn>(&mut self, conn: &mut C, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        let mut steps = 0usize;
        while !rest.is_empty() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(other("TLS write did not converge"));
            }
            let n = rest.len().min(WRITE_CHUNK);
            let (chunk, tail) = rest.split_at(n);
            match self.step(conn, WriteOp::Data(chunk)).await? {
                Step::Writable => rest = tail,
                Step::Progress => {}
                Step::PlaintextFull => {
                    return Err(other("peer sent too much data ahead of our replies"))
                }
                Step::NeedRead => self.fill_incoming().await?,
                Step::PeerClosed | Step::Closed => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "peer closed the TLS session",
                    ))
                }
            }
        }
        Ok(())
    }

    async fn close_notify<C: Conn>(&mut self, conn: &mut C) -> io::Result<()> {
        for _ in 0..MAX_STEPS {
            match self.step(conn, WriteOp::CloseNotify).await? {
                Step::Writable | Step::Closed | Step::PeerClosed => return Ok(()),
                Step::Progress | Step::PlaintextFull => {}
                Step::NeedRead => return Ok(()),
            }
        }
        Err(other("TLS close did not converge"))
    }
}

async fn encrypt<D>(
    w: &mut WriteTraffic<'_, D>,
    tcp: &mut Async<TcpStream>,
    outgoing: &mut [u8],
    out_len: &mut usize,
    data: &[u8],
) -> io::Result<()> {
    for _ in 0..2 {
        let room = outgoing.get_mut(*out_len..).unwrap_or_default();
        match w.encrypt(data, room) {
            Ok(n) => {
                *out_len += n;
                return write_out(tcp, outgoing, out_len).await;
            }
            Err(EncryptError::InsufficientSize(_)) if *out_len > 0 => {
                write_out(tcp, outgoing, out_len).await?;
            }
            Err(EncryptError::InsufficientSize(_)) => {
                return Err(other("TLS record larger than the outgoing buffer"))
            }
            Err(EncryptError::EncryptExhausted) => {
                return Err(other("TLS sequence numbers exhausted"))
            }
        }
    }
    Err(other("TLS record does not fit the outgoing buffer"))
}

/// A plain or TLS session transport on one connection slot.
pub struct Stream {
    io: Io,
    tls: Option<Tls>,
    summary: Option<TlsSummary>,
    /// The handshake failed: rustls has sent its alert and must not be
    /// driven again (a second fatal alert trips its own assertion); only
    /// the TCP side is shut down.
    failed: bool,
}

impl Stream {
    /// Wraps an accepted or connected socket; `slot` is held until drop.
    pub fn new(tcp: Async<TcpStream>, slot: Slot) -> Stream {
        Stream {
            io: Io {
                tcp,
                slot,
                in_len: 0,
                out_len: 0,
                p_start: 0,
                p_end: 0,
                signature: None,
                client_signature: None,
                sni: None,
                peer_closed: false,
                first: [0; FIRST_BYTES],
                first_len: 0,
            },
            tls: None,
            summary: None,
            failed: false,
        }
    }

    /// The socket (for peer_addr, local_addr).
    pub fn tcp(&self) -> &Async<TcpStream> {
        &self.io.tcp
    }

    /// True once a TLS handshake has completed.
    pub fn is_tls(&self) -> bool {
        self.summary.is_some()
    }

    /// The first bytes (up to [`FIRST_BYTES`]) the peer sent since the
    /// last `start_tls_*` began: after a failed handshake, what the peer
    /// spoke instead of TLS.
    pub fn handshake_prefix(&self) -> &[u8] {
        &self.io.first[..self.io.first_len.min(FIRST_BYTES)]
    }

    /// What was negotiated, after a successful `start_tls_*`.
    pub fn tls_summary(&self) -> Option<&TlsSummary> {
        self.summary.as_ref()
    }

    fn reset_buffers(&mut self) {
        self.io.in_len = 0;
        self.io.out_len = 0;
        self.io.p_start = 0;
        self.io.p_end = 0;
        self.io.signature = None;
        self.io.client_signature = None;
        self.io.sni = None;
        self.io.peer_closed = false;
        self.io.first_len = 0;
        // Clear whatever an earlier connection on this thread left behind.
        let _ = keyinfo::take();
        let _ = keyinfo::take_client();
        let _ = keyinfo::take_sni();
    }

    fn check_plain(&self) -> io::Result<()> {
        if self.tls.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS already started on this connection",
            ));
        }
        Ok(())
    }

    fn finish_handshake(&mut self) -> io::Result<()> {
        let common: &rustls::CommonState = match &self.tls {
            Some(Tls::Server(c)) => c.common(),
            Some(Tls::Client(c)) => c.common(),
            None => return Err(other("no TLS session")),
        };
        let version = common
            .protocol_version()
            .ok_or_else(|| other("handshake finished without a version"))?;
        let cipher = common
            .negotiated_cipher_suite()
            .ok_or_else(|| other("handshake finished without a cipher suite"))?
            .suite();
        let kx_group = common.negotiated_key_exchange_group().map(|g| g.name());
        // Server side: the client's certificate, if it presented one
        // (only requested with smtpd_tls_ask_ccert).
        let client_cert = match &self.tls {
            Some(Tls::Server(_)) => common
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| PeerCertNames::from_cert(leaf.as_ref())),
            _ => None,
        };
        // Postfix's smtpd takes these from OpenSSL, which on the server side
        // of TLS 1.2 keeps no peer key share: its line (and Received
        // comment) then ends after the cipher, and so does tern's.
        let server_tls12 =
            matches!(self.tls, Some(Tls::Server(_))) && version != rustls::ProtocolVersion::TLSv1_3;
        let (kx_group, server_signature) = if server_tls12 {
            (None, None)
        } else {
            (kx_group, self.io.signature)
        };
        self.summary = Some(TlsSummary {
            version,
            cipher,
            kx_group,
            server_signature,
            sni: self.io.sni.take(),
            client_signature: if client_cert.is_some() && !server_tls12 {
                self.io.client_signature
            } else {
                None
            },
            client_cert,
        });
        Ok(())
    }

    /// Server side of STARTTLS (or implicit TLS): handshake with `config`.
    /// Starts from empty buffers; on error the stream must be dropped.
    pub async fn start_tls_server(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        self.check_plain()?;
        self.reset_buffers();
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut conn = Box::new(conn);
        let r = self.io.handshake(conn.as_mut()).await;
        self.tls = Some(Tls::Server(conn));
        self.failed = r.is_err();
        r?;
        self.finish_handshake()
    }

    /// Client side of STARTTLS (or implicit TLS) to `server_name` (sent as
    /// SNI unless it is an IP address). On error the stream must be dropped;
    /// ask the verifier for the [`TlsOutcome`](super::verify::TlsOutcome).
    pub async fn start_tls_client(
        &mut self,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<()> {
        self.check_plain()?;
        self.reset_buffers();
        let conn = UnbufferedClientConnection::new(config, server_name).map_err(tls_error)?;
        let mut conn = Box::new(conn);
        let r = self.io.handshake(conn.as_mut()).await;
        self.tls = Some(Tls::Client(conn));
        self.failed = r.is_err();
        r?;
        self.finish_handshake()
    }

    /// Reads at least one byte into `buf`; `Ok(0)` at end of stream (TLS:
    /// the peer's close_notify; a TCP close without it is an `UnexpectedEof`
    /// error, a possible truncation attack).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(other("the TLS handshake failed"));
        }
        match &mut self.tls {
            None => self.io.tcp.read(buf).await,
            Some(Tls::Server(c)) => self.io.read(c.as_mut(), buf).await,
            Some(Tls::Client(c)) => self.io.read(c.as_mut(), buf).await,
        }
    }

    /// Writes all of `data` to the socket (encrypted under TLS, in records of
    /// at most `MAX_FRAGMENT_SIZE`).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(other("the TLS handshake failed"));
        }
        match &mut self.tls {
            None => self.io.tcp.write_all(data).await,
            Some(Tls::Server(c)) => self.io.write_all(c.as_mut(), data).await,
            Some(Tls::Client(c)) => self.io.write_all(c.as_mut(), data).await,
        }
    }

    /// Nothing is buffered after `write_all`; kept so drivers can be written
    /// as for any buffered writer.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.io.tcp.flush().await
    }

    /// Ends the session: TLS close_notify (if TLS and the handshake did not
    /// fail), then TCP shutdown of the sending side. Reading the peer's answer is up to the caller.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        let r = match &mut self.tls {
            None => Ok(()),
            Some(_) if self.failed => Ok(()),
            Some(Tls::Server(c)) => self.io.close_notify(c.as_mut()).await,
            Some(Tls::Client(c)) => self.io.close_notify(c.as_mut()).await,
        };
        let s = self.io.tcp.get_ref().shutdown(Shutdown::Write);
        r.and(s)
    }
}
