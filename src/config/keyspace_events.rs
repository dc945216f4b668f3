//! `notify-keyspace-events`: which keyspace events are published, as Redis's class letters
//! (`notify.c`'s `keyspaceEventsStringToFlags` and `keyspaceEventsFlagsToString`).
//!
//! A value is a set of classes (`g` generic, `$` string, `t` stream, `x` expired, …) and
//! the channels to publish them on (`K` `__keyspace@<db>__:<key>`, `E`
//! `__keyevent@<db>__:<event>`); an event is published only when its class and at least one
//! of `K`/`E` are set. `A` is every class but `m` (key misses), `n` (new keys), `o`
//! (overwritten keys) and `c` (type changes), which Redis leaves out of it on purpose.
//! CONFIG GET shows the normalised form (`A` for all of them, classes in Redis's order, `K`
//! `E` `m` last), so `CONFIG SET notify-keyspace-events EKgt$lshzxed` reads back as `AKE`.

/// `K`: publish on `__keyspace@<db>__:<key>` (message: the event).
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>` (message: the key).
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, PERSIST …).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands (Rill has none; accepted and shown).
pub const LIST: u32 = 1 << 4;
/// `s`: set commands (Rill has none).
pub const SET: u32 = 1 << 5;
/// `h`: hash commands (Rill has none).
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands (Rill has none).
pub const ZSET: u32 = 1 << 7;
/// `x`: a key removed because its TTL passed (`expired`).
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key evicted for `maxmemory` (Rill does not evict).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: a read found no key (`keymiss`); not part of `A`.
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (Rill has no modules).
pub const MODULE: u32 = 1 << 13;
/// `n`: a key was created (`new`); not part of `A`.
pub const NEW: u32 = 1 << 14;
/// `o`: a key's value was replaced whole (`overwritten`); not part of `A`.
pub const OVERWRITTEN: u32 = 1 << 15;
/// `c`: a key's value was replaced by one of another type (`type_changed`); not part of `A`.
pub const TYPE_CHANGED: u32 = 1 << 16;
/// `A`: Redis's `NOTIFY_ALL`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's reason text for a letter that names no class (CONFIG SET, config file).
pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// The classes `letters` names, `None` when a letter names none.
pub fn parse(letters: &str) -> Option<u32> {
    letters.bytes().try_fold(0, |flags, c| {
        let class = match c {
            b'A' => ALL,
            b'g' => GENERIC,
            b'$' => STRING,
            b'l' => LIST,
            b's' => SET,
            b'h' => HASH,
            b'z' => ZSET,
            b'x' => EXPIRED,
            b'e' => EVICTED,
            b'K' => KEYSPACE,
            b'E' => KEYEVENT,
            b't' => STREAM,
            b'm' => KEY_MISS,
            b'd' => MODULE,
            b'n' => NEW,
            b'o' => OVERWRITTEN,
            b'c' => TYPE_CHANGED,
            _ => return None,
        };
        Some(flags | class)
    })
}

/// The letters CONFIG GET shows for `flags`.
pub fn letters(flags: u32) -> String {
    let mut out = String::new();
    if flags & ALL == ALL {
        out.push('A');
    } else {
        for (class, letter) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
            (OVERWRITTEN, 'o'),
            (TYPE_CHANGED, 'c'),
        ] {
            if flags & class != 0 {
                out.push(letter);
            }
        }
    }
    for (class, letter) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & class != 0 {
            out.push(letter);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_normalise_as_redis_shows_them() {
        assert_eq!(parse(""), Some(0));
        assert_eq!(letters(0), "");
        assert_eq!(parse("KEA").map(letters).as_deref(), Some("AKE"));
        // Every class of A spelled out is A; n, o, c and m stay apart.
        assert_eq!(parse("Eg$lshzxetdK").map(letters).as_deref(), Some("AKE"));
        // With A, Redis shows no n, o or c (they are still set).
        assert_eq!(parse("AnocmK").map(letters).as_deref(), Some("AKm"));
        assert_eq!(parse("mnocKE").map(letters).as_deref(), Some("nocKEm"));
        assert_eq!(parse("tgx$E").map(letters).as_deref(), Some("g$xtE"));
        // A class without K or E is kept (and publishes nothing).
        assert_eq!(parse("t").map(letters).as_deref(), Some("t"));
        assert_eq!(parse("KEq"), None);
        assert_eq!(parse("k"), None);
    }
}
