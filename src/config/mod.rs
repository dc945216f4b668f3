//! redis.conf-style configuration, so that operators can run Rill with the files, command
//! lines and CONFIG commands they already use with Redis.
//!
//! The pieces:
//! - [`syntax`]: Redis's quoting, memory units, strict integers and glob matching.
//! - [`directives`]: the single table of directives that drives everything below.
//! - [`Config::load`]: a file (with `include`s) and then command-line overrides, as `redis-server`
//!   reads them; a bad line stops start-up with Redis's `*** FATAL CONFIG FILE ERROR ***` block.
//! - [`parse_cli`]: splits `rill [config-file] [--directive value ...]` like `redis-server`.
//! - [`Config::get`] / [`Config::set`] / [`Config::rewrite`]: CONFIG GET, SET and REWRITE.
//!
//! Where Rill differs from Redis: `bind`, `port` and `dir` cannot be changed with CONFIG SET
//! (the server does not rebind or move its data at run time); `dir` is kept as written rather
//! than made absolute by a `chdir`; `daemonize yes` is refused; reading the file from stdin
//! (`-`) is not supported.

pub mod directives;
pub mod keyspace_events;
mod rewrite;
pub mod syntax;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use directives::{find, Directive, ValueType, DIRECTIVES};
pub use rewrite::example_config;

use directives::{expand_single_multi_arg, split_set_value, LoadState};
use syntax::{glob_match, quote, split_args};

/// How deep `include` may nest; Redis has no limit, so a file including itself recurses until
/// the stack overflows. Here it is an ordinary start-up error.
const MAX_INCLUDE_DEPTH: usize = 16;

/// When the log is fsynced (`appendfsync`). The order of [`AppendFsync::NAMES`] is Redis's,
/// because error messages list the choices in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// Once per second, by a background task.
    Everysec,
    /// Before any reply that depends on the write leaves the server.
    Always,
    /// Never explicitly: the operating system decides.
    No,
}

impl AppendFsync {
    /// The names accepted in configuration, in Redis's order.
    pub const NAMES: [&'static str; 3] = ["everysec", "always", "no"];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => Self::Everysec,
            1 => Self::Always,
            _ => Self::No,
        }
    }
}

/// How Rill tells a supervisor it is ready (`supervised`, as Redis's directive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    /// No supervisor interaction.
    No,
    /// Upstart's `expect stop`: accepted, and nothing is sent (Rill does not daemonize).
    Upstart,
    /// systemd `Type=notify`: `READY=1` (and `STOPPING=1`) on `$NOTIFY_SOCKET`.
    Systemd,
    /// systemd when `$NOTIFY_SOCKET` is set, nothing otherwise.
    Auto,
}

impl Supervised {
    /// The names accepted in configuration, in Redis's order.
    pub const NAMES: [&'static str; 4] = ["no", "upstart", "systemd", "auto"];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            1 => Self::Upstart,
            2 => Self::Systemd,
            3 => Self::Auto,
            _ => Self::No,
        }
    }
}

/// Who may do something dangerous to the server (`enable-protected-configs`,
/// `enable-debug-command`), as Redis's `protected_action_enum`: nobody, everybody, or only
/// clients connected from the machine itself. Redis added these in 7.0 so that a client that
/// knows the password still cannot point `dir` elsewhere (and have files written there) or
/// run DEBUG: such a client is not assumed to be the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectedAction {
    /// Refused to every client (the default).
    No,
    /// Allowed to every client.
    Yes,
    /// Allowed to clients connected over loopback (Redis's `connIsLocal`).
    Local,
}

impl ProtectedAction {
    /// The names accepted in configuration, in Redis's order.
    pub const NAMES: [&'static str; 3] = ["no", "yes", "local"];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            1 => Self::Yes,
            2 => Self::Local,
            _ => Self::No,
        }
    }

    /// Redis's `allowProtectedAction`: whether a client, local or not, may do it.
    pub fn allows(self, client_is_local: bool) -> bool {
        match self {
            Self::No => false,
            Self::Yes => true,
            Self::Local => client_is_local,
        }
    }
}

/// Log verbosity (`loglevel`), from most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including per-command detail.
    Debug,
    /// Detail useful when investigating a problem.
    Verbose,
    /// What an operator wants in production (the default).
    Notice,
    /// Only problems.
    Warning,
    /// Nothing at all (Redis 7.2+).
    Nothing,
}

impl LogLevel {
    /// The names accepted in configuration, in Redis's order.
    pub const NAMES: [&'static str; 5] = ["debug", "verbose", "notice", "warning", "nothing"];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => Self::Debug,
            1 => Self::Verbose,
            2 => Self::Notice,
            3 => Self::Warning,
            _ => Self::Nothing,
        }
    }

    /// The equivalent `tracing` filter directive, so that `main` can build its subscriber
    /// from `loglevel`: Redis's five levels map onto tracing's trace/debug/info/warn/off.
    pub fn tracing_filter(self) -> &'static str {
        match self {
            Self::Debug => "trace",
            Self::Verbose => "debug",
            Self::Notice => "info",
            Self::Warning => "warn",
            Self::Nothing => "off",
        }
    }
}

/// One `save <seconds> <changes>` point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    /// At least 1.
    pub seconds: u64,
    /// At least 0.
    pub changes: u64,
}

/// Output buffer limits of one client class; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBufferLimit {
    /// Close the client as soon as its pending output exceeds this many bytes.
    pub hard_bytes: u64,
    /// Close the client when its pending output stays above this many bytes ...
    pub soft_bytes: u64,
    /// ... for this many seconds.
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit`, per client class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientOutputBufferLimits {
    /// Ordinary clients.
    pub normal: OutputBufferLimit,
    /// Replicas (`replica`, or its old name `slave`).
    pub replica: OutputBufferLimit,
    /// Clients in Pub/Sub mode.
    pub pubsub: OutputBufferLimit,
}

/// `tls-auth-clients`: whether a TLS client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    /// No certificate is asked for.
    No,
    /// A certificate signed by a configured CA is required (Redis's default).
    #[default]
    Yes,
    /// A certificate is asked for; a client may send none, but one it sends must verify.
    Optional,
}

impl TlsAuthClients {
    /// The names accepted in configuration, in Redis's order.
    pub const NAMES: [&'static str; 3] = ["no", "yes", "optional"];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => Self::No,
            2 => Self::Optional,
            _ => Self::Yes,
        }
    }
}

/// The `tls-*` directives, as Redis's `redisTLSContextConfig` plus the port and the
/// client-authentication mode. Paths and lists are kept as written; an empty string is
/// unset (Redis's `EMPTY_STRING_IS_NULL`). [`crate::tls`] turns them into rustls
/// configurations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `tls-port`; 0 = no TLS listener.
    pub port: u16,
    /// `tls-cert-file`: the server's certificate chain (PEM), also the client certificate
    /// of outgoing links unless `tls-client-cert-file` is set.
    pub cert_file: String,
    /// `tls-key-file`: the private key of `tls-cert-file` (PEM, unencrypted).
    pub key_file: String,
    /// `tls-client-cert-file` / `tls-client-key-file`: the certificate outgoing links
    /// (replication, cluster) present.
    pub client_cert_file: String,
    pub client_key_file: String,
    /// `tls-ca-cert-file`: CA certificates (PEM) that client and peer certificates must chain to.
    pub ca_cert_file: String,
    /// `tls-ca-cert-dir`: a directory of such CA certificates, every file in it read.
    pub ca_cert_dir: String,
    /// `tls-auth-clients`.
    pub auth_clients: TlsAuthClients,
    /// `tls-protocols`: space-separated versions; empty = `TLSv1.2 TLSv1.3`.
    pub protocols: String,
    /// `tls-ciphersuites`: colon-separated TLS 1.3 suites; empty = rustls's defaults.
    pub ciphersuites: String,
    /// `tls-replication`: replication links use TLS.
    pub replication: bool,
    /// `tls-cluster`: cluster links use TLS.
    pub cluster: bool,
}

impl TlsSettings {
    /// Whether a TLS context must be built (Redis's `tls_port || tls_replication || tls_cluster`).
    pub fn in_use(&self) -> bool {
        self.port != 0 || self.replication || self.cluster
    }
}

/// The server's configuration. Fields are typed; their defaults, units and meaning are in
/// [`DIRECTIVES`], which is also the only place that parses or prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `bind`: addresses to listen on; a leading `-` marks an optional address.
    pub bind: Vec<String>,
    /// `port`.
    pub port: u16,
    /// `protected-mode`.
    pub protected_mode: bool,
    /// `requirepass`; `None` when no password is set.
    pub requirepass: Option<String>,
    /// `dir`: the data directory.
    pub dir: PathBuf,
    /// `appendonly` (reported only; Rill always logs).
    pub appendonly: bool,
    /// `appendfsync`.
    pub appendfsync: AppendFsync,
    /// `databases`.
    pub databases: u32,
    /// `maxclients`.
    pub maxclients: u32,
    /// `io-threads`: runtime worker threads; 0 = one per CPU core.
    pub io_threads: u32,
    /// `timeout`, in seconds; 0 = never.
    pub timeout: u32,
    /// `tcp-keepalive`, in seconds; 0 = off.
    pub tcp_keepalive: u32,
    /// `loglevel`.
    pub loglevel: LogLevel,
    /// `logfile`; `None` logs to standard output.
    pub logfile: Option<PathBuf>,
    /// `proto-max-bulk-len`, in bytes.
    pub proto_max_bulk_len: u64,
    /// `client-query-buffer-limit`, in bytes.
    pub client_query_buffer_limit: u64,
    /// `client-output-buffer-limit`.
    pub client_output_buffer_limit: ClientOutputBufferLimits,
    /// `stream-node-max-entries`; 0 = unlimited.
    pub stream_node_max_entries: u64,
    /// `stream-node-max-bytes`, in bytes; 0 = unlimited.
    pub stream_node_max_bytes: u64,
    /// `stream-idmp-duration`, in seconds: IDMP-DURATION of streams created from now on.
    pub stream_idmp_duration: u64,
    /// `stream-idmp-maxsize`, IIDs per producer: IDMP-MAXSIZE of streams created from now on.
    pub stream_idmp_maxsize: u64,
    /// `stream-retention-max-age`, in ms: default maximum entry age of every stream (0 = none).
    pub stream_retention_max_age: u64,
    /// `stream-retention-max-bytes`: default maximum stream size (0 = none).
    pub stream_retention_max_bytes: u64,
    /// `stream-retention-max-len`: default maximum entries per stream (0 = none).
    pub stream_retention_max_len: u64,
    /// `stream-retention-refs`: default reference policy of retention trims
    /// (0 keepref, 1 delref, 2 acked: `RefPolicy::from_code`).
    pub stream_retention_refs: usize,
    /// `stream-retention-interval`, in ms: how often the retention sweep runs.
    pub stream_retention_interval: u64,
    /// `daemonize`; always `false` (`yes` is refused).
    pub daemonize: bool,
    /// `supervised`: how readiness is reported to a supervisor.
    pub supervised: Supervised,
    /// `pidfile`; `None` writes no pid file.
    pub pidfile: Option<PathBuf>,
    /// `save` (reported only).
    pub save: Vec<SavePoint>,
    /// `hz`, already capped to 1..=500.
    pub hz: u32,
    /// `segment-size`, in bytes.
    pub segment_size: u64,
    /// `cache-size`, in bytes.
    pub cache_size: u64,
    /// `checkpoint-interval`, in seconds.
    pub checkpoint_interval: u64,
    /// `compaction-threshold`, in percent (0 = never compact).
    pub compaction_threshold: u8,
    /// `cluster-enabled`.
    pub cluster_enabled: bool,
    /// `cluster-raft`: the log is a Raft log of a group of one voter (issue #14, step D).
    pub cluster_raft: bool,
    /// `cluster-config-file`, relative to `dir` unless absolute.
    pub cluster_config_file: PathBuf,
    /// `cluster-node-timeout`, in milliseconds (not used yet).
    pub cluster_node_timeout: u64,
    /// `cluster-announce-ip`; `None` when unset.
    pub cluster_announce_ip: Option<String>,
    /// `cluster-secret`: what the Raft links of a replicated cluster authenticate with.
    pub cluster_secret: String,
    /// `cluster-peer-route`: (peer's cluster bus address, address to dial instead) pairs,
    /// for fault proxies in tests and for NAT; empty by default.
    pub cluster_peer_routes: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// `cluster-announce-port`; 0 = the listening port.
    pub cluster_announce_port: u16,
    /// `cluster-port`; 0 = port + 10000.
    pub cluster_port: u16,
    /// `notify-keyspace-events`: the classes of keyspace events published, as
    /// [`keyspace_events`] flags (0: none, the default).
    pub notify_keyspace_events: u32,
    /// `enable-protected-configs`: who may CONFIG SET the protected directives (`dir`).
    pub enable_protected_configs: ProtectedAction,
    /// `enable-debug-command`: who may run DEBUG.
    pub enable_debug_command: ProtectedAction,
    /// `enable-module-command`: accepted so Redis's stock configuration files load (Rill
    /// has no MODULE command).
    pub enable_module_command: ProtectedAction,
    /// `aclfile`: the ACL users' file (ACL LOAD / ACL SAVE); `None` without one.
    pub aclfile: Option<PathBuf>,
    /// `acl-pubsub-default`: new users get every channel (`allchannels`) or none
    /// (`resetchannels`, Redis 7's default).
    pub acl_pubsub_default_all: bool,
    /// `acllog-max-len`: entries ACL LOG keeps.
    pub acllog_max_len: u64,
    /// `user <name> <rules…>` lines, in order, applied at start-up (not a CONFIG GET
    /// parameter, as in Redis).
    pub users: Vec<Vec<String>>,
    /// The `tls-*` directives.
    pub tls: TlsSettings,
    /// `metrics-port`: the Prometheus endpoint's port; 0 = off.
    pub metrics_port: u16,
    /// `metrics-bind`: the address the Prometheus endpoint listens on.
    pub metrics_bind: String,
    /// `metrics-max-streams`: streams (and groups per stream, consumers per group) with
    /// series of their own.
    pub metrics_max_streams: usize,
    /// `metrics-streams`: glob patterns of streams always described first.
    pub metrics_streams: Vec<String>,
    /// The file the configuration was loaded from, made absolute, for CONFIG REWRITE.
    config_file: Option<PathBuf>,
}

/// Where a rejected configuration line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a configuration file (1-based).
    File { path: PathBuf, line: usize },
    /// The n-th `--directive` option of the command line (1-based).
    CommandLine { option: usize },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File { path, line } => write!(
                f,
                "Reading the configuration file '{}', at line {line}",
                path.display()
            ),
            Origin::CommandLine { option } => {
                write!(f, "Reading the command line options, at option {option}")
            }
        }
    }
}

/// Everything that can go wrong with configuration. The start-up variants render as the text
/// an operator sees before the process exits; the CONFIG variants render as the RESP error
/// text (with the `ERR ` prefix, without the leading `-`), so the command layer can send
/// `to_string()` as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A line of a file or a command-line option was rejected; start-up must stop.
    #[error(
        "\n*** FATAL CONFIG FILE ERROR (Rill {}) ***\n{origin}\n>>> '{line}'\n{reason}",
        env!("CARGO_PKG_VERSION")
    )]
    BadLine {
        origin: Origin,
        line: String,
        reason: String,
    },
    /// The configuration as a whole is unusable (e.g. the log file cannot be opened).
    #[error(
        "\n*** FATAL CONFIG FILE ERROR (Rill {}) ***\n{reason}",
        env!("CARGO_PKG_VERSION")
    )]
    Invalid { reason: String },
    /// A configuration file (or an included one) could not be read.
    #[error("Fatal error, can't open config file '{}': {}", path.display(), io_reason(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The command line does not have the shape `rill [config-file] [--directive value ...]`.
    #[error("{0}")]
    CommandLine(String),
    /// CONFIG SET named a directive that does not exist.
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    UnknownOption(String),
    /// CONFIG SET was refused; nothing was changed.
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    SetFailed { name: String, reason: String },
    /// CONFIG REWRITE without a configuration file.
    #[error("ERR The server is running without a config file")]
    NoConfigFile,
    /// CONFIG REWRITE could not read or replace the file.
    #[error("ERR Rewriting config file: {}", io_reason(.0))]
    Rewrite(#[source] io::Error),
}

/// The `strerror` part of an I/O error, without Rust's " (os error N)" suffix, as Redis
/// prints it.
fn io_reason(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

impl Default for Config {
    /// The built-in defaults, obtained by parsing each directive's `default` text with the
    /// same code that parses files, so a default can never disagree with its documentation.
    fn default() -> Self {
        let mut config = Config::unset();
        let mut state = LoadState::default();
        for directive in DIRECTIVES {
            let parsed = split_args(directive.default)
                .map(|args| {
                    if directive.is_multi_arg() {
                        args
                    } else {
                        // A single-value default like `""` is one (empty) argument.
                        vec![args.into_iter().next().unwrap_or_default()]
                    }
                })
                .ok_or_else(|| "unbalanced quotes".to_string())
                .and_then(|args| directive.apply(&mut config, &args, &mut state));
            if let Err(reason) = parsed {
                // Only a programming error in the table can get here; the unit tests
                // load every default.
                panic!(
                    "built-in default of '{}' is invalid: {reason}",
                    directive.name
                );
            }
        }
        config
    }
}

/// Why applying one directive failed: a reason for the current line, or an error already
/// located in an included file.
enum Failure {
    Reason(String),
    Nested(ConfigError),
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Reason(reason)
    }
}

impl Config {
    /// Where the cluster config file lives: `cluster-config-file` inside `dir` (as Redis,
    /// which chdirs into `dir` before opening it), or as given when absolute.
    pub fn cluster_config_path(&self) -> PathBuf {
        self.dir.join(&self.cluster_config_file)
    }

    /// The cluster bus port this node reports for a client port: `cluster-port`, or the
    /// client port + 10000 when it is 0 (Redis's `CLUSTER_PORT_INCR`).
    pub fn cluster_bus_port(&self, client_port: u16) -> u16 {
        if self.cluster_port != 0 {
            self.cluster_port
        } else {
            client_port.wrapping_add(10000)
        }
    }
}

impl Config {
    /// Placeholder values that every directive's default then overwrites.
    fn unset() -> Self {
        Config {
            bind: Vec::new(),
            port: 0,
            protected_mode: false,
            requirepass: None,
            dir: PathBuf::new(),
            appendonly: false,
            appendfsync: AppendFsync::Always,
            databases: 0,
            maxclients: 0,
            io_threads: 0,
            timeout: 0,
            tcp_keepalive: 0,
            loglevel: LogLevel::Notice,
            logfile: None,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            client_output_buffer_limit: ClientOutputBufferLimits::default(),
            stream_node_max_entries: 0,
            stream_node_max_bytes: 0,
            stream_idmp_duration: 0,
            stream_idmp_maxsize: 0,
            stream_retention_max_age: 0,
            stream_retention_max_bytes: 0,
            stream_retention_max_len: 0,
            stream_retention_refs: 0,
            stream_retention_interval: 0,
            daemonize: false,
            supervised: Supervised::No,
            pidfile: None,
            save: Vec::new(),
            hz: 0,
            segment_size: 0,
            cache_size: 0,
            checkpoint_interval: 0,
            compaction_threshold: 0,
            cluster_enabled: false,
            cluster_raft: false,
            cluster_config_file: PathBuf::new(),
            cluster_node_timeout: 0,
            cluster_announce_ip: None,
            cluster_secret: String::new(),
            cluster_peer_routes: Vec::new(),
            cluster_announce_port: 0,
            cluster_port: 0,
            notify_keyspace_events: 0,
            enable_protected_configs: ProtectedAction::No,
            enable_debug_command: ProtectedAction::No,
            enable_module_command: ProtectedAction::No,
            aclfile: None,
            acl_pubsub_default_all: false,
            acllog_max_len: 0,
            users: Vec::new(),
            tls: TlsSettings::default(),
            metrics_port: 0,
            metrics_bind: String::new(),
            metrics_max_streams: 0,
            metrics_streams: Vec::new(),
            config_file: None,
        }
    }

    /// Loads the configuration like `redis-server`: defaults, then the file (with its
    /// `include`s), then the command-line overrides in order, so that the last setting wins.
    ///
    /// # Errors
    /// [`ConfigError::Open`] if a file cannot be read, [`ConfigError::BadLine`] naming the file
    /// and line (or the option) of the first bad directive, [`ConfigError::Invalid`] if the
    /// log file cannot be opened.
    pub fn load(config_file: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut state = LoadState {
            reading_file: true,
            save_seen: false,
        };
        if let Some(path) = config_file {
            config.load_file(path, &mut state, 0)?;
            // Like Redis's getAbsolutePath: CONFIG REWRITE must find the file even if the
            // working directory changes later.
            let absolute = std::path::absolute(path).map_err(|source| ConfigError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            config.config_file = Some(absolute);
        }
        for (index, (name, args)) in overrides.iter().enumerate() {
            let line = render_line(name, args);
            config
                .apply_line(name, args.clone(), &mut state, 0)
                .map_err(|failure| match failure {
                    Failure::Nested(error) => error,
                    Failure::Reason(reason) => ConfigError::BadLine {
                        origin: Origin::CommandLine { option: index + 1 },
                        line,
                        reason,
                    },
                })?;
        }
        config.check_logfile()?;
        Ok(config)
    }

    /// Parses configuration text as if it were the file `path`, without touching the disk
    /// except for `include`s. Useful for tests and for embedding.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut state = LoadState {
            reading_file: true,
            save_seen: false,
        };
        config.load_text(text, path, &mut state, 0)?;
        Ok(config)
    }

    /// The file the configuration was loaded from (absolute), if any: CONFIG REWRITE needs it.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    fn load_file(
        &mut self,
        path: &Path,
        state: &mut LoadState,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let bytes = fs::read(path).map_err(|source| ConfigError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        self.load_text(&text, path, state, depth)
    }

    fn load_text(
        &mut self,
        text: &str,
        path: &Path,
        state: &mut LoadState,
        depth: usize,
    ) -> Result<(), ConfigError> {
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad_line = |reason: String| ConfigError::BadLine {
                origin: Origin::File {
                    path: path.to_path_buf(),
                    line: index + 1,
                },
                line: line.to_string(),
                reason,
            };
            let Some(mut args) = split_args(line) else {
                return Err(bad_line(
                    "Unbalanced quotes in configuration line".to_string(),
                ));
            };
            if args.is_empty() {
                continue;
            }
            let name = args.remove(0);
            self.apply_line(&name, args, state, depth)
                .map_err(|failure| match failure {
                    Failure::Nested(error) => error,
                    Failure::Reason(reason) => bad_line(reason),
                })?;
        }
        Ok(())
    }

    /// Applies one directive from a file or the command line (Redis's
    /// `loadServerConfigFromString` body).
    fn apply_line(
        &mut self,
        name: &str,
        args: Vec<String>,
        state: &mut LoadState,
        depth: usize,
    ) -> Result<(), Failure> {
        if let Some(directive) = find(name) {
            if !directive.is_multi_arg() && args.len() != 1 {
                return Err("wrong number of arguments".to_string().into());
            }
            let args = if directive.is_multi_arg() {
                expand_single_multi_arg(args)
                    .ok_or_else(|| "Unbalanced quotes in configuration line".to_string())?
            } else {
                args
            };
            return Ok(directive.apply(self, &args, state)?);
        }
        if name.eq_ignore_ascii_case("user") && !args.is_empty() {
            // Redis's UsersToLoad: the rules are checked when the users are created at
            // start-up, against the command table.
            self.users.push(args);
            return Ok(());
        }
        match args.as_slice() {
            [path] if name.eq_ignore_ascii_case("include") => self.include(path, state, depth + 1),
            _ => Err("Bad directive or wrong number of arguments"
                .to_string()
                .into()),
        }
    }

    /// `include path`: a relative path is relative to the working directory, as in Redis.
    /// Wildcards in the file name include every match in sorted order, and none is not an
    /// error (so an empty `conf.d/*.conf` is fine), as Redis's `glob` use does.
    fn include(&mut self, path: &str, state: &mut LoadState, depth: usize) -> Result<(), Failure> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(Failure::Reason(format!(
                "include nesting is deeper than {MAX_INCLUDE_DEPTH} levels (does a file include itself?)"
            )));
        }
        if !path.contains(['*', '?', '[']) {
            return self
                .load_file(Path::new(path), state, depth)
                .map_err(Failure::Nested);
        }
        let as_path = Path::new(path);
        let pattern = as_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = match as_path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if parent.to_string_lossy().contains(['*', '?', '[']) {
            return Err(Failure::Reason(
                "wildcards in include paths are only supported in the file name".to_string(),
            ));
        }
        let Ok(entries) = fs::read_dir(&parent) else {
            return Ok(());
        };
        let mut matches: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                // glob(3) does not let wildcards match a leading dot.
                (!name.starts_with('.') || pattern.starts_with('.'))
                    && glob_match(&pattern, &name, false)
            })
            .map(|entry| {
                if as_path.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
                    parent.join(entry.file_name())
                } else {
                    PathBuf::from(entry.file_name())
                }
            })
            .collect();
        matches.sort();
        for file in matches {
            self.load_file(&file, state, depth)
                .map_err(Failure::Nested)?;
        }
        Ok(())
    }

    /// Redis refuses to start when it cannot open its log file, because it could not report
    /// anything later.
    fn check_logfile(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.logfile {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| ConfigError::Invalid {
                    reason: format!("Can't open the log file: {}", io_reason(&error)),
                })?;
        }
        Ok(())
    }

    /// CONFIG GET for one pattern: a name without `*`, `?` or `[` is looked up exactly
    /// (case-insensitively, answered under the name as the client wrote it, as Redis does);
    /// otherwise every directive whose name matches the glob, case-insensitively.
    ///
    /// # Returns
    /// (name, value) pairs in table order; empty when nothing matches.
    pub fn get(&self, pattern: &str) -> Vec<(String, String)> {
        if !pattern.contains(['*', '?', '[']) {
            return find(pattern)
                .map(|directive| vec![(pattern.to_string(), directive.get(self))])
                .unwrap_or_default();
        }
        DIRECTIVES
            .iter()
            .filter(|directive| glob_match(pattern, directive.name, true))
            .map(|directive| (directive.name.to_string(), directive.get(self)))
            .collect()
    }

    /// CONFIG GET with several patterns: like [`Config::get`] for each, each directive
    /// reported once, in the order first matched.
    pub fn get_many<S: AsRef<str>>(&self, patterns: &[S]) -> Vec<(String, String)> {
        let mut seen: Vec<&'static str> = Vec::new();
        let mut out = Vec::new();
        for pattern in patterns {
            for (name, value) in self.get(pattern.as_ref()) {
                if let Some(directive) = find(&name) {
                    if !seen.contains(&directive.name) {
                        seen.push(directive.name);
                        out.push((name, value));
                    }
                }
            }
        }
        out
    }

    /// CONFIG SET with one or more (name, value) pairs, all or nothing: every name is checked
    /// (unknown, immutable, duplicate) before any value is parsed, and the values are applied
    /// to a copy that replaces `self` only if all of them succeed. Multi-argument directives
    /// take their arguments space-separated in the one value (`CONFIG SET save "900 1"`).
    ///
    /// # Errors
    /// Redis's texts: `Unknown option or number of arguments for CONFIG SET - '<name>'`, or
    /// `CONFIG SET failed (possibly related to argument '<name>') - <reason>` with reasons
    /// such as `can't set immutable config`, `duplicate parameter` or the value's parse error.
    pub fn set<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        pairs: &[(N, V)],
    ) -> Result<(), ConfigError> {
        self.set_by(pairs, false)
    }

    /// CONFIG SET as [`Config::set`], for a client connected over loopback
    /// (`client_is_local`) or not: `enable-protected-configs` decides whether it may change
    /// the protected directives.
    ///
    /// # Errors
    /// As [`Config::set`], and `can't set protected config` for a protected directive the
    /// client may not change.
    pub fn set_by<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        pairs: &[(N, V)],
        client_is_local: bool,
    ) -> Result<(), ConfigError> {
        let protected_allowed = self.enable_protected_configs.allows(client_is_local);
        let mut chosen: Vec<&'static Directive> = Vec::with_capacity(pairs.len());
        let mut refusal: Option<ConfigError> = None;
        for (name, _) in pairs {
            let name = name.as_ref();
            let Some(directive) = find(name) else {
                // As in Redis, the first problem in argument order is the one reported.
                refusal.get_or_insert_with(|| ConfigError::UnknownOption(name.to_string()));
                continue;
            };
            if refusal.is_none() {
                if directive.protected && !protected_allowed {
                    refusal = Some(ConfigError::SetFailed {
                        name: name.to_string(),
                        reason: "can't set protected config".to_string(),
                    });
                } else if !directive.mutable {
                    refusal = Some(ConfigError::SetFailed {
                        name: name.to_string(),
                        reason: "can't set immutable config".to_string(),
                    });
                } else if chosen.iter().any(|d| std::ptr::eq(*d, directive)) {
                    refusal = Some(ConfigError::SetFailed {
                        name: name.to_string(),
                        reason: "duplicate parameter".to_string(),
                    });
                }
            }
            chosen.push(directive);
        }
        if let Some(error) = refusal {
            return Err(error);
        }
        let mut updated = self.clone();
        let mut state = LoadState::default();
        for (directive, (_, value)) in chosen.iter().zip(pairs) {
            let value = value.as_ref();
            let args = if directive.is_multi_arg() {
                split_set_value(value)
            } else {
                vec![value.to_string()]
            };
            directive
                .apply(&mut updated, &args, &mut state)
                .map_err(|reason| ConfigError::SetFailed {
                    name: directive.name.to_string(),
                    reason,
                })?;
        }
        *self = updated;
        Ok(())
    }

    /// CONFIG REWRITE: rewrites the file the configuration was loaded from.
    ///
    /// # Errors
    /// [`ConfigError::NoConfigFile`] when started without one; [`ConfigError::Rewrite`] when
    /// the file cannot be read or replaced.
    pub fn rewrite(&self) -> Result<(), ConfigError> {
        self.rewrite_with_users(None)
    }

    /// CONFIG REWRITE as the server runs it: `users` are the ACL users as `user …` lines
    /// (Redis's `rewriteConfigUserOption`: they replace the file's `user` lines; with an
    /// `aclfile` the server passes none, and the file's `user` lines go). `None` keeps the
    /// file's `user` lines as they are.
    ///
    /// # Errors
    /// As [`Config::rewrite`].
    pub fn rewrite_with_users(&self, users: Option<&[String]>) -> Result<(), ConfigError> {
        let path = self
            .config_file
            .as_deref()
            .ok_or(ConfigError::NoConfigFile)?;
        rewrite::rewrite_file(self, path, users).map_err(ConfigError::Rewrite)
    }

    /// Rewrites `path` to hold the current configuration, keeping its comments, layout and
    /// lines Rill does not understand, as CONFIG REWRITE does; see [`rewrite`] for the rules.
    /// The new file replaces the old one atomically (temporary file, fsync, rename).
    ///
    /// # Errors
    /// [`ConfigError::Rewrite`] when the file cannot be read or replaced.
    pub fn rewrite_to(&self, path: &Path) -> Result<(), ConfigError> {
        rewrite::rewrite_file(self, path, None).map_err(ConfigError::Rewrite)
    }
}

/// A command-line override: the directive name (lower-case, without `--`) and its arguments.
pub type Override = (String, Vec<String>);

/// Renders a directive as a redis.conf line for error messages, quoting the arguments like
/// Redis does when it turns command-line options into configuration text.
fn render_line(name: &str, args: &[String]) -> String {
    std::iter::once(name.to_string())
        .chain(args.iter().map(|arg| quote(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits the process arguments (without the program name) like `redis-server`: a first
/// argument not starting with `-` is the configuration file; every `--name` starts a
/// directive whose values are the following arguments up to the next `--name`
/// (`--save 900 1 --port 7000`). A `--name` that has no value yet takes the next argument
/// as its value even if it starts with `--` (`--requirepass --secret`), except that `--save`
/// directly followed by another option or at the end means `save ""`. `--port 7000` given
/// as a single argument is split like a configuration line.
///
/// # Errors
/// [`ConfigError::CommandLine`] for a value with no directive before it, unbalanced quotes
/// inside a `--` argument, or `-` (reading the configuration from stdin is not supported).
pub fn parse_cli(args: &[String]) -> Result<(Option<PathBuf>, Vec<Override>), ConfigError> {
    let mut index = 0;
    let mut config_file = None;
    if let Some(first) = args.first() {
        if !first.starts_with('-') {
            config_file = Some(PathBuf::from(first));
            index = 1;
        }
    }
    let mut options: Vec<Override> = Vec::new();
    let mut expecting_value = false;
    while index < args.len() {
        let arg = &args[index];
        let is_last = index + 1 == args.len();
        let next_is_option = args
            .get(index + 1)
            .is_some_and(|next| next.starts_with("--"));
        if arg == "-" {
            return Err(ConfigError::CommandLine(
                "Reading the configuration from standard input ('-') is not supported; pass a file name".to_string(),
            ));
        } else if !expecting_value && arg.starts_with("--") {
            let mut words = split_args(&arg[2..]).ok_or_else(|| {
                ConfigError::CommandLine(format!("Unbalanced quotes in option '{arg}'"))
            })?;
            if words.is_empty() {
                return Err(ConfigError::CommandLine(format!(
                    "Option '{arg}' has no directive name"
                )));
            }
            let name = words.remove(0).to_ascii_lowercase();
            if words.is_empty() {
                expecting_value = true;
                if name == "save" && (is_last || next_is_option) {
                    words.push(String::new());
                    expecting_value = false;
                }
            }
            options.push((name, words));
        } else {
            let Some((_, values)) = options.last_mut() else {
                return Err(ConfigError::CommandLine(format!(
                    "Unexpected argument '{arg}': only the first argument may be a configuration file; directives are given as --name value"
                )));
            };
            values.push(arg.clone());
            expecting_value = false;
        }
        index += 1;
    }
    Ok((config_file, options))
}

#[cfg(test)]
mod tests;
