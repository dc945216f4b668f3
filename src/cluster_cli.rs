//! `rill cluster create HOST:PORT …` and `rill cluster check HOST:PORT`: the operator's side
//! of cluster mode, like `redis-cli --cluster create` (without replicas) and `--cluster
//! check`. Both talk to running nodes over their client port with Rill's own admin family
//! (`RILL.CLUSTER NODEINFO / TOPOLOGY / SETTOPOLOGY`) and CLUSTER INFO.
//!
//! `create` asks every node for its id and announced address, refuses nodes that already
//! belong to a cluster or hold keys (as redis-cli does), splits the 16384 slots evenly in
//! the order the nodes were given (redis-cli's arithmetic), sends every node the map — each
//! persists it before answering — then checks the result.
//!
//! `check` reads the map from one node, then asks every node of it: is it up, does its id
//! match, does it serve the same map, does it report `cluster_state:ok`; and checks that
//! the map covers all 16384 slots. Exit status: 0 healthy, 1 problems found, 2 the command
//! could not run (bad arguments, the first node unreachable or not in cluster mode).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cluster::slot::SLOTS;
use crate::cluster::topology::{NodeId, NodeInfo, ShardMap};

/// Arguments of `rill cluster`.
#[derive(Debug, Parser)]
#[command(name = "rill cluster", about = "Create and check a Rill cluster")]
pub struct ClusterArgs {
    /// Password of the nodes (`requirepass`), sent with AUTH on every connection.
    #[arg(short = 'a', long = "pass", global = true)]
    pass: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make one cluster of the given nodes (started with `cluster-enabled yes`), one shard
    /// per node, the 16384 slots split evenly in the order given.
    Create {
        /// The nodes, as HOST:PORT.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Check that every node of the cluster is up, agrees on the map, and that all 16384
    /// slots are served. Exit status 0 when healthy, 1 otherwise.
    Check {
        /// Any node of the cluster, as HOST:PORT.
        node: String,
    },
}

/// Why a command to a node failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("can't reach {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} answered with an error: {text}")]
    Server { addr: String, text: String },
    #[error("{addr} answered something unexpected to {what}")]
    Unexpected { addr: String, what: &'static str },
    #[error("'{0}' is not HOST:PORT")]
    BadAddress(String),
}

/// A RESP reply, as much of it as the CLI reads.
#[derive(Debug)]
enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Value>),
}

/// One blocking connection to a node.
struct Node {
    addr: String,
    pass: Option<String>,
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    fn connect(addr: &str, pass: Option<&str>) -> Result<Node, CliError> {
        let (host, _) = addr
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| CliError::BadAddress(addr.to_string()))?;
        let connect = |source| CliError::Connect {
            addr: addr.to_string(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| CliError::BadAddress(addr.to_string()))?;
        let stream = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(connect)?;
        let io = |source| CliError::Io {
            addr: addr.to_string(),
            source,
        };
        stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let mut node = Node {
            addr: addr.to_string(),
            pass: pass.map(str::to_string),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            reader: BufReader::new(stream.try_clone().map_err(io)?),
            writer: stream,
        };
        if let Some(p) = pass {
            node.call(&[b"AUTH", p.as_bytes()])?;
        }
        Ok(node)
    }

    /// Another node, with the same password.
    fn open(&self, addr: &str) -> Result<Node, CliError> {
        Node::connect(addr, self.pass.as_deref())
    }

    fn io(&self, source: std::io::Error) -> CliError {
        CliError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Sends one command and reads its reply; an error reply becomes [`CliError::Server`].
    fn call(&mut self, args: &[&[u8]]) -> Result<Value, CliError> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&req).map_err(|e| self.io(e))?;
        match self.read_value()? {
            Value::Error(text) => Err(CliError::Server {
                addr: self.addr.clone(),
                text,
            }),
            v => Ok(v),
        }
    }

    fn read_line(&mut self) -> Result<String, CliError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    fn read_value(&mut self) -> Result<Value, CliError> {
        let line = self.read_line()?;
        let bad = || CliError::Unexpected {
            addr: self.addr.clone(),
            what: "a RESP reply",
        };
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let num = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Value::Simple(rest.to_string()),
            "-" => Value::Error(rest.to_string()),
            ":" => Value::Int(num()?),
            "$" => {
                let len = num()?;
                if len < 0 {
                    Value::Bulk(None)
                } else {
                    let len = usize::try_from(len).map_err(|_| bad())?;
                    let mut buf = vec![0u8; len + 2];
                    self.reader.read_exact(&mut buf).map_err(|e| self.io(e))?;
                    buf.truncate(len);
                    Value::Bulk(Some(buf))
                }
            }
            "*" => {
                let len = num()?;
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(self.read_value()?);
                }
                Value::Array(items)
            }
            _ => return Err(bad()),
        })
    }

    fn text(&mut self, args: &[&[u8]], what: &'static str) -> Result<String, CliError> {
        match self.call(args)? {
            Value::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Value::Simple(s) => Ok(s),
            _ => Err(CliError::Unexpected {
                addr: self.addr.clone(),
                what,
            }),
        }
    }

    /// This node as the map should list it (`RILL.CLUSTER NODEINFO`); an empty announced
    /// address means "the address you reached me on".
    fn node_info(&mut self) -> Result<NodeInfo, CliError> {
        let unexpected = |addr: &str| CliError::Unexpected {
            addr: addr.to_string(),
            what: "RILL.CLUSTER NODEINFO",
        };
        let Value::Array(items) = self.call(&[b"RILL.CLUSTER", b"NODEINFO"])? else {
            return Err(unexpected(&self.addr));
        };
        match items.as_slice() {
            [Value::Bulk(Some(id)), Value::Bulk(Some(ip)), Value::Int(port), Value::Int(cport)] => {
                let id = NodeId::parse(&String::from_utf8_lossy(id))
                    .ok_or_else(|| unexpected(&self.addr))?;
                let ip = String::from_utf8_lossy(ip).into_owned();
                Ok(NodeInfo {
                    id,
                    ip: if ip.is_empty() { self.host.clone() } else { ip },
                    port: u16::try_from(*port).map_err(|_| unexpected(&self.addr))?,
                    cport: u16::try_from(*cport).map_err(|_| unexpected(&self.addr))?,
                })
            }
            _ => Err(unexpected(&self.addr)),
        }
    }

    fn topology(&mut self) -> Result<ShardMap, CliError> {
        let text = self.text(&[b"RILL.CLUSTER", b"TOPOLOGY"], "RILL.CLUSTER TOPOLOGY")?;
        ShardMap::parse(&text)
            .map(|(map, _)| map)
            .map_err(|_| CliError::Unexpected {
                addr: self.addr.clone(),
                what: "RILL.CLUSTER TOPOLOGY",
            })
    }
}

/// Entry point of `rill cluster …`.
pub fn main(args: &[String]) -> ExitCode {
    let parsed: ClusterArgs = match crate::check::parse_subcommand("cluster", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let pass = parsed.pass.as_deref();
    let result = match parsed.command {
        Command::Create { nodes } => create(&nodes, pass),
        Command::Check { node } => check(&node, pass),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("[ERR] {e}");
            ExitCode::from(2)
        }
    }
}

fn create(addrs: &[String], pass: Option<&str>) -> Result<bool, CliError> {
    let mut nodes = Vec::new();
    let mut infos: Vec<NodeInfo> = Vec::new();
    for addr in addrs {
        let mut node = Node::connect(addr, pass)?;
        let info = node.node_info()?;
        let map = node.topology()?;
        if map.epoch > 0 || !map.shards.is_empty() {
            eprintln!(
                "[ERR] Node {addr} is already part of a cluster (map epoch {}).",
                map.epoch
            );
            return Ok(false);
        }
        if let Value::Int(keys) = node.call(&[b"DBSIZE"])? {
            if keys != 0 {
                eprintln!("[ERR] Node {addr} is not empty: it holds {keys} keys in database 0.");
                return Ok(false);
            }
        }
        if let Some(other) = infos.iter().find(|i| i.id == info.id) {
            eprintln!(
                "[ERR] {addr} is the same node as {}:{} (id {}).",
                other.ip, other.port, info.id
            );
            return Ok(false);
        }
        infos.push(info);
        nodes.push(node);
    }
    println!(
        ">>> Performing hash slots allocation on {} nodes...",
        nodes.len()
    );
    let map = ShardMap::even(infos, 1);
    for (i, shard) in map.shards.iter().enumerate() {
        for r in &shard.slots {
            println!("Master[{i}] -> Slots {} - {}", r.start, r.end);
        }
    }
    let text = map.to_text();
    for (node, shard) in nodes.iter_mut().zip(&map.shards) {
        node.call(&[b"RILL.CLUSTER", b"SETTOPOLOGY", text.as_bytes()])?;
        if let Some(n) = shard.nodes.first() {
            println!(
                "M: {} {}:{}\n   slots:{} ({} slots) master",
                n.id,
                n.ip,
                n.port,
                shard
                    .slots
                    .iter()
                    .map(|r| format!("[{}-{}]", r.start, r.end))
                    .collect::<Vec<_>>()
                    .join(","),
                shard.slot_count()
            );
        }
    }
    println!(">>> Every node persisted the map.");
    check(&addrs[0], pass)
}

fn check(addr: &str, pass: Option<&str>) -> Result<bool, CliError> {
    let mut first = Node::connect(addr, pass)?;
    let map = first.topology()?;
    println!(">>> Performing Cluster Check (using node {addr})");
    if map.shards.is_empty() {
        println!("[ERR] {addr} has no shard map: create the cluster with 'rill cluster create'.");
        return Ok(false);
    }
    let mut healthy = true;
    for node_info in map.nodes() {
        let at = node_info.endpoint();
        let report = check_node(&first, &at, node_info, &map);
        match report {
            Ok(()) => println!(
                "[OK] {} {at}: up, serves this map (epoch {}).",
                node_info.id, map.epoch
            ),
            Err(problem) => {
                healthy = false;
                println!("[ERR] {} {at}: {problem}", node_info.id);
            }
        }
    }
    let covered: usize = map.shards.iter().map(|s| s.slot_count()).sum();
    if covered == usize::from(SLOTS) {
        println!("[OK] All {SLOTS} slots covered.");
    } else {
        healthy = false;
        println!("[ERR] Not all {SLOTS} slots are covered by nodes: {covered} are.");
    }
    if healthy {
        println!("[OK] All nodes agree about slots configuration.");
    }
    Ok(healthy)
}

/// One node of the map: reachable, the id the map says, the same map, state ok.
fn check_node(first: &Node, at: &str, expected: &NodeInfo, map: &ShardMap) -> Result<(), String> {
    let mut node = first.open(at).map_err(|e| e.to_string())?;
    let info = node.node_info().map_err(|e| e.to_string())?;
    if info.id != expected.id {
        return Err(format!("is node {}, not the map's", info.id));
    }
    let theirs = node.topology().map_err(|e| e.to_string())?;
    if &theirs != map {
        return Err(format!(
            "serves another map (epoch {}, {} shards)",
            theirs.epoch,
            theirs.shards.len()
        ));
    }
    let state = node
        .text(&[b"CLUSTER", b"INFO"], "CLUSTER INFO")
        .map_err(|e| e.to_string())?;
    if !state.lines().any(|l| l == "cluster_state:ok") {
        return Err("reports cluster_state:fail".to_string());
    }
    Ok(())
}
