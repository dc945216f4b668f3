//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT and CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{parse_i64, Args};
use super::error::CommandError;
use super::session::Session;
use super::table::{CommandSpec, Handler};
use super::{Ctx, Outcome};
use crate::core::Shared;
use crate::protocol::Reply;

/// The Redis version Rill reports as INFO `redis_version` and HELLO `version`: the newest
/// Redis release whose *whole* stream feature set Rill implements.
///
/// Clients gate features on it (go-redis and redis-py skip or refuse Redis 8 stream
/// commands below 8.2/8.4/8.6), so it must never claim a release whose commands Rill
/// lacks: a client that believes the server is 8.6 sends XDELEX, XREADGROUP … CLAIM and
/// XADD … IDMP, and gets "syntax error" instead of a clean skip. Raise it only when every
/// stream command, option and reply shape of that release is in (issue #12: 8.2 needs
/// XDELEX/XACKDEL and KEEPREF/DELREF/ACKED, 8.4 XREADGROUP CLAIM, 8.6 IDMP and XCFGSET),
/// together with the differential tests that prove it. Where Rill answers differently
/// from Redis 7.4 in the 7.4 feature set, it answers as Redis 8.6.3, the reference of the
/// differential suites. Rill's own version is INFO `rill_version`.
///
/// 8.6.3: 8.2's, 8.4's and 8.6's stream commands are all in, each compared byte for byte
/// with a real 8.6.3 (tests/differential_refs.rs, differential_claim.rs,
/// differential_idmp.rs). XNACK (8.8) is in too, but built from Redis's unstable source
/// with no 8.8 server to compare against: its error bytes are unverified and XINFO STREAM
/// FULL prints 8.8's `nacked-count` only for groups that have NACKed entries, so the
/// version stays at 8.6.3 until an 8.8 differential suite says otherwise.
pub const REDIS_VERSION: &str = "8.6.3";

type R = Result<Outcome, CommandError>;

/// PING
///
/// # Format
/// `PING [message]`
///
/// # Returns
/// `+PONG`, or the message as a bulk string; in RESP2 subscribed mode
/// `["pong", message-or-""]`.
pub fn ping(s: &mut Session, _sh: &Shared, args: &mut Args) -> R {
    // RESP2 subscribed mode: `[pong, message-or-empty]`, as Redis's pingCommand.
    if s.proto == 2 && s.subs.active() {
        let message = match args.remaining() {
            0 => Bytes::new(),
            1 => args.next_bytes()?,
            _ => return Err(CommandError::WrongArity("ping".into())),
        };
        return Ok(Reply::bulks([Bytes::from_static(b"pong"), message]).into());
    }
    match args.remaining() {
        0 => Ok(Reply::status("PONG").into()),
        1 => Ok(Reply::Bulk(args.next_bytes()?).into()),
        _ => Err(CommandError::WrongArity("ping".into())),
    }
}

/// ECHO
///
/// # Format
/// `ECHO message`
///
/// # Returns
/// The message as a bulk string.
pub fn echo(_s: &mut Session, _sh: &Shared, args: &mut Args) -> R {
    Ok(Reply::Bulk(args.next_bytes()?).into())
}

/// QUIT
///
/// # Format
/// `QUIT`
///
/// # Returns
/// `+OK`, then the server closes the connection.
pub fn quit(s: &mut Session, _sh: &Shared, _args: &mut Args) -> R {
    s.close_after_reply = true;
    Ok(Reply::Ok.into())
}

/// RESET
///
/// # Format
/// `RESET`
///
/// # Returns
/// `+RESET`; the connection is back to its initial state (db 0, RESP2, no
/// transaction, no watches, no name, unauthenticated if a password is set).
pub fn reset(s: &mut Session, sh: &Shared, _args: &mut Args) -> R {
    super::transactions::discard_state(s, sh);
    super::pubsub::unsubscribe_all(s, sh);
    s.db = 0;
    s.proto = 2;
    s.authenticated = !sh.requires_auth();
    s.user = None;
    *s.info.user.lock() = bytes::Bytes::from_static(b"default");
    *s.info.name.lock() = Bytes::new();
    s.info.db.store(0, Ordering::Relaxed);
    s.info.resp.store(2, Ordering::Relaxed);
    s.info.no_evict.store(false, Ordering::Relaxed);
    s.readonly = false;
    s.asking = false;
    Ok(Reply::status("RESET").into())
}

/// AUTH
///
/// # Format
/// `AUTH [username] password`
///
/// # Returns
/// `+OK`, or WRONGPASS.
pub fn auth(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    let object = args.argv()[0].clone();
    let (user, pass) = match args.remaining() {
        1 => (None, args.next_bytes()?),
        2 => (Some(args.next_bytes()?), args.next_bytes()?),
        _ => return Err(CommandError::Syntax),
    };
    if user.is_none() && sh.acl.default.rules().nopass {
        return Err(CommandError::AuthNotConfigured);
    }
    super::acl::authenticate(s, sh, object, user.as_deref(), &pass)?;
    Ok(Reply::Ok.into())
}

/// HELLO
///
/// # Format
/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
///
/// # Returns
/// A map of server properties: server, version, proto, id, mode, role, modules.
pub fn hello(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    let object = args.argv()[0].clone();
    let mut proto = s.proto;
    if let Some(v) = args.next() {
        let v = parse_i64(&v).ok_or(CommandError::ProtoNotInteger)?;
        if !(2..=3).contains(&v) {
            return Err(CommandError::NoProto);
        }
        proto = v as u8;
    }
    let mut auth = None;
    let mut setname = None;
    while let Some(opt) = args.next() {
        let more = args.remaining();
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            auth = Some((args.next_bytes()?, args.next_bytes()?));
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            let name = args.next_bytes()?;
            validate_name(&name)?;
            setname = Some(name);
        } else {
            return Err(CommandError::Invalid(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt)
            )));
        }
    }
    match auth {
        Some((user, pass)) => super::acl::authenticate(s, sh, object, Some(&user), &pass)?,
        None if !s.authenticated => {
            return Err(CommandError::Invalid("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()).into_noauth());
        }
        None => {}
    }
    if let Some(name) = setname {
        *s.info.name.lock() = name;
    }
    s.proto = proto;
    s.info.resp.store(proto, Ordering::Relaxed);
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(proto as i64)),
        (Reply::bulk("id"), Reply::Int(s.id as i64)),
        (
            Reply::bulk("mode"),
            Reply::bulk(if sh.cluster.is_some() {
                "cluster"
            } else {
                "standalone"
            }),
        ),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(vec![])),
    ])
    .into())
}

impl CommandError {
    /// HELLO's NOAUTH text starts with NOAUTH, not ERR.
    fn into_noauth(self) -> CommandError {
        match self {
            CommandError::Invalid(t) => CommandError::Raw(t),
            other => other,
        }
    }
}

/// SELECT
///
/// # Format
/// `SELECT index`
///
/// # Returns
/// `+OK`, or `ERR DB index is out of range`.
pub fn select(s: &mut Session, sh: &Shared, args: &mut Args) -> R {
    let idx = args.next_i64()?;
    if sh.cluster.is_some() && idx != 0 {
        return Err(CommandError::SelectInClusterMode);
    }
    let dbs = sh.config.read().databases as i64;
    if idx < 0 || idx >= dbs {
        return Err(CommandError::DbIndexOutOfRange);
    }
    s.db = idx as usize;
    s.info.db.store(s.db, Ordering::Relaxed);
    Ok(Reply::Ok.into())
}

/// Client names: printable ASCII without spaces (Redis's `validateClientName`).
fn validate_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
        Ok(())
    } else {
        Err(CommandError::BadClientName)
    }
}

/// The CLIENT subcommands.
pub static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("client|id", 2, Handler::Conn(client_id))
        .flags(&["noscript", "loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "connection",
            "5.0.0",
            "O(1)",
            "Returns the unique client ID of the connection.",
        ),
    CommandSpec::new("client|setname", 3, Handler::Conn(client_setname))
        .flags(&["noscript", "loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc("connection", "2.6.9", "O(1)", "Sets the connection name."),
    CommandSpec::new("client|getname", 2, Handler::Conn(client_getname))
        .flags(&["noscript", "loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "connection",
            "2.6.9",
            "O(1)",
            "Returns the name of the connection.",
        ),
    CommandSpec::new("client|setinfo", 4, Handler::Conn(client_setinfo))
        .flags(&["noscript", "loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "connection",
            "7.2.0",
            "O(1)",
            "Sets information specific to the client or connection.",
        ),
    CommandSpec::new("client|info", 2, Handler::Data(client_info))
        .flags(&["noscript", "loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "connection",
            "6.2.0",
            "O(1)",
            "Returns information about the connection.",
        ),
    CommandSpec::new("client|list", -2, Handler::Data(client_list))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous", "@connection"])
        .doc(
            "connection",
            "2.4.0",
            "O(N) where N is the number of client connections",
            "Lists open connections.",
        ),
    CommandSpec::new("client|kill", -3, Handler::Conn(client_kill))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous", "@connection"])
        .doc(
            "connection",
            "2.4.0",
            "O(N) where N is the number of client connections",
            "Terminates open connections.",
        ),
    CommandSpec::new("client|unblock", -3, Handler::Data(client_unblock))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous", "@connection"])
        .doc(
            "connection",
            "5.0.0",
            "O(log N) where N is the number of client connections",
            "Unblocks a client blocked by a blocking command from a different connection.",
        ),
    CommandSpec::new("client|no-evict", 3, Handler::Conn(client_no_evict))
        .flags(&["admin", "noscript", "loading", "stale"])
        .acl(&["@admin", "@slow", "@dangerous", "@connection"])
        .doc(
            "connection",
            "7.0.0",
            "O(1)",
            "Sets the client eviction mode of the connection.",
        ),
    CommandSpec::new("client|help", 2, Handler::Conn(client_help))
        .flags(&["loading", "stale"])
        .acl(&["@slow", "@connection"])
        .doc(
            "connection",
            "5.0.0",
            "O(1)",
            "Returns helpful text about the different subcommands.",
        ),
];

fn client_id(s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    Ok(Reply::Int(s.id as i64).into())
}

fn client_setname(s: &mut Session, _sh: &Shared, a: &mut Args) -> R {
    let name = a.next_bytes()?;
    validate_name(&name)?;
    *s.info.name.lock() = name;
    Ok(Reply::Ok.into())
}

fn client_getname(s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    let name = s.info.name.lock().clone();
    Ok(if name.is_empty() {
        Reply::Nil
    } else {
        Reply::Bulk(name)
    }
    .into())
}

fn client_setinfo(s: &mut Session, _sh: &Shared, a: &mut Args) -> R {
    let attr = a.next_bytes()?;
    let val = a.next_bytes()?;
    let (slot, label) = if attr.eq_ignore_ascii_case(b"lib-name") {
        (&s.info.lib_name, "lib-name")
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        (&s.info.lib_ver, "lib-ver")
    } else {
        return Err(CommandError::Invalid(format!(
            "Unrecognized option '{}'",
            String::from_utf8_lossy(&attr)
        )));
    };
    if !val.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
        return Err(CommandError::Invalid(format!(
            "{label} cannot contain spaces, newlines or special characters."
        )));
    }
    *slot.lock() = val;
    Ok(Reply::Ok.into())
}

fn client_line(ctx: &Ctx<'_>, info: &crate::core::clients::ClientInfo) -> String {
    let blocked = ctx.blocking.as_ref().is_some_and(|b| b.is_blocked(info.id));
    info.describe(blocked)
}

fn client_info(ctx: &mut Ctx<'_>, _a: &mut Args) -> R {
    let Some(me) = ctx.shared.clients.get(ctx.client_id) else {
        return Err(CommandError::NoSuchClient);
    };
    let line = format!("{}\n", client_line(ctx, &me));
    Ok(Reply::Verbatim(Bytes::from(line)).into())
}

fn client_list(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let mut ids: Option<Vec<u64>> = None;
    // TYPE normal | pubsub: whether the listed clients have subscriptions (Redis's class).
    let mut pubsub: Option<bool> = None;
    while let Some(opt) = a.next() {
        if opt.eq_ignore_ascii_case(b"TYPE") {
            let t = a.next_bytes()?;
            let t = String::from_utf8_lossy(&t).to_ascii_lowercase();
            match t.as_str() {
                "normal" => pubsub = Some(false),
                "pubsub" => pubsub = Some(true),
                "master" | "replica" | "slave" => ids = Some(Vec::new()),
                _ => {
                    return Err(CommandError::Invalid(format!("Unknown client type '{t}'")));
                }
            }
        } else if opt.eq_ignore_ascii_case(b"ID") {
            let mut v = Vec::new();
            while let Some(id) = a.next() {
                match parse_i64(&id) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Err(CommandError::Invalid("Invalid client ID".into())),
                }
            }
            if v.is_empty() {
                return Err(CommandError::Syntax);
            }
            ids = Some(v);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    let mut out = String::new();
    for c in ctx.shared.clients.snapshot() {
        if ids.as_ref().is_some_and(|v| !v.contains(&c.id))
            || pubsub.is_some_and(|p| p != c.is_pubsub())
        {
            continue;
        }
        out.push_str(&client_line(ctx, &c));
        out.push('\n');
    }
    Ok(Reply::Verbatim(Bytes::from(out)).into())
}

fn client_kill(s: &mut Session, sh: &Shared, a: &mut Args) -> R {
    // Old form: CLIENT KILL addr:port.
    if a.remaining() == 1 {
        let addr = a.next_bytes()?;
        let addr = String::from_utf8_lossy(&addr).to_string();
        let target = sh
            .clients
            .snapshot()
            .into_iter()
            .find(|c| c.addr.to_string() == addr);
        return match target {
            Some(c) => {
                c.kill();
                if c.id == s.id {
                    s.close_after_reply = true;
                }
                Ok(Reply::Ok.into())
            }
            None => Err(CommandError::NoSuchClient),
        };
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut maxage = None;
    let mut kind_ok = true;
    let mut pubsub: Option<bool> = None;
    let mut user: Option<Bytes> = None;
    while a.remaining() > 0 {
        let opt = a.next_bytes()?;
        let val = a.next().ok_or(CommandError::Syntax)?;
        let o = String::from_utf8_lossy(&opt).to_ascii_lowercase();
        let v = String::from_utf8_lossy(&val).to_string();
        match o.as_str() {
            "id" => match parse_i64(&val) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => {
                    return Err(CommandError::Invalid(
                        "client-id should be greater than 0".into(),
                    ))
                }
            },
            "addr" => addr = Some(v),
            "laddr" => laddr = Some(v),
            "type" => match v.to_ascii_lowercase().as_str() {
                "normal" => pubsub = Some(false),
                "pubsub" => pubsub = Some(true),
                "master" | "replica" | "slave" => kind_ok = false,
                _ => return Err(CommandError::Invalid(format!("Unknown client type '{v}'"))),
            },
            "user" => {
                if sh.acl.user(&val).is_none() {
                    return Err(CommandError::NoSuchUser(v));
                }
                user = Some(val.clone());
            }
            "skipme" => match v.to_ascii_lowercase().as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return Err(CommandError::Syntax),
            },
            "maxage" => maxage = Some(parse_i64(&val).ok_or(CommandError::NotInteger)?),
            _ => return Err(CommandError::Syntax),
        }
    }
    let mut killed = 0;
    if kind_ok {
        for c in sh.clients.snapshot() {
            if id.is_some_and(|i| i != c.id)
                || addr.as_ref().is_some_and(|x| *x != c.addr.to_string())
                || laddr.as_ref().is_some_and(|x| *x != c.laddr.to_string())
                || maxage.is_some_and(|m| (c.created.elapsed().as_secs() as i64) < m)
                || (skipme && c.id == s.id)
                || pubsub.is_some_and(|p| p != c.is_pubsub())
                || user.as_ref().is_some_and(|u| *u != *c.user.lock())
            {
                continue;
            }
            c.kill();
            if c.id == s.id {
                s.close_after_reply = true;
            }
            killed += 1;
        }
    }
    Ok(Reply::Int(killed).into())
}

fn client_unblock(ctx: &mut Ctx<'_>, a: &mut Args) -> R {
    let id = a.next_i64()?;
    let as_error = match a.next() {
        None => false,
        Some(m) if m.eq_ignore_ascii_case(b"TIMEOUT") => false,
        Some(m) if m.eq_ignore_ascii_case(b"ERROR") => true,
        Some(_) => {
            return Err(CommandError::Invalid(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into(),
            ))
        }
    };
    a.finish()?;
    let Some(table) = ctx.blocking.as_deref_mut() else {
        return Ok(Reply::Int(0).into());
    };
    let Some(w) = (if id > 0 {
        table.remove_client(id as u64)
    } else {
        None
    }) else {
        return Ok(Reply::Int(0).into());
    };
    if as_error {
        w.fail(ctx.shared, CommandError::Unblocked.to_string());
        // Redis counts a call as failed when error replies were sent while it ran, the
        // one it sent the unblocked client included.
        ctx.shared.stats.record_failed("client|unblock");
    } else {
        let reply = w.retry.on_timeout();
        let _ = w.tx.send(reply);
    }
    Ok(Reply::Int(1).into())
}

fn client_no_evict(s: &mut Session, _sh: &Shared, a: &mut Args) -> R {
    let v = a.next_bytes()?;
    let on = if v.eq_ignore_ascii_case(b"on") {
        true
    } else if v.eq_ignore_ascii_case(b"off") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    s.info.no_evict.store(on, Ordering::Relaxed);
    Ok(Reply::Ok.into())
}

fn client_help(_s: &mut Session, _sh: &Shared, _a: &mut Args) -> R {
    Ok(help_reply(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "    * MAXAGE <maxage>",
            "      Kill connections older than the specified age.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    )
    .into())
}

/// A HELP reply as Redis's `addReplyHelp` builds it.
pub fn help_reply(container: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Status(Bytes::from(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )))];
    out.extend(
        lines
            .iter()
            .map(|l| Reply::Status(Bytes::from(l.to_string()))),
    );
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Print this help."));
    Reply::Array(out)
}
