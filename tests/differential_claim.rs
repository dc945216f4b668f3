//! `XREADGROUP … CLAIM min-idle-time` (Redis 8.4) against Redis 8.6.3: every parse error,
//! the 4-element entries in RESP2 and RESP3, claim order, COUNT and NOACK interplay, history
//! reads, several streams, deleted pending entries, and the state a claim leaves (XPENDING,
//! XINFO CONSUMERS), byte for byte with idle times masked.
//!
//! Times are made deterministic where order matters: `XCLAIM … TIME <past> JUSTID` puts
//! delivery times far enough in the past that a CLAIM threshold separates them whatever the
//! machine's speed. Idle times themselves differ by the milliseconds between the two
//! servers' replies, so they are masked (see [`mask_idle`]).
#![cfg(feature = "differential")]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::reference::Twins;

/// Replaces idle times by `:IDLE`: an integer line directly followed by another integer line
/// (`idle, delivery-count` in claimed entries and XPENDING rows), and the integer after an
/// `idle`/`inactive` field name (XINFO CONSUMERS).
fn mask_idle(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let next_is_int = lines.get(i + 1).is_some_and(|n| n.starts_with(':'));
        let after_idle_name = i > 0
            && matches!(lines[i - 1], "idle" | "inactive")
            && lines
                .get(i.wrapping_sub(2))
                .is_some_and(|l| l.starts_with('$'));
        if line.starts_with(':') && (next_is_int || after_idle_name) {
            out.push(":IDLE".to_string());
        } else {
            out.push((*line).to_string());
        }
    }
    out.join("\r\n").into_bytes()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Entries 1-0..=n-0 in `s`, group `g` at 0, all read by `c1`.
fn pending(t: &mut Twins, key: &str, n: u64) {
    for i in 1..=n {
        let id = format!("{i}-0");
        let v = format!("v{i}");
        t.same(&["XADD", key, &id, "f", &v]);
    }
    t.same(&["XGROUP", "CREATE", key, "g", "0"]);
    t.same_masked(
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", key, ">"],
        mask_idle,
    );
}

/// Sets the delivery time of `ids` to `ago_ms` before now (JUSTID: counts unchanged).
fn age(t: &mut Twins, key: &str, ago_ms: u64, ids: &[&str]) {
    let at = (now_ms() - ago_ms).to_string();
    let mut args = vec!["XCLAIM", key, "g", "c1", "0"];
    args.extend_from_slice(ids);
    args.extend_from_slice(&["TIME", &at, "JUSTID"]);
    t.same(&args);
}

#[test]
fn claim_parse_errors_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        pending(t, "s", 2);
        for bad in [
            "x",
            "+10",
            "-0",
            "5.5",
            "10e",
            "000",
            "",
            "99999999999999999999",
        ] {
            t.same(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "CLAIM",
                bad,
                "STREAMS",
                "s",
                ">",
            ]);
        }
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "CLAIM",
            "-1",
            "STREAMS",
            "s",
            ">",
        ]);
        // CLAIM takes STREAMS as its value.
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "CLAIM",
            "STREAMS",
            "s",
            ">",
        ]);
        // CLAIM after STREAMS is a key (unbalanced), or a key with a missing group.
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "s",
            ">",
            "CLAIM",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "s",
            "CLAIM",
            "50",
            ">",
        ]);
        // CLAIM as the last option word with nothing after it.
        t.same(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "CLAIM"]);
        t.same(&["XREAD", "CLAIM", "10", "STREAMS", "s", "0"]);
        t.same(&["XREAD", "COUNT", "1", "CLAIM"]);
        t.same(&["XREAD", "CLAIM", "x", "STREAMS", "s", "0"]);
        // Options in any order; CLAIM before GROUP; the last value wins (an error first).
        t.same_masked(
            &[
                "XREADGROUP",
                "CLAIM",
                "x",
                "CLAIM",
                "0",
                "GROUP",
                "g",
                "c2",
                "STREAMS",
                "s",
                ">",
            ],
            mask_idle,
        );
        t.same(&[
            "XREADGROUP",
            "CLAIM",
            "0",
            "GROUP",
            "nogroup",
            "c2",
            "STREAMS",
            "s",
            ">",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            "$",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            "+",
        ]);
        t.same(&["SET", "str", "x"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "0",
            "STREAMS",
            "str",
            ">",
        ]);
    });
}

#[test]
fn claimed_entries_shape_order_and_state_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        pending(t, "s", 6);
        // Oldest delivery first: 4-0 (50 s ago), then 2-0 and 1-0 (same time, in the order
        // XCLAIM gave them that time), then 3-0; 5-0 and 6-0 stay fresh.
        age(t, "s", 50_000, &["4-0"]);
        age(t, "s", 40_000, &["2-0", "1-0"]);
        age(t, "s", 30_000, &["3-0"]);
        let claim = |t: &mut Twins, consumer: &str, extra: &[&str]| {
            let mut args = vec!["XREADGROUP", "GROUP", "g", consumer];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["STREAMS", "s", ">"]);
            t.same_masked(&args, mask_idle);
        };
        // COUNT 2 stops within the claimable ones.
        claim(t, "c2", &["COUNT", "2", "CLAIM", "10000"]);
        claim(t, "c2", &["CLAIM", "10000", "COUNT", "10"]);
        // Nothing idle enough and nothing new: null.
        claim(t, "c2", &["CLAIM", "10000"]);
        t.same_masked(&["XPENDING", "s", "g", "-", "+", "10"], mask_idle);
        t.same(&["XPENDING", "s", "g"]);
        t.same_masked(&["XINFO", "CONSUMERS", "s", "g"], mask_idle);
        // New entries come after the claimed ones, as `[id, fields, 0, 0]`, and COUNT is shared.
        t.same(&["XADD", "s", "7-0", "f", "v7"]);
        t.same(&["XADD", "s", "8-0", "f", "v8"]);
        age(t, "s", 20_000, &["5-0"]);
        claim(t, "c3", &["CLAIM", "10000", "COUNT", "2"]);
        claim(t, "c3", &["CLAIM", "10000", "COUNT", "2"]);
        // CLAIM 0: everything pending is claimable; huge min-idle: nothing is.
        claim(t, "c4", &["CLAIM", "9223372036854775807", "COUNT", "3"]);
        t.same(&["XADD", "s", "9-0", "f", "v9"]);
        claim(t, "c4", &["CLAIM", "9223372036854775807"]);
        claim(t, "c4", &["COUNT", "3", "CLAIM", "0"]);
        t.same_masked(&["XPENDING", "s", "g", "-", "+", "20"], mask_idle);
        t.same(&["XPENDING", "s", "g"]);
        // History reads ignore CLAIM: 2-element entries.
        claim(t, "c4", &["CLAIM", "0"]);
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c4",
                "CLAIM",
                "0",
                "STREAMS",
                "s",
                "0",
            ],
            mask_idle,
        );
        t.same(&["XACK", "s", "g", "1-0", "2-0", "3-0"]);
        claim(t, "c5", &["CLAIM", "0"]);
        t.same_masked(&["XINFO", "CONSUMERS", "s", "g"], mask_idle);
    });
}

#[test]
fn claim_with_noack_multiple_streams_and_deleted_entries_matches_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        pending(t, "a", 3);
        pending(t, "b", 2);
        age(t, "a", 30_000, &["1-0", "2-0"]);
        t.same(&["XADD", "a", "4-0", "f", "v4"]);
        // NOACK: claimed entries still move; the new one stays out of the PEL.
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c2",
                "NOACK",
                "CLAIM",
                "10000",
                "STREAMS",
                "a",
                ">",
            ],
            mask_idle,
        );
        t.same_masked(&["XPENDING", "a", "g", "-", "+", "10"], mask_idle);
        // Several streams: only those with something to serve, in command order.
        age(t, "b", 30_000, &["2-0"]);
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c3",
                "CLAIM",
                "10000",
                "STREAMS",
                "a",
                "b",
                ">",
                ">",
            ],
            mask_idle,
        );
        // A history read resets CLAIM for the streams after it (Redis's command-wide
        // min_idle_time), not for those before.
        age(t, "a", 30_000, &["3-0"]);
        age(t, "b", 30_000, &["1-0"]);
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c3",
                "CLAIM",
                "10000",
                "STREAMS",
                "b",
                "a",
                "0",
                ">",
            ],
            mask_idle,
        );
        // Deleted pending entries are skipped and stay in the PEL; trimmed-away ones too.
        t.same(&["XADD", "d", "1-0", "f", "v"]);
        t.same(&["XADD", "d", "2-0", "f", "v"]);
        t.same(&["XGROUP", "CREATE", "d", "g", "0"]);
        t.same_masked(
            &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "d", ">"],
            mask_idle,
        );
        t.same(&["XDEL", "d", "1-0"]);
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c2",
                "CLAIM",
                "0",
                "STREAMS",
                "d",
                ">",
            ],
            mask_idle,
        );
        t.same(&["XPENDING", "d", "g"]);
        t.same(&["XTRIM", "d", "MAXLEN", "0"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "CLAIM",
            "0",
            "STREAMS",
            "d",
            ">",
        ]);
        t.same(&["XPENDING", "d", "g"]);
    });
}

#[test]
fn claim_after_setid_transactions_and_block_match_redis() {
    let mut t = Twins::start(&[]);
    t.each_protocol(|t| {
        pending(t, "s", 2);
        // SETID back: one reply holds 1-0 and 2-0 claimed and again as new.
        t.same(&["XGROUP", "SETID", "s", "g", "0"]);
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c2",
                "CLAIM",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            mask_idle,
        );
        t.same_masked(&["XPENDING", "s", "g", "-", "+", "10"], mask_idle);
        // Inside MULTI: served as usual, and a blocking CLAIM read answers as a timeout.
        t.same(&["MULTI"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "BLOCK",
            "100",
            "CLAIM",
            "100000",
            "STREAMS",
            "s",
            ">",
        ]);
        t.same_masked(&["EXEC"], mask_idle);
        // BLOCK with something claimable at once answers at once.
        t.same_masked(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c4",
                "BLOCK",
                "0",
                "CLAIM",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            mask_idle,
        );
        // A consumer deleted with pending entries: they are gone, nothing to claim.
        t.same(&["XGROUP", "DELCONSUMER", "s", "g", "c4"]);
        t.same(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c5",
            "CLAIM",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        t.same_masked(&["XINFO", "CONSUMERS", "s", "g"], mask_idle);
    });
}
