use std::fmt;

/// What went wrong, for callers that branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bytes that cannot be what an encoder wrote: a checksum mismatch, a value out of range.
    Corruption,
    /// The input ends before a structure it announces.
    Truncated,
    /// A version this reader does not know (newer than it).
    Compatibility,
    /// An encoder was given values it cannot represent, or a caller broke a documented precondition.
    InvalidArgument,
}

/// An error of this crate; offsets are relative to the slice given to the decoder
/// (for a segment: the file offset).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    Corruption {
        offset: u64,
        what: &'static str,
        expected: u64,
        found: u64,
    },
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        available: u64,
    },
    Compatibility {
        found_version: u16,
        newest_supported: u16,
    },
    InvalidArgument {
        what: String,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Corruption { .. } => ErrorKind::Corruption,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Compatibility { .. } => ErrorKind::Compatibility,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
        }
    }

    /// Byte offset where the problem was found, when there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Corruption { offset, .. } | Error::Truncated { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corruption {
                offset,
                what,
                expected,
                found,
            } => write!(
                f,
                "corruption at offset {offset}: {what} (expected {expected:#x}, found {found:#x})"
            ),
            Error::Truncated {
                offset,
                what,
                needed,
                available,
            } => write!(
                f,
                "truncated at offset {offset}: {what} needs {needed} bytes, {available} available"
            ),
            Error::Compatibility {
                found_version,
                newest_supported,
            } => write!(
                f,
                "format version {found_version} is newer than this reader (supports up to {newest_supported})"
            ),
            Error::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
        }
    }
}

impl std::error::Error for Error {}
