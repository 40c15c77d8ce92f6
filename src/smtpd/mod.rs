//! SMTP listener driver: accepts connections, enforces limits, runs
//! `smtp::server` sessions over `tls::Stream`, and feeds the spool.
//!
//! Per-connection memory is fixed: one `tls::pool` TLS slot
//! ([`crate::tls::pool::SLOT_BYTES`]) and one set of command buffers from
//! the same start-up allocation ([`crate::tls::pool::COMMAND_BYTES`]: the
//! command line buffer [`session::LINE_BUF`] and the DATA decode buffer
//! [`session::DATA_BUF`]), the spool writer's 8 KiB buffer while a message
//! is received, plus rustls's own handshake state.
//! The envelope is not fixed: it grows up to `smtpd_recipient_limit`
//! addresses (worst case in `docs/design.md`, "Per-session memory").
//! A connection that finds the pool empty gets `421 4.3.2 Too many
//! connections` and is closed; one over its address's limits
//! ([`anvil`], [`guard`]) gets Postfix's `421 4.7.0` before it takes a
//! slot. On the implicit-TLS port both are closed without a reply (see
//! `refuse`).

pub mod anvil;
pub mod commit;
pub mod guard;
pub mod listen;
pub mod passwd;
pub mod session;

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use smol::{Async, LocalExecutor};

use crate::config::net::Network;
use crate::config::Config;
use crate::queue::Spool;
use crate::smtp::line::BareNewline;
use crate::smtp::server::ServerParams;
use crate::tls::{BufferPool, CertKeyPaths};

use listen::Service;

/// What every session of the listener shares (immutable between reloads).
pub struct Shared {
    /// Session parameters common to all clients.
    pub params: ServerParams,
    /// `mynetworks`.
    pub mynetworks: Vec<Network>,
    /// `mydestination`, expanded.
    pub mydestination: Vec<String>,
    /// Aliases and local users, to refuse unknown local recipients.
    pub local: crate::local::LocalDelivery,
    /// Envelope rewriting at queue entry.
    pub rewrite: crate::local::Rewriter,
    /// The server TLS configuration for opportunistic STARTTLS
    /// (`smtpd_tls_protocols`), if a certificate is configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The configuration where TLS is mandatory: implicit TLS (port 465)
    /// and `smtpd_tls_security_level = encrypt`
    /// (`smtpd_tls_mandatory_protocols`, as Postfix chooses).
    pub tls_mandatory: Option<Arc<rustls::ServerConfig>>,
    /// SMTP AUTH users, if `smtpd_sasl_password_file` is set.
    pub passwords: Option<passwd::PasswordFile>,
    /// The spool.
    pub spool: Rc<Spool>,
    /// Group commit for finished messages.
    pub committer: Rc<commit::GroupCommit>,
    /// `smtpd_timeout`.
    pub timeout: Duration,
    /// `smtpd_total_time_limit`.
    pub total_time_limit: Duration,
    /// `line_length_limit`.
    pub line_limit: usize,
    /// `smtpd_forbid_bare_newline`.
    pub bare_newline: BareNewline,
    /// `smtpd_tls_loglevel`.
    pub tls_loglevel: u64,
    /// `smtpd_tls_received_header`.
    pub received_tls: bool,
    /// `smtpd_tls_ask_ccert` (for the Received header's wording).
    pub ask_ccert: bool,
    /// `myhostname`.
    pub hostname: String,
    /// `mail_name` (the `Received:` header's `by HOST (NAME)`).
    pub mail_name: String,
    /// `local_header_rewrite_clients`.
    pub header_clients: crate::cleanup::fixer::HeaderClients,
    /// This host's addresses as `inet_interfaces` names them (read at
    /// start and reload), for `permit_inet_interfaces`.
    pub interfaces: Vec<std::net::IpAddr>,
    /// Called after each committed message (wakes the queue manager).
    pub on_new_mail: Box<dyn Fn(&str)>,
    /// `queue_minfree`.
    pub queue_minfree: u64,
    /// The `smtpd_client_*_limit` settings and `anvil_rate_time_unit`.
    pub limits: anvil::Limits,
    /// `smtpd_client_event_limit_exceptions`.
    pub limit_exceptions: Vec<Network>,
    /// `smtpd_stress_threshold` (percent of the slots in use).
    pub stress_threshold: u64,
    /// `smtpd_stress_timeout`.
    pub stress_timeout: Duration,
    /// `smtpd_stress_hard_error_limit`.
    pub stress_hard_error_limit: u32,
}

impl Shared {
    /// Builds the listener state from the configuration; every problem
    /// (unreadable certificate, bad password file) is an error here, at
    /// start-up or reload, not at the first client.
    pub fn from_config(
        cfg: &Config,
        spool: Rc<Spool>,
        committer: Rc<commit::GroupCommit>,
        on_new_mail: Box<dyn Fn(&str)>,
    ) -> Result<Shared, String> {
        let (tls, tls_mandatory) = match server_tls(cfg)? {
            Some(t) => (Some(t.opportunistic), Some(t.mandatory)),
            None => (None, None),
        };
        if tls.is_none() {
            log::warn!(target: "smtpd", "warning: no smtpd_tls_cert_file or smtpd_tls_eccert_file: STARTTLS is not offered");
        }
        let passwords = match cfg.get("smtpd_sasl_password_file") {
            "" => None,
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("smtpd_sasl_password_file {path}: {e}"))?;
                Some(passwd::PasswordFile::parse(&text).map_err(|errs| {
                    errs.iter()
                        .map(|e| format!("{path}:{}: {}", e.line, e.message))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?)
            }
        };
        // Range-checked with file:line by Config::cross_checks; the min()
        // only keeps an unchecked Config from overrunning the buffer.
        let line_limit = usize::try_from(cfg.int("line_length_limit"))
            .unwrap_or(2048)
            .min(session::LINE_BUF - 2);
        let bare_newline = match cfg.get("smtpd_forbid_bare_newline") {
            "reject" => BareNewline::Reject,
            "no" => BareNewline::No,
            _ => BareNewline::Normalize,
        };
        let params = ServerParams {
            hostname: cfg.get("myhostname").to_string(),
            message_size_limit: cfg.int("message_size_limit"),
            recipient_limit: usize::try_from(cfg.int("smtpd_recipient_limit")).unwrap_or(1000),
            recipient_overshoot_limit: u32::try_from(cfg.int("smtpd_recipient_overshoot_limit"))
                .unwrap_or(u32::MAX),
            forbid_unauth_pipelining: cfg.bool("smtpd_forbid_unauth_pipelining"),
            tls_available: tls.is_some() && cfg.get("smtpd_tls_security_level") != "none",
            implicit_tls: false,
            tls_required: cfg.get("smtpd_tls_security_level") == "encrypt",
            auth_available: passwords.is_some(),
            auth_required: false,
            allow_plaintext_auth: !cfg.bool("smtpd_tls_auth_only"),
            client_in_mynetworks: false,
            soft_error_limit: u32::try_from(cfg.int("smtpd_soft_error_limit")).unwrap_or(10),
            hard_error_limit: u32::try_from(cfg.int("smtpd_hard_error_limit")).unwrap_or(20),
            junk_command_limit: u32::try_from(cfg.int("smtpd_junk_command_limit")).unwrap_or(100),
            error_sleep_time: 1,
            bare_newline,
            bare_newline_reject_code: 550,
            helo_required: true,
            banner: cfg.get("smtpd_banner").to_string(),
        };
        Ok(Shared {
            params,
            mynetworks: cfg.networks("mynetworks"),
            mydestination: cfg.list("mydestination").map(str::to_string).collect(),
            local: crate::local::LocalDelivery::from_config(cfg)?,
            rewrite: crate::local::Rewriter::from_config(cfg)?,
            tls,
            tls_mandatory,
            passwords,
            spool,
            committer,
            timeout: cfg.time("smtpd_timeout"),
            total_time_limit: cfg.time("smtpd_total_time_limit"),
            line_limit,
            bare_newline,
            tls_loglevel: cfg.int("smtpd_tls_loglevel"),
            received_tls: cfg.bool("smtpd_tls_received_header"),
            ask_ccert: cfg.bool("smtpd_tls_ask_ccert"),
            hostname: cfg.get("myhostname").to_string(),
            mail_name: cfg.get("mail_name").to_string(),
            header_clients: crate::cleanup::fixer::HeaderClients::parse(
                cfg.get("local_header_rewrite_clients"),
            )
            .map_err(|e| format!("local_header_rewrite_clients: {e}"))?,
            interfaces: interface_addresses(cfg),
            on_new_mail,
            queue_minfree: cfg.int("queue_minfree"),
            limits: client_limits(cfg),
            limit_exceptions: cfg.networks("smtpd_client_event_limit_exceptions"),
            stress_threshold: cfg.int("smtpd_stress_threshold").min(100),
            stress_timeout: cfg.time("smtpd_stress_timeout"),
            stress_hard_error_limit: u32::try_from(cfg.int("smtpd_stress_hard_error_limit"))
                .unwrap_or(1),
        })
    }

    /// Tells the queue manager a message arrived.
    pub fn new_mail(&self, queue_id: &str) {
        (self.on_new_mail)(queue_id);
    }

    /// `queue_minfree` (Postfix's rule, see [`crate::queue::space`]): room
    /// on the spool's file system for a message of `size` bytes? A file
    /// system that cannot be asked does not stop mail (the spool write
    /// would tell); it is logged.
    pub fn storage_ok(&self, size: u64) -> bool {
        match crate::queue::space::check_dir(
            self.spool.root(),
            self.queue_minfree,
            self.params.message_size_limit,
            size,
        ) {
            Ok(Ok(())) => true,
            Ok(Err(short)) => {
                // Postfix's line as is; the figures behind it (Postfix
                // logs them only with -v) at debug level.
                log::warn!(target: "smtpd", "warning: {short}");
                log::debug!(target: "smtpd", "smtpd_check_queue: avail {} needed {} min_free {} msg_size_limit {} size {size}", short.free, short.needed, self.queue_minfree, self.params.message_size_limit);
                false
            }
            Err(e) => {
                log::warn!(target: "smtpd", "warning: statvfs {}: {e}", self.spool.root().display());
                true
            }
        }
    }
}

/// The `smtpd_client_*_limit` settings. The concurrency limit, when not
/// set, is a fair share of the slots: `max_connections / 4`, at least 2
/// (8 of the default 32), so one address can never hold most of them;
/// Postfix's own default (50) is sized for a server with 100 smtpd
/// processes. A value set in the file always wins, 0 included (no limit).
fn client_limits(cfg: &Config) -> anvil::Limits {
    let int = |k: &str| u32::try_from(cfg.int(k)).unwrap_or(u32::MAX);
    let connection_count = if cfg.line_of("smtpd_client_connection_count_limit").is_some() {
        int("smtpd_client_connection_count_limit")
    } else {
        default_connection_count(cfg.int("max_connections"))
    };
    anvil::Limits {
        connection_count,
        connection_rate: int("smtpd_client_connection_rate_limit"),
        message_rate: int("smtpd_client_message_rate_limit"),
        auth_rate: int("smtpd_client_auth_rate_limit"),
        auth_failure: int("smtpd_client_auth_failure_limit"),
        auth_failure_delay: Duration::from_millis(cfg.int("smtpd_auth_failure_delay_ms")),
        auth_checks_per_second: int("smtpd_auth_check_rate_limit"),
        time_unit: cfg.time("anvil_rate_time_unit").max(Duration::from_secs(1)),
    }
}

/// `smtpd_client_connection_count_limit` when not set: a quarter of the
/// slots, at least 2.
pub fn default_connection_count(max_connections: u64) -> u32 {
    u32::try_from((max_connections / 4).max(2)).unwrap_or(u32::MAX)
}

/// What a session asks its driver while it reads commands: the class of a
/// recipient, whether the spool has room (`queue_minfree`), and the
/// per-client message and AUTH rates.
pub struct Checks<'a> {
    /// The listener's settings.
    pub shared: &'a Shared,
    /// The session's entry in the per-client table.
    pub ticket: &'a guard::Ticket,
    /// `host[addr]`, for the log lines.
    pub client: &'a str,
}

impl crate::smtp::server::Recipients for Checks<'_> {
    fn classify(
        &mut self,
        rcpt: &crate::smtp::command::Path<'_>,
    ) -> crate::smtp::server::RcptClass {
        self.shared.classify(rcpt)
    }

    fn storage_ok(&mut self, size: u64) -> bool {
        self.shared.storage_ok(size)
    }

    fn mail_limit(&mut self) -> Option<String> {
        let (reply, warning) = self.ticket.mail(self.shared, self.client)?;
        log::warn!(target: "smtpd", "{warning}");
        Some(reply)
    }

    fn auth_limit(&mut self) -> Option<String> {
        let (reply, warning) = self.ticket.auth(self.shared, self.client)?;
        log::warn!(target: "smtpd", "{warning}");
        Some(reply)
    }
}

/// The listener's two TLS configurations (they differ only in the
/// protocol versions offered).
pub struct ServerTls {
    /// Opportunistic STARTTLS: `smtpd_tls_protocols`.
    pub opportunistic: Arc<rustls::ServerConfig>,
    /// Implicit TLS and `smtpd_tls_security_level = encrypt`:
    /// `smtpd_tls_mandatory_protocols`.
    pub mandatory: Arc<rustls::ServerConfig>,
}

/// `smtpd_tls_protocols` or `smtpd_tls_mandatory_protocols` as options.
fn server_options(cfg: &Config, key: &str) -> Result<crate::tls::ServerOptions, String> {
    let v = crate::policy::decide::TlsVersions::parse(cfg.get(key))
        .map_err(|e| format!("{key} = {}: {e}", cfg.get(key)))?;
    Ok(crate::tls::ServerOptions {
        tls12: v.tls12(),
        tls13: v.tls13(),
        ask_client_cert: cfg.bool("smtpd_tls_ask_ccert"),
    })
}

/// The server TLS configurations from `smtpd_tls_{,ec}{cert,key}_file`
/// and the protocols settings, or None when no certificate is configured.
pub fn server_tls(cfg: &Config) -> Result<Option<ServerTls>, String> {
    let mut pairs = Vec::new();
    for (cert, key) in [
        ("smtpd_tls_cert_file", "smtpd_tls_key_file"),
        ("smtpd_tls_eccert_file", "smtpd_tls_eckey_file"),
    ] {
        let c = cfg.get(cert);
        if !c.is_empty() {
            let k = match cfg.get(key) {
                "" => c,
                k => k,
            };
            pairs.push(CertKeyPaths {
                cert: c.into(),
                key: k.into(),
            });
        }
    }
    if pairs.is_empty() {
        return Ok(None);
    }
    let params = crate::tls::params(cfg)?;
    let build = |key: &str| {
        let opts = server_options(cfg, key)?;
        crate::tls::build_server_config_with(&params, &pairs, &opts).map_err(|e| e.to_string())
    };
    Ok(Some(ServerTls {
        opportunistic: build("smtpd_tls_protocols")?,
        mandatory: build("smtpd_tls_mandatory_protocols")?,
    }))
}

/// The bound listeners, before privileges are dropped.
pub struct Listeners {
    list: Vec<(Service, TcpListener)>,
}

impl Listeners {
    /// `ADDRESS (service)` of every bound listener, for `tern status`.
    pub fn addresses(&self) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|(s, l)| l.local_addr().ok().map(|a| format!("{a} ({})", s.name())))
            .collect()
    }

    /// Binds every configured listener. A failure is fatal at start-up,
    /// except (with `inet_protocols = all`) an IPv6 address the host cannot
    /// bind, which is skipped with a warning as long as the service still
    /// has another address.
    pub fn bind(cfg: &Config) -> Result<Listeners, String> {
        let all = cfg.protocols().all;
        let mut list = Vec::new();
        for (key, service) in [
            ("smtp_listen", Service::Smtp),
            ("submission_listen", Service::Submission),
            ("submissions_listen", Service::Submissions),
        ] {
            let addrs = cfg.listen(key);
            let before = list.len();
            let mut skipped = Vec::new();
            for addr in &addrs {
                match listen::bind(*addr) {
                    Ok(l) => list.push((service, l)),
                    Err(e) if all && listen::no_ipv6_here(*addr, &e) => {
                        log::warn!(target: "master", "warning: {key}: cannot listen on {addr}: {e}; skipped (inet_protocols = all: this host has no usable IPv6 there)");
                        skipped.push(format!("{addr}: {e}"));
                    }
                    Err(e) => return Err(format!("{key}: cannot listen on {addr}: {e}")),
                }
            }
            if !addrs.is_empty() && list.len() == before {
                return Err(format!(
                    "{key}: no address could be bound ({})",
                    skipped.join("; ")
                ));
            }
        }
        Ok(Listeners { list })
    }

    /// The bound addresses (for logs and tests).
    pub fn addrs(&self) -> Vec<(Service, SocketAddr)> {
        self.list
            .iter()
            .filter_map(|(s, l)| l.local_addr().ok().map(|a| (*s, a)))
            .collect()
    }

    /// Spawns an accept loop per listener. `shared` is read anew for each
    /// connection, so a reload takes effect for new sessions. Dropping the
    /// returned tasks closes the listening sockets (SIGTERM drain) while
    /// sessions already running go on.
    pub fn spawn(
        self,
        ex: &Rc<LocalExecutor<'static>>,
        shared: Rc<std::cell::RefCell<Rc<Shared>>>,
        pool: Rc<BufferPool>,
    ) -> Result<Vec<smol::Task<()>>, String> {
        let mut tasks = Vec::with_capacity(self.list.len());
        // One table for every listener: the limits are per address.
        let guard = guard::Guard::new(pool.clone());
        for (service, l) in self.list {
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            let l = Async::new(l).map_err(|e| format!("{addr}: {e}"))?;
            log::info!(target: "master", "listening on {addr} ({})", service.name());
            let ex2 = ex.clone();
            let shared = shared.clone();
            let pool = pool.clone();
            let guard = guard.clone();
            let task = ex.spawn(async move {
                loop {
                    let (tcp, peer) = match l.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            log::warn!(target: "smtpd", "warning: accept on {addr}: {e}");
                            smol::Timer::after(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let s = shared.borrow().clone();
                    let ip = peer.ip();
                    // The per-client limits first: a refused client never
                    // takes a slot, even for the moment of its refusal.
                    let ticket = match guard.connect(&s, service.name(), ip) {
                        Ok(t) => t,
                        Err(why) => {
                            refuse_client(&s, service, peer, why);
                            ex2.spawn(refuse(tcp, service, too_many_from(&s, ip))).detach();
                            continue;
                        }
                    };
                    match pool.acquire_inbound() {
                        Some(slot) => {
                            // Stress mode is judged (and its start logged)
                            // with this slot counted.
                            let _ = guard.stressed(&s);
                            ex2.spawn(session::run(s, service, tcp, peer, slot, ticket)).detach();
                        }
                        None => {
                            drop(ticket);
                            log::warn!(target: "smtpd", "warning: too many connections: refusing {}[{}]", session::client_name(ip), ip);
                            ex2.spawn(refuse(tcp, service, "421 4.3.2 Too many connections\r\n".into())).detach();
                        }
                    }
                }
            });
            tasks.push(task);
        }
        Ok(tasks)
    }
}

/// Postfix's reply to a client over its connection count or rate limit.
fn too_many_from(shared: &Shared, ip: std::net::IpAddr) -> String {
    format!(
        "421 4.7.0 {} Error: too many connections from {ip}\r\n",
        shared.hostname
    )
}

/// Logs a connection refused by the per-client limits as Postfix's smtpd
/// does: the connect, the warning, and a disconnect with no commands.
fn refuse_client(_shared: &Shared, service: Service, peer: SocketAddr, why: anvil::Connect) {
    let ip = peer.ip();
    let client = format!("{}[{ip}]", session::client_name(ip));
    log::info!(target: "smtpd", "connect from {client}");
    match why {
        anvil::Connect::TooManyConnections(n) => {
            log::warn!(target: "smtpd", "warning: Connection concurrency limit exceeded: {n} from {client} for service {}", service.name())
        }
        anvil::Connect::RateExceeded(n) => {
            log::warn!(target: "smtpd", "warning: Connection rate limit exceeded: {n} from {client} for service {}", service.name())
        }
        anvil::Connect::Allowed => {}
    }
    log::info!(target: "smtpd", "disconnect from {client} commands=0/0");
}

/// Answers a refused connection and closes it. On the implicit-TLS port
/// nothing is written: a cleartext reply there is garbage to the client's
/// TLS stack (`wrong version number`), and finishing a handshake just to
/// refuse would spend the CPU a flood is trying to take (a full handshake
/// per refused connection). The client sees the connection closed and
/// retries later, as it would after a 421.
async fn refuse(tcp: Async<std::net::TcpStream>, service: Service, reply: String) {
    use smol::io::AsyncWriteExt;
    if service == Service::Submissions {
        drop(tcp);
        return;
    }
    let mut tcp = tcp;
    let _ = smol::future::or(
        async {
            let _ = tcp.write_all(reply.as_bytes()).await;
        },
        async {
            smol::Timer::after(Duration::from_secs(5)).await;
        },
    )
    .await;
}

/// The addresses `inet_interfaces` stands for: with `all`, every address
/// of this host's interfaces (getifaddrs), as Postfix's
/// `permit_inet_interfaces` sees them; else the listed ones (loopback is
/// matched separately). Read once: an address that comes later (DHCP)
/// counts after a reload.
fn interface_addresses(cfg: &Config) -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    for i in cfg.list("inet_interfaces") {
        match crate::config::net::check_interface(i) {
            Ok(Some(a)) => out.push(a),
            Ok(None) if i == "all" => out.extend(host_addresses()),
            _ => {}
        }
    }
    out
}

fn host_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        log::warn!(target: "smtpd", "warning: cannot list interface addresses: {}", std::io::Error::last_os_error());
        return out;
    }
    let mut p = list;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says
            // which struct it is.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: AF_INET: a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into());
                }
                libc::AF_INET6 => {
                    // SAFETY: AF_INET6: a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
                }
                _ => {}
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}
