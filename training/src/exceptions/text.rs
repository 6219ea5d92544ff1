//! A note as the classifiers accept it: not empty, and at most [`MAX_CHARS`] characters. Longer
//! notes (mail threads with quoted history, pasted logs) are cut at a character boundary and
//! say so, rather than being refused or silently shortened.

use std::fmt;

/// Notes longer than this are truncated; the answer carries `truncated: true`.
pub const MAX_CHARS: usize = 10_000;

/// A note that passed [`NoteText::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteText {
    text: String,
    truncated: bool,
}

/// Why a note cannot be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteError {
    /// Nothing but whitespace.
    Empty,
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteError::Empty => write!(f, "the note is empty: `text` must contain some words"),
        }
    }
}

impl std::error::Error for NoteError {}

impl NoteText {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NoteError::Empty);
        }
        Ok(match text.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => NoteText {
                text: text[..cut].to_string(),
                truncated: true,
            },
            None => NoteText {
                text: text.to_string(),
                truncated: false,
            },
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the note was cut to [`MAX_CHARS`] characters.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_notes_are_refused_and_long_ones_cut_at_a_character_boundary() {
        assert_eq!(NoteText::parse(" \n\t"), Err(NoteError::Empty));
        let short = NoteText::parse("  parcel damaged ").unwrap();
        assert_eq!(
            (short.as_str(), short.truncated()),
            ("parcel damaged", false)
        );
        // Multi-byte characters: the cut must land between characters, not inside one.
        let long = "é".repeat(MAX_CHARS + 5);
        let cut = NoteText::parse(&long).unwrap();
        assert!(cut.truncated());
        assert_eq!(cut.as_str().chars().count(), MAX_CHARS);
        let exact = "a".repeat(MAX_CHARS);
        assert!(!NoteText::parse(&exact).unwrap().truncated());
    }
}
