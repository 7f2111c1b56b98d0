//! Where each field of the file is: an index from field path to line and column.
//!
//! serde tells us *what* is wrong with a value but, once deserialized, not *where* it was.
//! So the source is walked a second time with yaml-rust2's event parser, which marks every
//! node, and each node is recorded under the same path validation uses:
//! `pools.web.backends[2].weight` (mapping keys joined with `.`, list items as `[i]`).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    /// The start of the file, used when nothing better is known.
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(mark: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

/// Where one node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    /// The key naming this node, for mapping entries.
    pub(crate) key: Option<Pos>,
    /// The value itself.
    pub(crate) value: Pos,
}

/// Field path -> position, for one source text.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    /// Every occurrence of each path, in file order: a duplicated mapping key (two pools
    /// called `web`) has two.
    nodes: HashMap<String, Vec<Node>>,
}

impl PositionIndex {
    /// Indexes `source`. A file that does not even scan yields whatever was indexed before
    /// the error: serde reports the syntax error itself, with its position.
    pub(crate) fn build(source: &str) -> PositionIndex {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(source);
        if let Err(e) = parser.load(&mut walker, false) {
            // Not an error of ours to report: serde_yaml_ng parses the same text and
            // reports the syntax error with its own position.
            let _ignored_syntax_error = e;
        }
        PositionIndex {
            nodes: walker.nodes,
        }
    }

    /// The value at `path`, or failing that its nearest indexed ancestor (a value reached
    /// through an alias, say), or the start of the file.
    #[cfg(test)]
    pub(crate) fn value(&self, path: &str) -> Pos {
        self.lookup(path, 0).map_or(Pos::START, |n| n.value)
    }

    /// The key of the `nth` (from 0) occurrence of `path` if it is a mapping entry, else
    /// its value; the nearest indexed ancestor's when `path` is not in the file (a value
    /// reached through an alias, say), or the start of the file.
    pub(crate) fn key(&self, path: &str, nth: usize) -> Pos {
        self.lookup(path, nth)
            .map_or(Pos::START, |n| n.key.unwrap_or(n.value))
    }

    /// Whether `path` itself (not an ancestor) was seen in the file.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    fn lookup(&self, path: &str, nth: usize) -> Option<&Node> {
        if let Some(node) = self.nodes.get(path).and_then(|all| all.get(nth)) {
            return Some(node);
        }
        let mut path = path;
        loop {
            if let Some(node) = self.nodes.get(path).and_then(|all| all.first()) {
                return Some(node);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a mapping key onto a path.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a list index onto a path.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

// === impl Walker ===

enum Frame {
    Mapping {
        path: String,
        /// The key just read, with its position, while its value is awaited.
        key: Option<(String, Pos)>,
    },
    Sequence {
        path: String,
        next: usize,
    },
    /// A mapping or list used as a mapping *key*: nothing inside it is a field.
    ComplexKey {
        depth: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    nodes: HashMap<String, Vec<Node>>,
}

impl Walker {
    /// Records a node that starts at `pos` and returns its path, or `None` when the node is
    /// a mapping key (or inside a complex key) rather than a value.
    fn place(&mut self, pos: Pos, scalar: Option<&str>) -> Option<String> {
        let (path, key) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::ComplexKey { .. }) => return None,
            Some(Frame::Sequence { path, next }) => {
                let p = index(path, *next);
                *next += 1;
                (p, None)
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some((k, key_pos)) => (join(path, &k), Some(key_pos)),
                None => {
                    // This node is a key. A complex key gets a placeholder name.
                    let name = scalar.unwrap_or("?").to_owned();
                    *key = Some((name, pos));
                    // yaml-rust2 marks a *block* mapping after its first key; the mapping
                    // really starts at that key. (A flow mapping's `{` comes first anyway.)
                    if let Some(node) = self
                        .nodes
                        .get_mut(path.as_str())
                        .and_then(|all| all.last_mut())
                    {
                        node.value = node.value.min(pos);
                    }
                    return None;
                }
            },
        };
        self.nodes
            .entry(path.clone())
            .or_default()
            .push(Node { key, value: pos });
        Some(path)
    }

    fn open(&mut self, pos: Pos, mapping: bool) {
        if let Some(Frame::ComplexKey { depth }) = self.stack.last_mut() {
            *depth += 1;
            return;
        }
        match self.place(pos, None) {
            Some(path) if mapping => self.stack.push(Frame::Mapping { path, key: None }),
            Some(path) => self.stack.push(Frame::Sequence { path, next: 0 }),
            None => self.stack.push(Frame::ComplexKey { depth: 0 }),
        }
    }

    fn close(&mut self) {
        if let Some(Frame::ComplexKey { depth }) = self.stack.last_mut() {
            if *depth > 0 {
                *depth -= 1;
                return;
            }
        }
        self.stack.pop();
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        match ev {
            Event::Scalar(ref value, ..) => {
                self.place(pos, Some(value));
            }
            Event::Alias(_) => {
                self.place(pos, Some("*alias"));
            }
            Event::MappingStart(..) => self.open(pos, true),
            Event::SequenceStart(..) => self.open(pos, false),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
admin:
  listen: 127.0.0.1:9901
pools:
  web:
    backends:
      - { address: 127.0.0.1:1, weight: 3 }
      - address: \"b:2\"
        weight: 0
";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn block_mappings_start_at_their_first_key() {
        let idx = PositionIndex::build(SRC);
        assert_eq!(idx.value(""), at(1, 1));
        assert_eq!(idx.value("admin"), at(2, 3));
        assert_eq!(idx.value("pools.web.backends[1]"), at(7, 9));
    }

    #[test]
    fn scalars_flow_mappings_and_list_items_are_placed_exactly() {
        let idx = PositionIndex::build(SRC);
        assert_eq!(idx.value("admin.listen"), at(2, 11));
        assert_eq!(idx.key("admin.listen", 0), at(2, 3));
        assert_eq!(idx.value("pools.web.backends"), at(6, 7));
        assert_eq!(idx.value("pools.web.backends[0]"), at(6, 9));
        assert_eq!(idx.key("pools.web.backends[0]", 0), at(6, 9));
        assert_eq!(idx.key("pools.web.backends[0].weight", 0), at(6, 33));
        assert_eq!(idx.value("pools.web.backends[1].address"), at(7, 18));
        assert_eq!(idx.key("pools.web.backends[1].weight", 0), at(8, 9));
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let idx = PositionIndex::build(SRC);
        assert!(!idx.contains("pools.web.timeouts.connect"));
        assert_eq!(idx.key("pools.web.timeouts.connect", 0), at(4, 3));
        assert_eq!(idx.key("listeners[0]", 0), at(1, 1));
    }

    #[test]
    fn duplicate_keys_keep_every_occurrence() {
        let idx = PositionIndex::build("pools:\n  web: {}\n  web: {}\n");
        assert_eq!(idx.key("pools.web", 0), at(2, 3));
        assert_eq!(idx.key("pools.web", 1), at(3, 3));
    }

    #[test]
    fn a_file_that_does_not_scan_keeps_what_came_before() {
        let idx = PositionIndex::build("admin:\n  listen: x\n bad: [\n");
        assert_eq!(idx.key("admin.listen", 0), at(2, 3));
    }
}
