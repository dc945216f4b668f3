//! XADD over many streams spread across a Redis Cluster, each command sent straight to the node that owns its slot.
//!
//! The routing is what a cluster client does, reduced to what a benchmark needs: CLUSTER SLOTS is asked once (from
//! the `--addr` node) before the clock starts, and the map is not refreshed. A `-MOVED` or `-ASK` reply therefore
//! ends the run with an error instead of being followed: the bench starts a fresh cluster with no resharding, so a
//! redirect would mean the map or the slot function is wrong, and a benchmark that silently paid for redirects
//! would measure the wrong thing.
//!
//! With `--standalone` the same workload (same streams, same entry count, same payloads) goes to the one server at
//! `--addr` without asking it anything, which is the 1-node side of the comparison.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::fill::XorShift;
use crate::resp::{encode, Conn, Reply, RespError};

/// Redis Cluster's slot count.
const SLOTS: u16 = 16384;

#[derive(clap::Args)]
pub struct ClusterXaddArgs {
    /// Number of streams; stream N is the key PREFIX{N}, so N is its hash tag and the streams spread over the slots.
    #[arg(long, default_value_t = 1000)]
    streams: u64,
    /// Key prefix in front of the {N} hash tag.
    #[arg(long, default_value = "s:")]
    prefix: String,
    /// Entries to append in total, round-robin over the streams.
    #[arg(long)]
    count: u64,
    /// Bytes in the entry's single field value.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Connections to each node.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Commands written per round trip on each connection.
    #[arg(long, default_value_t = 16)]
    pipeline: u64,
    /// Do not ask for CLUSTER SLOTS: send everything to `--addr` (a server not in cluster mode).
    #[arg(long)]
    standalone: bool,
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection): Redis's `crc16()` from `crc16.c`.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The slot of `key`, as Redis's `keyHashSlot`: only the part between the first `{` and the next `}` is hashed,
/// when that part is not empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) & (SLOTS - 1)
}

/// Which node (an index into the address list) owns each slot.
struct SlotMap {
    addrs: Vec<String>,
    owner: Vec<Option<usize>>,
}

impl SlotMap {
    /// Reads CLUSTER SLOTS (`[start, end, [ip, port, …], replicas…]` per range) from the node at `addr`.
    async fn fetch(addr: &str) -> Result<SlotMap, RespError> {
        let mut conn = Conn::connect(addr).await?;
        let reply = conn.call(&[b"CLUSTER", b"SLOTS"]).await?.ok()?;
        let bad = |what: &str| RespError::Unexpected(format!("CLUSTER SLOTS: {what}"));
        let Reply::Array(Some(ranges)) = reply else {
            return Err(bad("not an array"));
        };
        let mut map = SlotMap {
            addrs: Vec::new(),
            owner: vec![None; usize::from(SLOTS)],
        };
        for range in ranges {
            let Reply::Array(Some(parts)) = range else {
                return Err(bad("a range is not an array"));
            };
            let (Some(Reply::Int(start)), Some(Reply::Int(end)), Some(Reply::Array(Some(master)))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(bad("a range is not [start, end, [ip, port, …], …]"));
            };
            let (Some(Reply::Bulk(Some(ip))), Some(Reply::Int(port))) =
                (master.first(), master.get(1))
            else {
                return Err(bad("a master is not [ip, port, …]"));
            };
            let node = format!("{}:{port}", String::from_utf8_lossy(ip));
            let index = match map.addrs.iter().position(|a| *a == node) {
                Some(i) => i,
                None => {
                    map.addrs.push(node);
                    map.addrs.len() - 1
                }
            };
            let slots = usize::try_from(*start).ok().zip(usize::try_from(*end).ok());
            let Some((start, end)) = slots.filter(|(s, e)| s <= e && *e < usize::from(SLOTS))
            else {
                return Err(bad("a range is out of 0-16383"));
            };
            for slot in &mut map.owner[start..=end] {
                *slot = Some(index);
            }
        }
        if let Some(slot) = map.owner.iter().position(Option::is_none) {
            return Err(bad(&format!("slot {slot} has no owner")));
        }
        Ok(map)
    }

    fn standalone(addr: &str) -> SlotMap {
        SlotMap {
            addrs: vec![addr.to_string()],
            owner: vec![Some(0); usize::from(SLOTS)],
        }
    }

    fn owner_of(&self, key: &[u8]) -> usize {
        self.owner[usize::from(key_slot(key))].unwrap_or(0)
    }
}

/// One node's share of the work: the streams it owns and how many entries they get.
struct NodeWork {
    addr: String,
    keys: Arc<Vec<Vec<u8>>>,
    entries: u64,
}

/// Entry i of the run goes to stream i mod S; this splits that sequence by owner.
fn split(map: &SlotMap, prefix: &str, streams: u64, count: u64) -> Vec<NodeWork> {
    let mut keys: Vec<Vec<Vec<u8>>> = vec![Vec::new(); map.addrs.len()];
    let mut entries = vec![0u64; map.addrs.len()];
    let (per_stream, extra) = (count / streams, count % streams);
    for n in 0..streams {
        let key = format!("{prefix}{{{n}}}").into_bytes();
        let node = map.owner_of(&key);
        entries[node] += per_stream + u64::from(n < extra);
        keys[node].push(key);
    }
    map.addrs
        .iter()
        .zip(keys)
        .zip(entries)
        .filter(|((_, keys), _)| !keys.is_empty())
        .map(|((addr, keys), entries)| NodeWork {
            addr: addr.clone(),
            keys: Arc::new(keys),
            entries,
        })
        .collect()
}

/// Appends `count` entries and reports `cluster-xadd nodes=… streams=… entries=… seconds=… rate=…`.
pub async fn run(addr: &str, args: ClusterXaddArgs) -> Result<String, RespError> {
    let streams = args.streams.max(1);
    let map = if args.standalone {
        SlotMap::standalone(addr)
    } else {
        SlotMap::fetch(addr).await?
    };
    let work = split(&map, &args.prefix, streams, args.count);
    let per_node: Vec<String> = work
        .iter()
        .map(|w| format!("{}:{}", w.addr, w.entries))
        .collect();
    eprintln!("cluster-xadd: entries per node {}", per_node.join(" "));

    // Every connection is open before the clock starts.
    let mut conns = Vec::new();
    for (node, w) in work.iter().enumerate() {
        for _ in 0..args.conns.max(1) {
            conns.push((node, Conn::connect(&w.addr).await?));
        }
    }
    let claimed: Vec<Arc<AtomicU64>> = work.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for (node, mut conn) in conns {
        let claimed = Arc::clone(&claimed[node]);
        let keys = Arc::clone(&work[node].keys);
        let (count, pipeline, size) = (work[node].entries, args.pipeline.max(1), args.size);
        let mut rng = XorShift::new(tasks.len() as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut payload = vec![0u8; size];
            loop {
                // Connections of a node claim batches of its entries; entry k goes to its stream k mod len.
                let first = claimed.fetch_add(pipeline, Ordering::Relaxed);
                if first >= count {
                    return Ok::<(), RespError>(());
                }
                let n = pipeline.min(count - first);
                batch.clear();
                for k in first..first + n {
                    rng.fill_printable(&mut payload);
                    let key = &keys[(k % keys.len() as u64) as usize];
                    encode(&mut batch, &[b"XADD", key, b"*", b"p", &payload]);
                }
                conn.pipeline(&batch, n as usize).await?;
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| RespError::Unexpected(format!("cluster-xadd task died: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(format!(
        "cluster-xadd nodes={} streams={streams} entries={} seconds={seconds:.3} rate={:.0}",
        work.len(),
        args.count,
        args.count as f64 / seconds
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        assert_eq!(crc16(b"123456789"), 0x31C3, "the XMODEM check value");
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_cluster_keyslot_of_redis_8_6_3() {
        // `CLUSTER KEYSLOT` answers of a Redis 8.6.3 node started with `cluster-enabled yes`.
        for (key, slot) in [
            ("foo", 12182),
            ("s:{0}", 13907),
            ("s:{1}", 9842),
            ("s:{42}", 8000),
            ("s:{999}", 835),
            ("{user1000}.following", 3443),
            ("x{}{y}", 14166),
        ] {
            assert_eq!(key_slot(key.as_bytes()), slot, "{key}");
        }
        // Only the first {…} counts, and an empty one means the whole key.
        assert_eq!(key_slot(b"a{b}{c}"), key_slot(b"b"));
        assert_eq!(key_slot(b"a{b"), crc16(b"a{b") & 16383);
    }

    #[test]
    fn split_gives_every_entry_to_the_owner_of_its_stream() {
        let mut map = SlotMap::standalone("a:1");
        map.addrs.push("b:2".into());
        for slot in &mut map.owner[8192..] {
            *slot = Some(1);
        }
        let work = split(&map, "s:", 1000, 10_007);
        assert_eq!(work.len(), 2);
        assert_eq!(work.iter().map(|w| w.entries).sum::<u64>(), 10_007);
        assert_eq!(work.iter().map(|w| w.keys.len()).sum::<usize>(), 1000);
        for (node, w) in work.iter().enumerate() {
            assert!(w.keys.iter().all(|k| map.owner_of(k) == node));
        }
    }
}
