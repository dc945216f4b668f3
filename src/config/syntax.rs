//! The lexical layer of redis.conf, shared by the file parser, the command line, CONFIG GET and
//! CONFIG REWRITE: argument splitting and quoting (Redis's `sdssplitargs` / `sdscatrepr`),
//! memory units (`memtoull`), strict integers (`string2ll`) and glob matching (`stringmatchlen`).
//!
//! These are reproduced byte for byte because users copy redis.conf files and scripts between
//! Redis and Rill: a line that Redis accepts must mean the same thing here.

/// Splits one configuration line into arguments exactly like Redis's `sdssplitargs`.
///
/// Double quotes understand `\n \r \t \b \a \xHH` and `\<any>`; single quotes only `\'`.
/// A closing quote must be followed by whitespace or the end of the line. Returns `None` for
/// unbalanced quotes, which Redis reports as "Unbalanced quotes in configuration line".
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let bytes = line.as_bytes();
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < bytes.len() && is_space(bytes[p]) {
            p += 1;
        }
        // A NUL ends the line, as it ends the C string Redis's sdssplitargs walks. (An
        // unquoted NUL ends an argument without being consumed, so going on from it would
        // push empty arguments forever: a config file with a NUL hung start-up.)
        if p >= bytes.len() || bytes[p] == 0 {
            return Some(args);
        }
        let mut current: Vec<u8> = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let c = bytes.get(p).copied();
            if in_double {
                let c = c?;
                let next = bytes.get(p + 1).copied();
                if c == b'\\' && next == Some(b'x') {
                    let hi = bytes.get(p + 2).copied().and_then(hex_value);
                    let lo = bytes.get(p + 3).copied().and_then(hex_value);
                    if let (Some(hi), Some(lo)) = (hi, lo) {
                        current.push(hi * 16 + lo);
                        p += 3;
                    } else {
                        // `\x` not followed by two hex digits: `\` escapes the `x`.
                        current.push(b'x');
                        p += 1;
                    }
                } else if let (b'\\', Some(escaped)) = (c, next) {
                    current.push(match escaped {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 1;
                } else if c == b'"' {
                    if bytes.get(p + 1).is_some_and(|&n| !is_space(n)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                let c = c?;
                if c == b'\\' && bytes.get(p + 1) == Some(&b'\'') {
                    current.push(b'\'');
                    p += 1;
                } else if c == b'\'' {
                    if bytes.get(p + 1).is_some_and(|&n| !is_space(n)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(other) => current.push(other),
                }
            }
            p += 1;
        }
        args.push(String::from_utf8_lossy(&current).into_owned());
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Quotes a value the way Redis's `sdscatrepr` does, so that [`split_args`] reads it back
/// unchanged: CONFIG REWRITE and error messages (`>>> 'port "abc"'`) both use this form.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
    out.push('"');
    out
}

/// Parses a memory amount like Redis's `memtoull`: digits followed by an optional unit,
/// case-insensitive; `k`/`m`/`g` are powers of 1000 and `kb`/`mb`/`gb` powers of 1024, as in
/// redis.conf. Negative numbers, other units and overflow are rejected.
pub fn parse_memory(text: &str) -> Option<u64> {
    let digits_end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// Formats a byte count the way CONFIG REWRITE writes memory directives: the largest of
/// `gb`/`mb`/`kb` that divides it exactly, else plain bytes.
pub fn format_memory(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    const GB: u64 = 1024 * MB;
    match bytes {
        0 => "0".to_string(),
        b if b % GB == 0 => format!("{}gb", b / GB),
        b if b % MB == 0 => format!("{}mb", b / MB),
        b if b % KB == 0 => format!("{}kb", b / KB),
        b => b.to_string(),
    }
}

/// Parses an integer as strictly as Redis's `string2ll` (it is that function): no sign `+`,
/// no spaces, no leading zeros, no `-0`, no overflow. `port 06379` is an error in Redis,
/// and so it is here.
pub fn parse_integer(text: &str) -> Option<i64> {
    crate::syntax::string2ll(text.as_bytes())
}

/// One element of a compiled glob pattern; every token except `Star` matches exactly one byte,
/// which is what lets [`glob_match`] run in O(pattern × text) even for hostile patterns.
enum Token {
    Star,
    AnyByte,
    Byte(u8),
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

fn compile_glob(pattern: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' => {
                if !matches!(tokens.last(), Some(Token::Star)) {
                    tokens.push(Token::Star);
                }
            }
            b'?' => tokens.push(Token::AnyByte),
            b'\\' if i + 1 < pattern.len() => {
                i += 1;
                tokens.push(Token::Byte(pattern[i]));
            }
            b'[' => {
                i += 1;
                let negated = pattern.get(i) == Some(&b'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                // Like Redis, an unterminated class ends at the end of the pattern.
                while i < pattern.len() && pattern[i] != b']' {
                    if pattern[i] == b'\\' && i + 1 < pattern.len() {
                        i += 1;
                        ranges.push((pattern[i], pattern[i]));
                    } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                        let (a, b) = (pattern[i], pattern[i + 2]);
                        ranges.push((a.min(b), a.max(b)));
                        i += 2;
                    } else {
                        ranges.push((pattern[i], pattern[i]));
                    }
                    i += 1;
                }
                tokens.push(Token::Class { negated, ranges });
            }
            other => tokens.push(Token::Byte(other)),
        }
        i += 1;
    }
    tokens
}

fn token_matches(token: &Token, byte: u8, nocase: bool) -> bool {
    let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    match token {
        Token::Star | Token::AnyByte => true,
        Token::Byte(b) => fold(*b) == fold(byte),
        Token::Class { negated, ranges } => {
            let c = fold(byte);
            let hit = ranges.iter().any(|&(lo, hi)| {
                let (lo, hi) = (fold(lo), fold(hi));
                (lo.min(hi)..=lo.max(hi)).contains(&c)
            });
            hit != *negated
        }
    }
}

/// Glob matching with Redis's syntax (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes), used by
/// CONFIG GET (case-insensitive) and by wildcard `include` paths (case-sensitive).
pub fn glob_match(pattern: &str, text: &str, nocase: bool) -> bool {
    let tokens = compile_glob(pattern.as_bytes());
    let text = text.as_bytes();
    let (mut t, mut s) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while s < text.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                backtrack = Some((t, s));
                t += 1;
            }
            Some(token) if token_matches(token, text[s], nocase) => {
                t += 1;
                s += 1;
            }
            _ => match backtrack {
                Some((star, star_s)) => {
                    t = star + 1;
                    s = star_s + 1;
                    backtrack = Some((star, star_s + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| matches!(token, Token::Star))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<Vec<String>> {
        split_args(line)
    }

    #[test]
    fn splits_plain_words_on_whitespace() {
        assert_eq!(
            split("  save 900   1\t300 10 ").unwrap(),
            ["save", "900", "1", "300", "10"]
        );
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        assert_eq!(split("   ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn double_quotes_understand_escapes() {
        assert_eq!(
            split(r#"requirepass "a b\n\t\x41\"\\""#).unwrap(),
            ["requirepass", "a b\n\tA\"\\"]
        );
        assert_eq!(split(r#"x "\xZZ""#).unwrap(), ["x", "xZZ"]);
        assert_eq!(split(r#"x "" y"#).unwrap(), ["x", "", "y"]);
    }

    #[test]
    fn single_quotes_are_literal_except_escaped_quote() {
        assert_eq!(split(r"x 'a\nb\'c'").unwrap(), ["x", "a\\nb'c"]);
    }

    #[test]
    fn quote_inside_a_word_starts_a_quoted_part() {
        assert_eq!(split(r#"ab"c d""#).unwrap(), ["abc d"]);
    }

    #[test]
    fn unbalanced_or_glued_quotes_are_errors() {
        assert!(split(r#"port "6379"#).is_none());
        assert!(split("port '6379").is_none());
        assert!(split(r#"port "63"79"#).is_none());
        assert!(split("port '63'79").is_none());
    }

    #[test]
    fn quote_round_trips_through_split() {
        for value in [
            "",
            "plain",
            "a b",
            "quo\"te",
            "back\\slash",
            "nl\nx",
            "é\u{7}\u{1}",
        ] {
            let line = format!("key {}", quote(value));
            assert_eq!(split(&line).unwrap(), ["key", value], "value {value:?}");
        }
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        assert_eq!(quote("\u{1}"), r#""\x01""#);
    }

    #[test]
    fn memory_units_follow_redis() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("100b"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("2m"), Some(2_000_000));
        assert_eq!(parse_memory("2Mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("1gB"), Some(1 << 30));
        for bad in [
            "",
            "k",
            "-1",
            "1.5mb",
            "1tb",
            "1 mb",
            "+1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_memory(bad), None, "{bad:?}");
        }
        assert_eq!(parse_memory("18446744073709551615gb"), None);
    }

    #[test]
    fn memory_formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1 << 30), "1gb");
        assert_eq!(format_memory(512 << 20), "512mb");
        assert_eq!(format_memory(4096), "4kb");
        assert_eq!(format_memory(1000), "1000");
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_integer("0"), Some(0));
        assert_eq!(parse_integer("6379"), Some(6379));
        assert_eq!(parse_integer("-12"), Some(-12));
        for bad in [
            "",
            "-",
            "+1",
            "06379",
            "-0",
            "1 ",
            " 1",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn glob_matches_like_redis() {
        assert!(glob_match("*", "port", true));
        assert!(glob_match("stream-*", "stream-node-max-bytes", true));
        assert!(glob_match("STREAM-*", "stream-node-max-bytes", true));
        assert!(!glob_match("STREAM-*", "stream-node-max-bytes", false));
        assert!(glob_match("p?rt", "port", true));
        assert!(glob_match("[pq]ort", "port", true));
        assert!(!glob_match("[^p]ort", "port", true));
        assert!(glob_match("[a-z]ort", "port", true));
        assert!(glob_match("*max*", "maxclients", true));
        assert!(!glob_match("*max", "maxclients", true));
        assert!(glob_match(r"a\*b", "a*b", true));
        assert!(!glob_match(r"a\*b", "axb", true));
        assert!(glob_match("*.conf", "x.conf", false));
        assert!(!glob_match("", "x", false));
        assert!(glob_match("", "", false));
    }

    #[test]
    fn hostile_glob_patterns_stay_fast() {
        let pattern = "*a".repeat(40) + "b";
        let text = "a".repeat(200);
        assert!(!glob_match(&pattern, &text, true));
    }
}
