//! The one table of configuration directives. Every directive is declared here once — name,
//! value type, default, whether CONFIG SET may change it, and its documentation — and that
//! single entry drives the file parser, command-line overrides, CONFIG GET, CONFIG SET,
//! CONFIG REWRITE, `Config::default()` and the generated `redis.conf.example`.

use std::path::PathBuf;

use super::syntax::{format_memory, parse_integer, parse_memory, quote, split_args};
use super::{
    AppendFsync, Config, LogLevel, OutputBufferLimit, ProtectedAction, SavePoint, Supervised,
    TlsAuthClients,
};

/// Redis caps `hz` to this range after accepting any non-negative value (`updateHZ`).
const MIN_HZ: i64 = 1;
const MAX_HZ: i64 = 500;
/// Redis's `CONFIG_BINDADDR_MAX`.
const MAX_BIND_ADDRESSES: usize = 16;
const MB: u64 = 1024 * 1024;
/// `INT_MAX`, the upper bound Redis gives most `int` directives.
const INT_MAX: i64 = i32::MAX as i64;
/// `LONG_MAX` / `LLONG_MAX` on 64-bit Linux, as Redis's bounds and error texts show them.
const LONG_MAX: u64 = i64::MAX as u64;

/// What kind of value a directive takes; public so that documentation and tools can describe
/// a directive without knowing the `Config` field behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `yes` or `no`, case-insensitive.
    Bool,
    /// A plain integer within inclusive bounds.
    Integer { min: i64, max: i64 },
    /// A byte count with optional unit (`1k`, `1kb`, `1m`, `1mb`, `1g`, `1gb`).
    Memory { min: u64, max: u64 },
    /// One of a fixed set of names, case-insensitive.
    Enum(&'static [&'static str]),
    /// Free text.
    String,
    /// Several arguments with a grammar of their own (`save`, `bind`, `client-output-buffer-limit`).
    Multi,
}

/// Mutable state of one load (file + includes + command line) that a single directive needs:
/// Redis's `save` quirk, where the first `save` line of a load replaces the built-in save
/// points and later ones add to them, while CONFIG SET always replaces.
#[derive(Debug, Default)]
pub(crate) struct LoadState {
    pub(crate) reading_file: bool,
    pub(crate) save_seen: bool,
}

/// How a directive reads and writes its typed field. Plain `fn` pointers keep the table a
/// `static` with no allocation.
pub(crate) enum Access {
    Bool {
        get: fn(&Config) -> bool,
        set: fn(&mut Config, bool) -> Result<(), String>,
    },
    Integer {
        min: i64,
        max: i64,
        get: fn(&Config) -> i64,
        set: fn(&mut Config, i64),
    },
    Memory {
        min: u64,
        max: u64,
        get: fn(&Config) -> u64,
        set: fn(&mut Config, u64),
    },
    Enum {
        names: &'static [&'static str],
        get: fn(&Config) -> usize,
        set: fn(&mut Config, usize),
    },
    /// `omit_empty`: the empty string means "unset", and CONFIG REWRITE then removes the line
    /// (Redis's `EMPTY_STRING_IS_NULL`).
    Text {
        omit_empty: bool,
        get: fn(&Config) -> String,
        set: fn(&mut Config, String) -> Result<(), String>,
    },
    Multi {
        set: fn(&mut Config, &[String], &mut LoadState) -> Result<(), String>,
        get: fn(&Config) -> String,
        lines: fn(&Config) -> Vec<String>,
    },
}

/// One configuration directive.
pub struct Directive {
    /// The lower-case name used in files, on the command line and by CONFIG GET/SET.
    pub name: &'static str,
    /// The default, written as redis.conf arguments (parsed with the same code as a file line).
    pub default: &'static str,
    /// Whether CONFIG SET may change it while the server runs; the others are read at start-up
    /// only, and CONFIG SET answers "can't set immutable config".
    pub mutable: bool,
    /// Redis's `PROTECTED_CONFIG`: a path the server writes to, which CONFIG SET may change
    /// only for the clients `enable-protected-configs` allows, so that knowing the password
    /// is not enough to make the server write files elsewhere. Checked before `mutable`, so
    /// the refusal reads as Redis's ("can't set protected config").
    pub protected: bool,
    /// What the directive does, its unit and its special values.
    pub doc: &'static str,
    pub(crate) access: Access,
}

impl Directive {
    /// The value type, for documentation and tooling.
    pub fn value_type(&self) -> ValueType {
        match self.access {
            Access::Bool { .. } => ValueType::Bool,
            Access::Integer { min, max, .. } => ValueType::Integer { min, max },
            Access::Memory { min, max, .. } => ValueType::Memory { min, max },
            Access::Enum { names, .. } => ValueType::Enum(names),
            Access::Text { .. } => ValueType::String,
            Access::Multi { .. } => ValueType::Multi,
        }
    }

    /// Whether the directive takes a variable number of arguments (Redis's `MULTI_ARG_CONFIG`).
    pub fn is_multi_arg(&self) -> bool {
        matches!(self.access, Access::Multi { .. })
    }

    /// Parses `args` and stores the value in `config`; the error is Redis's reason text
    /// (e.g. "argument couldn't be parsed into an integer"). Single-value directives must be
    /// given exactly one argument by the caller.
    pub(crate) fn apply(
        &self,
        config: &mut Config,
        args: &[String],
        state: &mut LoadState,
    ) -> Result<(), String> {
        let single = || -> Result<&str, String> {
            match args {
                [one] => Ok(one.as_str()),
                _ => Err("wrong number of arguments".to_string()),
            }
        };
        match &self.access {
            Access::Bool { set, .. } => {
                let value = single()?;
                if value.eq_ignore_ascii_case("yes") {
                    set(config, true)
                } else if value.eq_ignore_ascii_case("no") {
                    set(config, false)
                } else {
                    Err("argument must be 'yes' or 'no'".to_string())
                }
            }
            Access::Integer { min, max, set, .. } => {
                let value = parse_integer(single()?)
                    .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
                if value < *min || value > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                set(config, value);
                Ok(())
            }
            Access::Memory { min, max, set, .. } => {
                let value = parse_memory(single()?)
                    .ok_or_else(|| "argument must be a memory value".to_string())?;
                if value < *min || value > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                set(config, value);
                Ok(())
            }
            Access::Enum { names, set, .. } => {
                let value = single()?;
                let index = names
                    .iter()
                    .position(|name| name.eq_ignore_ascii_case(value))
                    .ok_or_else(|| {
                        format!(
                            "argument(s) must be one of the following: {}",
                            names.join(", ")
                        )
                    })?;
                set(config, index);
                Ok(())
            }
            Access::Text { set, .. } => set(config, single()?.to_string()),
            Access::Multi { set, .. } => set(config, args, state),
        }
    }

    /// The value as CONFIG GET shows it.
    pub fn get(&self, config: &Config) -> String {
        match &self.access {
            Access::Bool { get, .. } => if get(config) { "yes" } else { "no" }.to_string(),
            Access::Integer { get, .. } => get(config).to_string(),
            Access::Memory { get, .. } => get(config).to_string(),
            Access::Enum { names, get, .. } => names
                .get(get(config))
                .copied()
                .unwrap_or("unknown")
                .to_string(),
            Access::Text { get, .. } => get(config),
            Access::Multi { get, .. } => get(config),
        }
    }

    /// The redis.conf lines that reproduce the current value, as CONFIG REWRITE writes them.
    /// Empty for an unset optional string, whose lines REWRITE then removes.
    pub fn lines(&self, config: &Config) -> Vec<String> {
        let name = self.name;
        match &self.access {
            Access::Bool { .. } | Access::Integer { .. } | Access::Enum { .. } => {
                vec![format!("{name} {}", self.get(config))]
            }
            Access::Memory { get, .. } => vec![format!("{name} {}", format_memory(get(config)))],
            Access::Text {
                omit_empty, get, ..
            } => {
                let value = get(config);
                if *omit_empty && value.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("{name} {}", quote(&value))]
                }
            }
            Access::Multi { lines, .. } => lines(config),
        }
    }
}

/// Looks a directive up by name, case-insensitively, as Redis's config dictionary does.
pub fn find(name: &str) -> Option<&'static Directive> {
    DIRECTIVES
        .iter()
        .find(|directive| directive.name.eq_ignore_ascii_case(name))
}

fn path_text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

fn optional_path_text(path: &Option<PathBuf>) -> String {
    path.as_deref().map(path_text).unwrap_or_default()
}

fn optional_path(value: String) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

fn set_save(config: &mut Config, args: &[String], state: &mut LoadState) -> Result<(), String> {
    // A single empty argument (`save ""`) means "no save points".
    let args = match args {
        [only] if only.is_empty() => &[][..],
        other => other,
    };
    if !args.len().is_multiple_of(2) {
        return Err("Invalid save parameters".to_string());
    }
    let mut points = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        let seconds = pair[0].parse::<i64>().ok().filter(|&s| s >= 1);
        let changes = pair[1].parse::<i64>().ok().filter(|&c| c >= 0);
        match (seconds, changes) {
            (Some(seconds), Some(changes)) => points.push(SavePoint {
                seconds: seconds.unsigned_abs(),
                changes: changes.unsigned_abs(),
            }),
            _ => return Err("Invalid save parameters".to_string()),
        }
    }
    if state.reading_file && state.save_seen {
        config.save.extend(points);
    } else {
        config.save = points;
    }
    state.save_seen = true;
    Ok(())
}

fn get_save(config: &Config) -> String {
    config
        .save
        .iter()
        .map(|p| format!("{} {}", p.seconds, p.changes))
        .collect::<Vec<_>>()
        .join(" ")
}

fn save_lines(config: &Config) -> Vec<String> {
    if config.save.is_empty() {
        vec!["save \"\"".to_string()]
    } else {
        vec![format!("save {}", get_save(config))]
    }
}

fn set_bind(config: &mut Config, args: &[String], _: &mut LoadState) -> Result<(), String> {
    if args.len() > MAX_BIND_ADDRESSES {
        return Err("Too many bind addresses specified.".to_string());
    }
    config.bind = match args {
        [only] if only.is_empty() => Vec::new(),
        other => other.to_vec(),
    };
    Ok(())
}

fn bind_lines(config: &Config) -> Vec<String> {
    if config.bind.is_empty() {
        vec!["bind \"\"".to_string()]
    } else {
        vec![format!("bind {}", config.bind.join(" "))]
    }
}

/// `cluster-peer-route`: pairs of addresses. Within one load (file, includes, command line)
/// every line adds its pairs; `""` clears them.
fn set_peer_routes(
    config: &mut Config,
    args: &[String],
    state: &mut LoadState,
) -> Result<(), String> {
    let args = match args {
        [only] if only.is_empty() => &[][..],
        other => other,
    };
    if !args.len().is_multiple_of(2) {
        return Err("cluster-peer-route takes pairs of <peer-bus-addr> <via-addr>".to_string());
    }
    let mut routes = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        let parse = |s: &str| {
            s.parse::<std::net::SocketAddr>()
                .map_err(|_| format!("'{s}' is not an ip:port address"))
        };
        routes.push((parse(&pair[0])?, parse(&pair[1])?));
    }
    if state.reading_file && !args.is_empty() {
        config.cluster_peer_routes.extend(routes);
    } else {
        config.cluster_peer_routes = routes;
    }
    Ok(())
}

fn get_peer_routes(config: &Config) -> String {
    config
        .cluster_peer_routes
        .iter()
        .map(|(peer, via)| format!("{peer} {via}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn peer_route_lines(config: &Config) -> Vec<String> {
    config
        .cluster_peer_routes
        .iter()
        .map(|(peer, via)| format!("cluster-peer-route {peer} {via}"))
        .collect()
}

/// Client classes of `client-output-buffer-limit`, in Redis's order; `slave` is accepted as
/// the old name of `replica`, and CONFIG GET still prints `slave` as Redis does.
const BUFFER_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

fn buffer_class(config: &mut Config, index: usize) -> &mut OutputBufferLimit {
    let limits = &mut config.client_output_buffer_limit;
    match index {
        0 => &mut limits.normal,
        1 => &mut limits.replica,
        _ => &mut limits.pubsub,
    }
}

fn buffer_limits(config: &Config) -> [OutputBufferLimit; 3] {
    let limits = &config.client_output_buffer_limit;
    [limits.normal, limits.replica, limits.pubsub]
}

fn set_client_output_buffer_limit(
    config: &mut Config,
    args: &[String],
    _: &mut LoadState,
) -> Result<(), String> {
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".to_string());
    }
    // Validate every class first so that a bad class leaves all of them untouched.
    let mut updates = Vec::with_capacity(args.len() / 4);
    for group in args.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err(
                    "Invalid client class specified in buffer limit configuration.".to_string(),
                )
            }
        };
        let hard = parse_memory(&group[1]);
        let soft = parse_memory(&group[2]);
        let seconds = group[3].parse::<i64>().ok().filter(|&s| s >= 0);
        match (hard, soft, seconds) {
            (Some(hard_bytes), Some(soft_bytes), Some(seconds)) => updates.push((
                class,
                OutputBufferLimit {
                    hard_bytes,
                    soft_bytes,
                    soft_seconds: seconds.unsigned_abs(),
                },
            )),
            _ => {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .to_string(),
                )
            }
        }
    }
    for (class, limit) in updates {
        *buffer_class(config, class) = limit;
    }
    Ok(())
}

fn get_client_output_buffer_limit(config: &Config) -> String {
    BUFFER_CLASSES
        .iter()
        .zip(buffer_limits(config))
        .map(|(class, l)| {
            format!(
                "{class} {} {} {}",
                l.hard_bytes, l.soft_bytes, l.soft_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn client_output_buffer_limit_lines(config: &Config) -> Vec<String> {
    ["normal", "replica", "pubsub"]
        .iter()
        .zip(buffer_limits(config))
        .map(|(class, l)| {
            format!(
                "client-output-buffer-limit {class} {} {} {}",
                format_memory(l.hard_bytes),
                format_memory(l.soft_bytes),
                l.soft_seconds
            )
        })
        .collect()
}

/// Splits the single value CONFIG SET gives a multi-argument directive the way Redis does
/// (`sdssplitlen` on single spaces: `""` is no argument, doubled spaces give empty ones).
pub(crate) fn split_set_value(value: &str) -> Vec<String> {
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(' ').map(str::to_string).collect()
    }
}

/// In a file or on the command line a multi-argument directive given one non-empty argument
/// has it split again, so that `--save "900 1"` and `save "900 1"` work as in Redis 7.
pub(crate) fn expand_single_multi_arg(args: Vec<String>) -> Option<Vec<String>> {
    match args.as_slice() {
        [only] if !only.is_empty() => split_args(only),
        _ => Some(args),
    }
}

/// The directives, in the order CONFIG GET `*`, CONFIG REWRITE and `redis.conf.example` use.
pub static DIRECTIVES: &[Directive] = &[
    Directive {
        name: "bind",
        default: "127.0.0.1 -::1",
        mutable: false,
        protected: false,
        doc: "Addresses to listen on (at most 16), as in Redis: an address with a ':' is IPv6 and listened on for IPv6 only ('::*' is every IPv6 address), any other is IPv4 or a host name ('*' is every IPv4 address), so '* -::*' is every interface of both families on one port. A leading '-' marks an address that may be missing from the host without failing start-up; an address family the kernel lacks is always skipped. \"\" listens on none, and the server does not start.",
        access: Access::Multi {
            set: set_bind,
            get: |c| c.bind.join(" "),
            lines: bind_lines,
        },
    },
    Directive {
        name: "port",
        default: "6379",
        mutable: false,
        protected: false,
        doc: "TCP port to accept connections on (0-65535).",
        access: Access::Integer {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.port),
            set: |c, v| c.port = u16::try_from(v).unwrap_or(u16::MAX),
        },
    },
    Directive {
        name: "tls-port",
        default: "0",
        mutable: false,
        protected: false,
        doc: "TLS port to accept connections on (0-65535), on the same bind addresses as port; 0 = no TLS listener. With tls-port set, port 0 turns the plain TCP port off, as in Redis (without tls-port, port 0 asks the OS for a free port).",
        access: Access::Integer {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.tls.port),
            set: |c, v| c.tls.port = u16::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "tls-cert-file",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "The server's X.509 certificate chain, PEM. Required with tls-port (or tls-replication, tls-cluster). CONFIG SET reloads the certificates even when the value is unchanged (Redis's VOLATILE_CONFIG); new connections use them, and a file that does not load refuses the CONFIG SET and keeps the old ones.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.cert_file.clone(),
            set: |c, v| {
                c.tls.cert_file = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-key-file",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "The private key of tls-cert-file, PEM (PKCS#8, PKCS#1 or SEC1; not encrypted: tls-key-file-pass is not supported).",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.key_file.clone(),
            set: |c, v| {
                c.tls.key_file = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-client-cert-file",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Certificate (PEM) that outgoing TLS links (replication, cluster) present; \"\" = tls-cert-file.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.client_cert_file.clone(),
            set: |c, v| {
                c.tls.client_cert_file = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-client-key-file",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Private key of tls-client-cert-file, PEM; \"\" = tls-key-file.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.client_key_file.clone(),
            set: |c, v| {
                c.tls.client_key_file = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-ca-cert-file",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "CA certificates (PEM) that client certificates and peers must chain to. One of tls-ca-cert-file and tls-ca-cert-dir is required unless tls-auth-clients is no (and tls-replication, tls-cluster are off).",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.ca_cert_file.clone(),
            set: |c, v| {
                c.tls.ca_cert_file = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-ca-cert-dir",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "A directory of CA certificates (PEM); every certificate in every file of it is trusted (OpenSSL's hashed names are not needed).",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.ca_cert_dir.clone(),
            set: |c, v| {
                c.tls.ca_cert_dir = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-auth-clients",
        default: "yes",
        mutable: true,
        protected: false,
        doc: "Client certificates on the TLS port: yes (required, and verified against the CA certificates), optional (asked for; one that is sent must verify) or no (not asked for). CONFIG SET applies to connections accepted from then on.",
        access: Access::Enum {
            names: &TlsAuthClients::NAMES,
            get: |c| c.tls.auth_clients.index(),
            set: |c, i| c.tls.auth_clients = TlsAuthClients::from_index(i),
        },
    },
    Directive {
        name: "tls-protocols",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "TLS versions to accept, space-separated, case-insensitive: TLSv1.2 and/or TLSv1.3; \"\" = \"TLSv1.2 TLSv1.3\". TLSv1 and TLSv1.1 are refused (rustls does not implement them).",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.protocols.clone(),
            set: |c, v| {
                c.tls.protocols = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-ciphersuites",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "TLS 1.3 cipher suites, colon-separated, in OpenSSL's names (TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256); \"\" = all three. TLS 1.2 suites (tls-ciphers) are rustls's ECDHE-AEAD defaults.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.tls.ciphersuites.clone(),
            set: |c, v| {
                c.tls.ciphersuites = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-replication",
        default: "no",
        mutable: true,
        protected: false,
        doc: "Replication links use TLS (with tls-client-cert-file or tls-cert-file as their certificate). Accepted and validated; Rill's replication is not built yet.",
        access: Access::Bool {
            get: |c| c.tls.replication,
            set: |c, v| {
                c.tls.replication = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "tls-cluster",
        default: "no",
        mutable: true,
        protected: false,
        doc: "The cluster bus (Raft replication and leader hints between nodes) uses TLS: each node presents tls-cert-file (or tls-client-cert-file when dialing) and requires a peer certificate that chains to tls-ca-cert-file/dir (names are not checked, as in Redis). Every node of a cluster must agree. Read when the node's Raft group starts: a change takes effect at the next restart (rotated certificates, CONFIG SET tls-cert-file …, serve the next bus connection).",
        access: Access::Bool {
            get: |c| c.tls.cluster,
            set: |c, v| {
                c.tls.cluster = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "protected-mode",
        default: "yes",
        mutable: true,
        protected: false,
        doc: "When yes and no password is set, only loopback clients may connect.",
        access: Access::Bool {
            get: |c| c.protected_mode,
            set: |c, v| {
                c.protected_mode = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "requirepass",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Password clients must give with AUTH before other commands; \"\" disables authentication.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.requirepass.clone().unwrap_or_default(),
            set: |c, v| {
                c.requirepass = (!v.is_empty()).then_some(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "dir",
        default: "./data",
        mutable: false,
        protected: true,
        doc: "Data directory holding the stream log, indexes and checkpoints; relative paths are relative to the working directory at start-up.",
        access: Access::Text {
            omit_empty: false,
            get: |c| path_text(&c.dir),
            set: |c, v| {
                if v.is_empty() {
                    return Err("dir can't be empty".to_string());
                }
                c.dir = PathBuf::from(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "appendonly",
        default: "no",
        mutable: true,
        protected: false,
        doc: "Accepted and reported for compatibility with Redis tooling; Rill always persists every write to its log (see appendfsync).",
        access: Access::Bool {
            get: |c| c.appendonly,
            set: |c, v| {
                c.appendonly = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendfsync",
        default: "always",
        mutable: true,
        protected: false,
        doc: "When the log is fsynced: always (before every reply that depends on a write), everysec (once per second) or no (left to the OS).",
        access: Access::Enum {
            names: &AppendFsync::NAMES,
            get: |c| c.appendfsync.index(),
            set: |c, i| c.appendfsync = AppendFsync::from_index(i),
        },
    },
    Directive {
        name: "databases",
        default: "16",
        mutable: false,
        protected: false,
        doc: "Number of logical databases (SELECT 0 to databases-1).",
        access: Access::Integer {
            min: 1,
            max: INT_MAX,
            get: |c| i64::from(c.databases),
            set: |c, v| c.databases = u32::try_from(v).unwrap_or(u32::MAX),
        },
    },
    Directive {
        name: "maxclients",
        default: "10000",
        mutable: true,
        protected: false,
        doc: "Maximum number of simultaneously connected clients. At start-up the open-files limit is raised to fit them plus what the server reserves for the log (as Redis does); where it cannot be, maxclients is lowered to fit, and CONFIG SET refuses more than fits.",
        access: Access::Integer {
            min: 1,
            max: u32::MAX as i64,
            get: |c| i64::from(c.maxclients),
            set: |c, v| c.maxclients = u32::try_from(v).unwrap_or(u32::MAX),
        },
    },
    Directive {
        name: "io-threads",
        default: "0",
        mutable: false,
        protected: false,
        doc: "Threads that run connections and commands (the runtime's workers); 0 = one per CPU core. 1 runs everything on one thread, as Redis's default does; bench/results/ compares the two.",
        access: Access::Integer {
            min: 0,
            max: 128,
            get: |c| i64::from(c.io_threads),
            set: |c, v| c.io_threads = u32::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "timeout",
        default: "0",
        mutable: true,
        protected: false,
        doc: "Close a client after it has been idle this many seconds; 0 never closes idle clients.",
        access: Access::Integer {
            min: 0,
            max: INT_MAX,
            get: |c| i64::from(c.timeout),
            set: |c, v| c.timeout = u32::try_from(v).unwrap_or(u32::MAX),
        },
    },
    Directive {
        name: "tcp-keepalive",
        default: "300",
        mutable: true,
        protected: false,
        doc: "Seconds between TCP keepalive probes on client sockets; 0 disables keepalive.",
        access: Access::Integer {
            min: 0,
            max: INT_MAX,
            get: |c| i64::from(c.tcp_keepalive),
            set: |c, v| c.tcp_keepalive = u32::try_from(v).unwrap_or(u32::MAX),
        },
    },
    Directive {
        name: "loglevel",
        default: "notice",
        mutable: true,
        protected: false,
        doc: "Log verbosity: debug, verbose, notice, warning or nothing.",
        access: Access::Enum {
            names: &LogLevel::NAMES,
            get: |c| c.loglevel.index(),
            set: |c, i| c.loglevel = LogLevel::from_index(i),
        },
    },
    Directive {
        name: "logfile",
        default: "\"\"",
        mutable: false,
        protected: false,
        doc: "File to append the log to; \"\" logs to standard output. Start-up fails if it cannot be opened.",
        access: Access::Text {
            omit_empty: false,
            get: |c| optional_path_text(&c.logfile),
            set: |c, v| {
                c.logfile = optional_path(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "proto-max-bulk-len",
        default: "512mb",
        mutable: true,
        protected: false,
        doc: "Largest bulk string a client may send, in bytes (memory units accepted, at least 1mb).",
        access: Access::Memory {
            min: MB,
            max: LONG_MAX,
            get: |c| c.proto_max_bulk_len,
            set: |c, v| c.proto_max_bulk_len = v,
        },
    },
    Directive {
        name: "client-query-buffer-limit",
        default: "1gb",
        mutable: true,
        protected: false,
        doc: "Largest unparsed input a client may accumulate, in bytes (memory units accepted, at least 1mb); beyond it the client is closed.",
        access: Access::Memory {
            min: MB,
            max: LONG_MAX,
            get: |c| c.client_query_buffer_limit,
            set: |c, v| c.client_query_buffer_limit = v,
        },
    },
    Directive {
        name: "client-output-buffer-limit",
        default: "normal 0 0 0 replica 256mb 64mb 60 pubsub 32mb 8mb 60",
        mutable: true,
        protected: false,
        doc: "Per client class (normal, replica, pubsub): <class> <hard bytes> <soft bytes> <soft seconds>. A client whose pending replies exceed the hard limit, or stay above the soft limit for the soft seconds, is closed; 0 disables a limit.",
        access: Access::Multi {
            set: set_client_output_buffer_limit,
            get: get_client_output_buffer_limit,
            lines: client_output_buffer_limit_lines,
        },
    },
    Directive {
        name: "stream-node-max-entries",
        default: "100",
        mutable: true,
        protected: false,
        doc: "Entries per stream index node; bounds what approximate (~) trimming removes. 0 means no limit.",
        access: Access::Integer {
            min: 0,
            max: i64::MAX,
            get: |c| i64::try_from(c.stream_node_max_entries).unwrap_or(i64::MAX),
            set: |c, v| c.stream_node_max_entries = v.unsigned_abs(),
        },
    },
    Directive {
        name: "stream-node-max-bytes",
        default: "4096",
        mutable: true,
        protected: false,
        doc: "Bytes per stream index node, in bytes (memory units accepted). 0 means no limit.",
        access: Access::Memory {
            min: 0,
            max: LONG_MAX,
            get: |c| c.stream_node_max_bytes,
            set: |c, v| c.stream_node_max_bytes = v,
        },
    },
    Directive {
        name: "stream-idmp-duration",
        default: "100",
        mutable: true,
        protected: false,
        doc: "Seconds an idempotent ID (XADD IDMP/IDMPAUTO) is remembered, counted from its entry's ID time (1-86400). Each stream takes the value when it is created; XCFGSET changes one stream's.",
        access: Access::Integer {
            min: 1,
            max: 86_400,
            get: |c| i64::try_from(c.stream_idmp_duration).unwrap_or(i64::MAX),
            set: |c, v| c.stream_idmp_duration = v.unsigned_abs(),
        },
    },
    Directive {
        name: "stream-idmp-maxsize",
        default: "100",
        mutable: true,
        protected: false,
        doc: "Idempotent IDs remembered per producer and stream; the oldest is forgotten past it (1-10000). Each stream takes the value when it is created; XCFGSET changes one stream's.",
        access: Access::Integer {
            min: 1,
            max: 10_000,
            get: |c| i64::try_from(c.stream_idmp_maxsize).unwrap_or(i64::MAX),
            set: |c, v| c.stream_idmp_maxsize = v.unsigned_abs(),
        },
    },
    Directive {
        name: "stream-retention-max-age",
        default: "0",
        mutable: true,
        protected: false,
        doc: "Rill only. Default maximum age of a stream's entries, in milliseconds, counted from the entry ID's time: the retention sweep trims older entries, oldest first, whether or not anyone writes. 0 means no age limit. RILL.POLICY SET overrides it per stream.",
        access: Access::Integer {
            min: 0,
            max: i64::MAX,
            get: |c| i64::try_from(c.stream_retention_max_age).unwrap_or(i64::MAX),
            set: |c, v| c.stream_retention_max_age = v.unsigned_abs(),
        },
    },
    Directive {
        name: "stream-retention-max-bytes",
        default: "0",
        mutable: true,
        protected: false,
        doc: "Rill only. Default maximum size of a stream, in bytes (memory units accepted), as the listpack bytes of its index nodes: the retention sweep trims the oldest whole nodes past it (the newest node is always kept). 0 means no size limit. RILL.POLICY SET overrides it per stream.",
        access: Access::Memory {
            min: 0,
            max: LONG_MAX,
            get: |c| c.stream_retention_max_bytes,
            set: |c, v| c.stream_retention_max_bytes = v,
        },
    },
    Directive {
        name: "stream-retention-max-len",
        default: "0",
        mutable: true,
        protected: false,
        doc: "Rill only. Default maximum number of entries per stream: the retention sweep trims the oldest past it. 0 means no length limit. RILL.POLICY SET overrides it per stream.",
        access: Access::Integer {
            min: 0,
            max: i64::MAX,
            get: |c| i64::try_from(c.stream_retention_max_len).unwrap_or(i64::MAX),
            set: |c, v| c.stream_retention_max_len = v.unsigned_abs(),
        },
    },
    Directive {
        name: "stream-retention-refs",
        default: "keepref",
        mutable: true,
        protected: false,
        doc: "Rill only. What retention trims do about consumer groups' references, as Redis 8.2's trimming options: keepref (leave PEL entries dangling, as plain XTRIM), delref (drop them from every PEL too) or acked (never trim an entry some group has not read and acknowledged).",
        access: Access::Enum {
            names: &["keepref", "delref", "acked"],
            get: |c| c.stream_retention_refs,
            set: |c, v| c.stream_retention_refs = v,
        },
    },
    Directive {
        name: "stream-retention-interval",
        default: "1000",
        mutable: true,
        protected: false,
        doc: "Rill only. Milliseconds between two runs of the retention sweep, which applies stream-retention-* and RILL.POLICY limits (10-3600000).",
        access: Access::Integer {
            min: 10,
            max: 3_600_000,
            get: |c| i64::try_from(c.stream_retention_interval).unwrap_or(i64::MAX),
            set: |c, v| c.stream_retention_interval = v.unsigned_abs(),
        },
    },
    Directive {
        name: "daemonize",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Only 'no' is supported: run Rill in the foreground under a supervisor (systemd, a container runtime).",
        access: Access::Bool {
            get: |c| c.daemonize,
            set: |c, v| {
                if v {
                    return Err("daemonize yes is not supported: run rill in the foreground under a supervisor such as systemd".to_string());
                }
                c.daemonize = false;
                Ok(())
            },
        },
    },
    Directive {
        name: "supervised",
        default: "no",
        mutable: false,
        protected: false,
        doc: "How readiness is reported to a supervisor: no, upstart (nothing sent), systemd (READY=1 on $NOTIFY_SOCKET once the data is loaded and the ports listen, STOPPING=1 at shutdown; for Type=notify units) or auto (systemd when $NOTIFY_SOCKET is set).",
        access: Access::Enum {
            names: &Supervised::NAMES,
            get: |c| c.supervised.index(),
            set: |c, i| c.supervised = Supervised::from_index(i),
        },
    },
    Directive {
        name: "pidfile",
        default: "\"\"",
        mutable: false,
        protected: false,
        doc: "File to write the process id to at start-up; \"\" writes none.",
        access: Access::Text {
            omit_empty: true,
            get: |c| optional_path_text(&c.pidfile),
            set: |c, v| {
                c.pidfile = optional_path(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "save",
        default: "3600 1 300 100 60 10000",
        mutable: true,
        protected: false,
        doc: "Snapshot points as <seconds> <changes> pairs; accepted and reported for compatibility (Rill's log makes every write durable). \"\" removes all.",
        access: Access::Multi {
            set: set_save,
            get: get_save,
            lines: save_lines,
        },
    },
    Directive {
        name: "hz",
        default: "10",
        mutable: true,
        protected: false,
        doc: "Frequency of background tasks (expiry of idle clients, timers), per second; values are capped to 1-500.",
        access: Access::Integer {
            min: 0,
            max: INT_MAX,
            get: |c| i64::from(c.hz),
            set: |c, v| c.hz = u32::try_from(v.clamp(MIN_HZ, MAX_HZ)).unwrap_or(10),
        },
    },
    Directive {
        name: "notify-keyspace-events",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Keyspace events published through Pub/Sub, as Redis's class letters: K (on __keyspace@<db>__:<key>) and/or E (on __keyevent@<db>__:<event>), with the classes g (generic: del, expire, rename …), $ (string), t (stream), x (expired), m (key miss), n (new key), o (overwritten), c (type changed), l s h z e d (accepted; Rill has no such events), A (g$lshzxetd). \"\" publishes none.",
        access: Access::Text {
            omit_empty: false,
            get: |c| super::keyspace_events::letters(c.notify_keyspace_events),
            set: |c, v| {
                c.notify_keyspace_events = super::keyspace_events::parse(&v)
                    .ok_or_else(|| super::keyspace_events::INVALID.to_string())?;
                Ok(())
            },
        },
    },
    Directive {
        name: "segment-size",
        default: "64mb",
        mutable: false,
        protected: false,
        doc: "Size at which a log segment file is sealed and a new one started, in bytes (memory units accepted, 1mb to 1gb).",
        access: Access::Memory {
            min: MB,
            max: 1024 * MB,
            get: |c| c.segment_size,
            set: |c, v| c.segment_size = v,
        },
    },
    Directive {
        name: "cache-size",
        default: "32mb",
        mutable: true,
        protected: false,
        doc: "Memory for recently written entry payloads (the hot tail readers usually want); older payloads are read from the log files on disk. Entries cost about 40 bytes of index each on top of this.",
        access: Access::Memory {
            min: 0,
            max: LONG_MAX,
            get: |c| c.cache_size,
            set: |c, v| c.cache_size = v,
        },
    },
    Directive {
        name: "checkpoint-interval",
        default: "60",
        mutable: true,
        protected: false,
        doc: "Seconds between checks for a checkpoint (the live data rewritten as one file, after which older log segments are deleted) (at least 1; compaction-threshold 0 disables automatic checkpoints).",
        access: Access::Integer {
            min: 1,
            max: INT_MAX,
            get: |c| i64::try_from(c.checkpoint_interval).unwrap_or(i64::MAX),
            set: |c, v| c.checkpoint_interval = v.unsigned_abs(),
        },
    },
    Directive {
        name: "compaction-threshold",
        default: "50",
        mutable: true,
        protected: false,
        doc: "Percent the log may grow beyond the last checkpoint (at least 1mb) before the next checkpoint reclaims the space (0-100); 0 disables automatic checkpoints.",
        access: Access::Integer {
            min: 0,
            max: 100,
            get: |c| i64::from(c.compaction_threshold),
            set: |c, v| c.compaction_threshold = u8::try_from(v).unwrap_or(100),
        },
    },
    Directive {
        name: "cluster-enabled",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Cluster mode: keys are routed by hash slot over the nodes of a shard map made by `rill cluster create`, and the CLUSTER commands answer as Redis Cluster's do. With no, CLUSTER answers that cluster support is disabled.",
        access: Access::Bool {
            get: |c| c.cluster_enabled,
            set: |c, v| {
                c.cluster_enabled = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "cluster-raft",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Keep the log as a Raft log and acknowledge a write once its Raft entry is committed. Alone, the node is a group of one voter; with `cluster-enabled yes` each shard of the map is one Raft group of its nodes, replicated over the cluster bus port (`cluster-secret` required), its leader serving the shard's slots and the others answering -MOVED (reads after READONLY). Replies are the same as without it; requires appendfsync always. Checkpoints and compaction are off in this mode for now, so the log only grows. A data directory written in this mode can be opened only in this mode.",
        access: Access::Bool {
            get: |c| c.cluster_raft,
            set: |c, v| {
                c.cluster_raft = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "cluster-config-file",
        default: "nodes.conf",
        mutable: false,
        protected: false,
        doc: "File, relative to dir, that holds this node's id and the shard map in cluster mode. Written by Rill (never edit it); two nodes must not share it.",
        access: Access::Text {
            omit_empty: false,
            get: |c| path_text(&c.cluster_config_file),
            set: |c, v| {
                if v.is_empty() {
                    return Err("cluster-config-file can't be empty".to_string());
                }
                c.cluster_config_file = PathBuf::from(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "cluster-node-timeout",
        default: "15000",
        mutable: true,
        protected: false,
        doc: "Milliseconds a cluster node may be unreachable before it counts as failing. Accepted for redis.conf compatibility; the static shard map of this release has no failure detection, so it is not used yet.",
        access: Access::Integer {
            min: 0,
            max: i64::MAX,
            get: |c| i64::try_from(c.cluster_node_timeout).unwrap_or(i64::MAX),
            set: |c, v| c.cluster_node_timeout = v.unsigned_abs(),
        },
    },
    Directive {
        name: "cluster-announce-ip",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Address this node gives `rill cluster create` for the shard map (what MOVED and CLUSTER SLOTS show); \"\" uses the address the CLI reached it on. Read when the cluster is created.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.cluster_announce_ip.clone().unwrap_or_default(),
            set: |c, v| {
                c.cluster_announce_ip = (!v.is_empty()).then_some(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "cluster-secret",
        default: "\"\"",
        mutable: false,
        protected: false,
        doc: "Shared secret the nodes of a replicated cluster (`cluster-enabled yes` with `cluster-raft yes`) prove to each other on the Raft links (HMAC-SHA256 challenge); every node of the cluster must hold the same one. Required once a shard has more than one node.",
        access: Access::Text {
            omit_empty: false,
            get: |c| c.cluster_secret.clone(),
            set: |c, v| {
                c.cluster_secret = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "cluster-peer-route",
        default: "\"\"",
        mutable: false,
        protected: false,
        doc: "`cluster-peer-route <peer-bus-addr> <via-addr>`: this node dials `via-addr` (ip:port) for its Raft link to the peer whose cluster bus address in the shard map is `peer-bus-addr` (ip:port), instead of that address. Repeatable (one pair per line, or several pairs on one line); empty by default. For a proxy or NAT between the nodes, and for the replication fault tests, which route each directed link through its own fault proxy. Only outbound links change: the node still listens on its own bus port.",
        access: Access::Multi {
            set: set_peer_routes,
            get: get_peer_routes,
            lines: peer_route_lines,
        },
    },
    Directive {
        name: "cluster-announce-port",
        default: "0",
        mutable: true,
        protected: false,
        doc: "Client port this node gives `rill cluster create` for the shard map (0-65535); 0 uses the port it listens on. Read when the cluster is created.",
        access: Access::Integer {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.cluster_announce_port),
            set: |c, v| c.cluster_announce_port = u16::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "cluster-port",
        default: "0",
        mutable: false,
        protected: false,
        doc: "Cluster bus port (0-65535); 0 means port + 10000, as in Redis. Reported in the shard map (CLUSTER NODES, SHARDS); nothing listens on it yet, because the shard map is static and nodes do not talk to each other.",
        access: Access::Integer {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.cluster_port),
            set: |c, v| c.cluster_port = u16::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "enable-protected-configs",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Who may change protected directives (dir) with CONFIG SET: no, yes, or local (clients connected over loopback only). Rill cannot move its data directory while running, so even an allowed client is refused with 'can't set immutable config'.",
        access: Access::Enum {
            names: &ProtectedAction::NAMES,
            get: |c| c.enable_protected_configs.index(),
            set: |c, i| c.enable_protected_configs = ProtectedAction::from_index(i),
        },
    },
    Directive {
        name: "enable-debug-command",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Who may run DEBUG: no, yes, or local (clients connected over loopback only).",
        access: Access::Enum {
            names: &ProtectedAction::NAMES,
            get: |c| c.enable_debug_command.index(),
            set: |c, i| c.enable_debug_command = ProtectedAction::from_index(i),
        },
    },
    Directive {
        name: "enable-module-command",
        default: "no",
        mutable: false,
        protected: false,
        doc: "Who may run MODULE (no, yes or local); accepted for Redis configuration files, Rill has no modules.",
        access: Access::Enum {
            names: &ProtectedAction::NAMES,
            get: |c| c.enable_module_command.index(),
            set: |c, i| c.enable_module_command = ProtectedAction::from_index(i),
        },
    },
    Directive {
        name: "acl-pubsub-default",
        default: "resetchannels",
        mutable: true,
        protected: false,
        doc: "Channels a new ACL user may use: resetchannels (none until granted with &pattern, Redis 7's default) or allchannels.",
        access: Access::Enum {
            names: &["allchannels", "resetchannels"],
            get: |c| usize::from(!c.acl_pubsub_default_all),
            set: |c, i| c.acl_pubsub_default_all = i == 0,
        },
    },
    Directive {
        name: "acllog-max-len",
        default: "128",
        mutable: true,
        protected: false,
        doc: "Entries ACL LOG keeps (refused commands, keys, channels and authentications); 0 keeps none.",
        access: Access::Integer {
            min: 0,
            max: i64::MAX,
            get: |c| i64::try_from(c.acllog_max_len).unwrap_or(i64::MAX),
            set: |c, v| c.acllog_max_len = u64::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "aclfile",
        default: "\"\"",
        mutable: false,
        protected: false,
        doc: "File of ACL users (one 'user <name> <rules>' line each) loaded at start-up and by ACL LOAD, written by ACL SAVE; \"\" for none. Users may instead be declared with 'user' lines in this file, but not both.",
        access: Access::Text {
            omit_empty: false,
            get: |c| optional_path_text(&c.aclfile),
            set: |c, v| {
                c.aclfile = optional_path(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "metrics-port",
        default: "0",
        mutable: false,
        protected: false,
        doc: "TCP port of the Prometheus endpoint (GET /metrics, plain HTTP, no authentication), on metrics-bind; 0 = off.",
        access: Access::Integer {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.metrics_port),
            set: |c, v| c.metrics_port = u16::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "metrics-bind",
        default: "127.0.0.1",
        mutable: false,
        protected: false,
        doc: "The one address the Prometheus endpoint listens on. Loopback by default because the endpoint has no authentication and names streams, groups and consumers: set it to an address Prometheus reaches (0.0.0.0, ::) deliberately.",
        access: Access::Text {
            omit_empty: false,
            get: |c| c.metrics_bind.clone(),
            set: |c, v| {
                if v.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("'{v}' is not an IP address"));
                }
                c.metrics_bind = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "metrics-max-streams",
        default: "100",
        mutable: true,
        protected: false,
        doc: "At most this many streams get per-stream, per-group and per-consumer series on the Prometheus endpoint (the streams metrics-streams matches first, then the longest), and at most this many groups and this many consumers in all (the most pending first). Bounds the label cardinality whatever the keyspace holds; 0 = no per-stream series.",
        access: Access::Integer {
            min: 0,
            max: 100_000,
            get: |c| i64::try_from(c.metrics_max_streams).unwrap_or(i64::MAX),
            set: |c, v| c.metrics_max_streams = usize::try_from(v).unwrap_or(0),
        },
    },
    Directive {
        name: "metrics-streams",
        default: "\"\"",
        mutable: true,
        protected: false,
        doc: "Glob patterns (space-separated, as KEYS) of streams the Prometheus endpoint always describes, within metrics-max-streams, before the longest others; \"\" = none.",
        access: Access::Text {
            omit_empty: true,
            get: |c| c.metrics_streams.join(" "),
            set: |c, v| {
                c.metrics_streams = v.split_whitespace().map(str::to_string).collect();
                Ok(())
            },
        },
    },
];
