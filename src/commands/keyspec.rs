//! Which arguments of a request are keys, read from the command's key specs in
//! [`docs`] — the same data COMMAND INFO publishes, so what Rill routes
//! on is what cluster clients route on. The one place that extracts keys from a request.
//!
//! The rules are Redis's `getKeysUsingKeySpecs` (`db.c`): a spec begins at a fixed index or
//! after a keyword, and takes a range from there. Redis routes XREAD/XREADGROUP with
//! `xreadGetKeys`, which finds no keys when the arguments after STREAMS do not pair up (the
//! command then fails with its own error instead of being redirected); a range with a
//! `limit` here likewise finds no keys unless `limit` divides what follows evenly.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::table::docs::{self, BeginSearch, FindKeys, KeySpec};
use super::table::CommandSpec;

/// The key specs of a command or subcommand, looked up once per name.
fn specs_of(spec: &CommandSpec) -> &'static [KeySpec] {
    static BY_NAME: OnceLock<HashMap<&'static str, &'static [KeySpec]>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| {
            docs::names()
                .filter_map(|n| docs::lookup(n).map(|d| (n, d.key_specs)))
                .collect()
        })
        .get(spec.full)
        .copied()
        .unwrap_or(&[])
}

/// True when the command names keys at all (so cluster mode must route it).
pub fn has_keys(spec: &CommandSpec) -> bool {
    !specs_of(spec).is_empty()
}

/// The positions in `argv` (0 = the command name) of the keys the request names, in the
/// order the specs find them; empty when its arguments do not fit its specs (the command
/// will report the error itself).
pub fn key_positions(spec: &CommandSpec, argv: &[Bytes]) -> Vec<usize> {
    keys_with_specs(spec, argv)
        .into_iter()
        .map(|(pos, _)| pos)
        .collect()
}

/// SET's key as Redis's `setGetKeys` reports it: its spec says `variable_flags`, because
/// the access depends on GET (read and overwrite) or not (overwrite only).
static SET_OVERWRITE: KeySpec = KeySpec {
    notes: None,
    flags: &["OW", "update"],
    begin_search: BeginSearch::Index(1),
    find_keys: FindKeys::Range {
        lastkey: 0,
        keystep: 1,
        limit: 0,
    },
};
static SET_GET: KeySpec = KeySpec {
    notes: None,
    flags: &["RW", "access", "update"],
    begin_search: BeginSearch::Index(1),
    find_keys: FindKeys::Range {
        lastkey: 0,
        keystep: 1,
        limit: 0,
    },
};

/// As [`key_positions`], with the key spec that found each key (for its access flags).
pub fn keys_with_specs(spec: &CommandSpec, argv: &[Bytes]) -> Vec<(usize, &'static KeySpec)> {
    if spec.full == "set" && argv.len() >= 3 {
        let get = argv[3..].iter().any(|a| a.eq_ignore_ascii_case(b"get"));
        return vec![(1, if get { &SET_GET } else { &SET_OVERWRITE })];
    }
    let argc = argv.len() as i64;
    let mut out = Vec::new();
    for ks in specs_of(spec) {
        let first = match ks.begin_search {
            BeginSearch::Index(i) => i,
            BeginSearch::Keyword(word, startfrom) => {
                let found = if startfrom > 0 {
                    (startfrom..argc)
                        .find(|&i| argv[i as usize].eq_ignore_ascii_case(word.as_bytes()))
                } else {
                    (1..=argc + startfrom)
                        .rev()
                        .find(|&i| argv[i as usize].eq_ignore_ascii_case(word.as_bytes()))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
        };
        let FindKeys::Range {
            lastkey,
            keystep,
            limit,
        } = ks.find_keys;
        let last = if lastkey >= 0 {
            first + lastkey
        } else if limit == 0 {
            argc + lastkey
        } else {
            if first >= argc || (argc - first) % limit != 0 {
                return Vec::new();
            }
            first + ((argc - first) / limit + lastkey)
        };
        if first >= argc || last >= argc || last < first {
            return Vec::new();
        }
        let mut i = first;
        while i <= last {
            out.push((i as usize, ks));
            i += keystep.max(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::table;
    use super::*;

    fn argv(words: &str) -> Vec<Bytes> {
        words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn keys(words: &str) -> Vec<usize> {
        let mut args = super::super::Args::new(argv(words));
        let spec = table::resolve(&mut args).expect("known command");
        key_positions(spec, args.argv())
    }

    #[test]
    fn positions_follow_the_key_specs() {
        assert_eq!(keys("XADD s * f v"), vec![1]);
        assert_eq!(keys("DEL a b c"), vec![1, 2, 3]);
        assert_eq!(keys("RENAME a b"), vec![1, 2]);
        assert_eq!(keys("XGROUP CREATE s g $"), vec![2]);
        assert_eq!(keys("XINFO STREAM s"), vec![2]);
        assert_eq!(keys("XREAD COUNT 2 STREAMS a b 0 0"), vec![4, 5]);
        assert_eq!(keys("XREAD streams streams 0"), vec![2]);
        assert_eq!(
            keys("XREADGROUP GROUP streams c BLOCK 0 STREAMS a b > >"),
            vec![7, 8]
        );
        assert_eq!(keys("PING"), Vec::<usize>::new());
        assert_eq!(keys("WATCH a b"), vec![1, 2]);
    }

    #[test]
    fn unbalanced_stream_lists_name_no_keys_as_xreadgetkeys() {
        assert_eq!(keys("XREAD STREAMS a b c"), Vec::<usize>::new());
        assert_eq!(keys("XREAD COUNT 1 BLOCK 0"), Vec::<usize>::new());
    }

    #[test]
    fn specs_agree_with_the_legacy_key_triple() {
        // Where the table declares first/last/step, the specs must find the same keys.
        for spec in table::all()
            .iter()
            .flat_map(|s| std::iter::once(s).chain(s.subcommands.iter()))
            .filter(|s| s.first_key > 0)
        {
            let argc = (spec.arity.unsigned_abs() as usize).max(4);
            let words: Vec<Bytes> = (0..argc).map(|i| Bytes::from(format!("a{i}"))).collect();
            let last = if spec.last_key < 0 {
                argc as i32 + spec.last_key
            } else {
                spec.last_key
            };
            let expected: Vec<usize> = (spec.first_key..=last)
                .step_by(spec.step.max(1) as usize)
                .map(|i| i as usize)
                .collect();
            assert_eq!(key_positions(spec, &words), expected, "{}", spec.full);
        }
    }
}
