//! A cursor over a request's arguments whose errors already carry Redis's wording,
//! so command parsers never format error text themselves.

use bytes::Bytes;

use super::error::CommandError;

/// Redis's `string2ll`, under the name command parsers use.
pub use crate::syntax::string2ll as parse_i64;

/// The arguments of one command, consumed front to back by its parser.
#[derive(Debug, Clone)]
pub struct Args {
    argv: Vec<Bytes>,
    pos: usize,
}

impl Args {
    /// Wraps a request; the cursor starts after the command name.
    pub fn new(argv: Vec<Bytes>) -> Self {
        Args { argv, pos: 1 }
    }

    /// The whole request, command name included.
    pub fn argv(&self) -> &[Bytes] {
        &self.argv
    }

    /// Moves the cursor to `pos` (0 = the command name). Used by the dispatcher to
    /// start a subcommand's parser after its name.
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.argv.len());
    }

    /// The cursor position.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.argv.len() - self.pos
    }

    /// The next argument without consuming it.
    pub fn peek(&self) -> Option<&Bytes> {
        self.argv.get(self.pos)
    }

    /// The next argument, if any. (Not an `Iterator`: parsers mix it with typed
    /// accessors that fail with Redis's wording.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Bytes> {
        let b = self.argv.get(self.pos).cloned();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    /// The next argument; a missing one is a syntax error.
    pub fn next_bytes(&mut self) -> Result<Bytes, CommandError> {
        self.next().ok_or(CommandError::Syntax)
    }

    /// The next argument as an integer with Redis's `string2ll` rules.
    pub fn next_i64(&mut self) -> Result<i64, CommandError> {
        let b = self.next_bytes()?;
        parse_i64(&b).ok_or(CommandError::NotInteger)
    }

    /// Consumes the next argument if it equals `keyword` (ASCII case-insensitive).
    pub fn eat(&mut self, keyword: &str) -> bool {
        match self.peek() {
            Some(b) if b.eq_ignore_ascii_case(keyword.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// All remaining arguments, consumed.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let out = self.argv[self.pos..].to_vec();
        self.pos = self.argv.len();
        out
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(CommandError::Syntax)
        }
    }
}

/// Parses an unsigned 64-bit integer, for cursors.
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor() {
        let mut a = Args::new(vec![
            Bytes::from("x"),
            Bytes::from("count"),
            Bytes::from("5"),
        ]);
        assert!(a.eat("COUNT"));
        assert_eq!(a.next_i64().unwrap(), 5);
        assert!(a.finish().is_ok());
    }
}
