//! The first look at the text: yaml-rust2's events, walked once without recursion, to
//! index every node's position and to refuse a document past weir's limits before serde
//! (and its C-derived parser) ever sees it.
//!
//! The limits exist because a configuration is operator input that reloads read while
//! serving: nesting deeper than [`MAX_DEPTH`] made serde_yaml_ng's parser quadratic
//! (a 200 KB file of nested `{a:` took over 30 s) and yaml-rust2's own `load` recursive
//! (block nesting overflowed the stack), and aliases expand: ten levels of ten aliases
//! each ("billion laughs") describe 10^10 nodes in a few hundred bytes. serde_yaml_ng
//! caps alias jumps at 100 per event of the file and nesting at 128, which bounds neither
//! the work per jump nor the size of what is built; the counts here are exact and
//! checked before anything is expanded.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use crate::position::{Node, PathId, Pos, PositionIndex, Segment};

/// Largest configuration file read, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 16 << 20;
/// Deepest nesting of mappings and lists.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most aliases in the document once every alias is expanded (nested ones included).
pub(crate) const MAX_ALIAS_EXPANSIONS: u64 = 10_000;
/// Most nodes aliases may bring in, in total, once expanded.
pub(crate) const MAX_ALIAS_NODES: u64 = 1_000_000;

/// A document past one of the limits, or one yaml-rust2 cannot parse: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
}

/// Indexes `source`, or says which limit it breaks or where its syntax is wrong.
///
/// The limits are only known to hold for the text before a syntax error, so serde must
/// not expand that text (see `parse`). yaml-rust2 stops at 256 nested flow levels,
/// sometimes before the 65th is even delivered: that is the nesting limit too.
pub(crate) fn build(source: &str) -> Result<PositionIndex, LimitError> {
    let mut walker = Walker::default();
    let mut parser = Parser::new_from_str(source);
    // Each event is read in turn (`Parser::load` would recurse once per level).
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(walker.index),
            Ok((event, mark)) => walker.on_event(event, mark)?,
            Err(e) if e.info() == "recursion limit exceeded" => {
                return Err(LimitError {
                    pos: pos(*e.marker()),
                    message: format!("nesting deeper than {MAX_DEPTH} levels"),
                })
            }
            Err(e) => {
                return Err(LimitError {
                    pos: pos(*e.marker()),
                    message: e.info().to_owned(),
                })
            }
        }
    }
}

fn pos(mark: Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

enum Frame {
    Mapping {
        path: PathId,
        /// The key just read, with its position, while its value is awaited.
        key: Option<(String, Pos)>,
    },
    Sequence {
        path: PathId,
        next: usize,
    },
    /// A mapping or list used as a mapping *key*: nothing inside it is a field.
    ComplexKey,
}

/// What a collection holds, counted while it is open, so that an anchor on it knows
/// what each alias to it will expand to.
#[derive(Clone, Copy, Default)]
struct Size {
    /// Aliases inside, expanded.
    aliases: u64,
    /// Nodes inside, itself included, expanded.
    nodes: u64,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.nodes = self.nodes.saturating_add(other.nodes);
    }
}

#[derive(Default)]
struct Walker {
    /// One frame per open collection: its length is the nesting depth.
    stack: Vec<(Frame, usize, Size)>,
    index: PositionIndex,
    /// What each anchor expands to, by yaml-rust2's anchor id.
    anchors: std::collections::HashMap<usize, Size>,
    /// Totals over the whole document.
    expanded: Size,
}

impl Walker {
    /// Records a node that starts at `pos`, `None` when it is a mapping key (or inside a
    /// complex key) rather than a value.
    fn place(&mut self, pos: Pos, scalar: Option<String>) -> Option<PathId> {
        let (path, key) = match self.stack.last_mut().map(|(frame, ..)| frame) {
            None => (PathId::ROOT, None),
            Some(Frame::ComplexKey) => return None,
            Some(Frame::Sequence { path, next }) => {
                let (parent, i) = (*path, *next);
                *next += 1;
                (self.index.child(parent, Segment::Index(i)), None)
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some((k, key_pos)) => {
                    let parent = *path;
                    let child = self.index.child(parent, Segment::Key(k.into_boxed_str()));
                    (child, Some(key_pos))
                }
                None => {
                    // This node is a key. A complex key gets a placeholder name.
                    *key = Some((scalar.unwrap_or_else(|| "?".to_owned()), pos));
                    // yaml-rust2 marks a *block* mapping after its first key; the mapping
                    // really starts at that key. (A flow mapping's `{` comes first anyway.)
                    let parent = *path;
                    if let Some(node) = self.index.last_mut(parent) {
                        node.value = node.value.min(pos);
                    }
                    return None;
                }
            },
        };
        self.index.push(path, Node { key, value: pos });
        Some(path)
    }

    fn open(&mut self, pos: Pos, anchor: usize, mapping: bool) -> Result<(), LimitError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(LimitError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        let in_key = matches!(self.stack.last(), Some((Frame::ComplexKey, ..)));
        let frame = match if in_key { None } else { self.place(pos, None) } {
            Some(path) if mapping => Frame::Mapping { path, key: None },
            Some(path) => Frame::Sequence { path, next: 0 },
            None => Frame::ComplexKey,
        };
        let size = Size {
            aliases: 0,
            nodes: 1,
        };
        self.stack.push((frame, anchor, size));
        Ok(())
    }

    fn close(&mut self) {
        if let Some((_, anchor, size)) = self.stack.pop() {
            self.counted(anchor, size);
        }
    }

    /// A finished node of `size`: its anchor's, and its parent's.
    fn counted(&mut self, anchor: usize, size: Size) {
        if anchor != 0 {
            self.anchors.insert(anchor, size);
        }
        if let Some((.., parent)) = self.stack.last_mut() {
            parent.add(size);
        }
    }

    fn alias(&mut self, pos: Pos, anchor: usize) -> Result<(), LimitError> {
        // An unknown anchor is a syntax error yaml-rust2 reports (and stops at).
        let target = self.anchors.get(&anchor).copied().unwrap_or_default();
        let size = Size {
            aliases: target.aliases.saturating_add(1),
            nodes: target.nodes,
        };
        self.expanded.add(size);
        if self.expanded.aliases > MAX_ALIAS_EXPANSIONS {
            return Err(LimitError {
                pos,
                message: format!(
                    "more than {MAX_ALIAS_EXPANSIONS} alias expansions (aliases inside aliases count once per expansion)"
                ),
            });
        }
        if self.expanded.nodes > MAX_ALIAS_NODES {
            return Err(LimitError {
                pos,
                message: format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
            });
        }
        self.counted(0, size);
        Ok(())
    }

    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), LimitError> {
        let pos = pos(mark);
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                self.place(pos, Some(value));
                self.counted(
                    anchor,
                    Size {
                        aliases: 0,
                        nodes: 1,
                    },
                );
            }
            Event::Alias(anchor) => {
                self.place(pos, Some("*alias".to_owned()));
                self.alias(pos, anchor)?;
            }
            Event::MappingStart(anchor, _) => self.open(pos, anchor, true)?,
            Event::SequenceStart(anchor, _) => self.open(pos, anchor, false)?,
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }
}
