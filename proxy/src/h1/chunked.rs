//! Finds where a chunked body ends while its bytes are relayed unchanged: a state machine fed
//! any split of the stream, strict about the syntax (RFC 9112 §7.1), so the relay knows where
//! the next message starts without decoding and re-encoding the body.

/// Longest chunk-size line or trailer section accepted (extensions included).
const MAX_LINE: usize = 4096;
/// Most hex digits in a chunk size (2^60 bytes: far beyond anything real, and no overflow).
const MAX_DIGITS: u8 = 15;

/// Syntax errors in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    /// A byte that cannot appear where it did.
    #[error("malformed chunked body")]
    Syntax,
    /// A size line, extension or trailer section over the limit.
    #[error("chunked body line too long")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` so far).
    Size { digits: u8 },
    /// `;ext` after the size, up to CR.
    Extension,
    /// LF after the size line.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// Start of a trailer field line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// LF ending a trailer line.
    TrailerLf,
    /// LF ending the body.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Tracks one chunked body.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    /// Bytes of chunk data left (in `Data`) or the size being read (in `Size`).
    size: u64,
    /// Bytes of the current size line or trailer section, against [`MAX_LINE`].
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
        }
    }
}

impl Chunked {
    /// Whether the whole body (last chunk and trailers) has been seen.
    pub(crate) fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of the body from the start of `buf`; returns how many belong to it
    /// (fewer than `buf.len()` only once the body is done: the rest is the next message).
    pub(crate) fn advance(&mut self, buf: &[u8]) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                // Chunk data goes by in one step.
                let take = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(buf.len() - i);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(buf[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkError::TooLong);
        }
        self.state = match (self.state, b) {
            (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                if digits == MAX_DIGITS {
                    return Err(ChunkError::TooLong);
                }
                self.size = self.size * 16 + u64::from(hex(b));
                State::Size { digits: digits + 1 }
            }
            (State::Size { digits }, b';') if digits > 0 => State::Extension,
            (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
            (State::Extension, b'\r') => State::SizeLf,
            // Extensions are opaque, but no control bytes (a bare LF would end the line for a
            // lenient parser and not for us).
            (State::Extension, b'\t') => State::Extension,
            (State::Extension, _) if b >= 0x20 && b != 0x7f => State::Extension,
            (State::SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.line = 0;
                State::Size { digits: 0 }
            }
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::TrailerStart, _) if is_field_byte(b) && b != b' ' && b != b'\t' => {
                State::Trailer
            }
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::Trailer, _) if is_field_byte(b) => State::Trailer,
            // The trailer section as a whole counts against the line limit.
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::FinalLf, b'\n') => State::Done,
            _ => return Err(ChunkError::Syntax),
        };
        Ok(())
    }
}

fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole and byte by byte; both must agree.
    fn run(input: &[u8]) -> Result<(usize, bool), ChunkError> {
        let mut whole = Chunked::default();
        let n = whole.advance(input)?;
        let mut split = Chunked::default();
        let mut m = 0;
        for b in input {
            if split.done() {
                break;
            }
            m += split.advance(std::slice::from_ref(b))?;
        }
        assert_eq!((n, whole.done()), (m, split.done()), "{input:?}");
        Ok((n, whole.done()))
    }

    /// Input, and (bytes of the body, whether it ended) or the error.
    type Case = (&'static [u8], Result<(usize, bool), ChunkError>);

    #[test]
    fn finds_the_end_of_chunked_bodies() {
        let table: &[Case] = &[
            (b"0\r\n\r\n", Ok((5, true))),
            (b"0\r\n\r\nGET / HTTP/1.1", Ok((5, true))),
            (b"5\r\nhello\r\n0\r\n\r\n", Ok((15, true))),
            (
                b"A;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\nrest",
                Ok((30, true)),
            ),
            (b"5\r\nhel", Ok((6, false))),
            (b"ff\r\n", Ok((4, false))),
            (b"\r\n", Err(ChunkError::Syntax)),
            (b"5\nhello\r\n", Err(ChunkError::Syntax)),
            (b"5\r\nhelloX\r\n", Err(ChunkError::Syntax)),
            (b"-5\r\n", Err(ChunkError::Syntax)),
            (b" 5\r\n", Err(ChunkError::Syntax)),
            (b"5 \r\n", Err(ChunkError::Syntax)),
            (b"0x5\r\n", Err(ChunkError::Syntax)),
            (b"1;a\nb\r\n", Err(ChunkError::Syntax)),
            (b"0\r\n x\r\n\r\n", Err(ChunkError::Syntax)),
            (b"1000000000000000\r\n", Err(ChunkError::TooLong)),
        ];
        for (input, want) in table {
            assert_eq!(run(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
        let long = [b"1;".as_slice(), &[b'x'; MAX_LINE]].concat();
        assert_eq!(run(&long), Err(ChunkError::TooLong));
    }
}
