//! Where each field of the file is: an index from field path to line and column.
//!
//! serde tells us *what* is wrong with a value but, once deserialized, not *where* it was.
//! So the source is walked a second time with yaml-rust2's event parser, which marks every
//! node (see `walk`), and each node is recorded under the same path validation uses:
//! `pools.web.backends[2].weight` (mapping keys joined with `.`, list items as `[i]`).
//!
//! Paths are interned as a tree, each one a parent and one segment, so indexing costs
//! the length of the file and not the sum of every node's full path: a file of nested
//! brackets, or many fields under one long key, would otherwise build a path string per
//! node, quadratic in the file's size. Only the rare lookups (an error to place) walk a
//! path string back into segments.

use std::collections::{HashMap, HashSet};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    /// The start of the file, used when nothing better is known.
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };
}

/// Where one node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    /// The key naming this node, for mapping entries.
    pub(crate) key: Option<Pos>,
    /// The value itself.
    pub(crate) value: Pos,
}

/// One step of a path below its parent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Key(Box<str>),
    Index(usize),
}

/// An interned path; [`PathId::ROOT`] is the empty path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PathId(usize);

impl PathId {
    pub(crate) const ROOT: PathId = PathId(0);
}

/// Field path -> position, for one source text.
#[derive(Debug)]
pub(crate) struct PositionIndex {
    /// Every occurrence of each path, in file order: a duplicated mapping key (two pools
    /// called `web`) has two. Indexed by `PathId`.
    nodes: Vec<Vec<Node>>,
    children: HashMap<(PathId, Segment), PathId>,
    /// Bytes copied into segments: what tests hold to the file's length.
    #[cfg(test)]
    pub(crate) bytes_built: usize,
}

impl Default for PositionIndex {
    fn default() -> Self {
        PositionIndex {
            nodes: vec![Vec::new()],
            children: HashMap::new(),
            #[cfg(test)]
            bytes_built: 0,
        }
    }
}

impl PositionIndex {
    /// The path `seg` below `parent`, interned on first use.
    pub(crate) fn child(&mut self, parent: PathId, seg: Segment) -> PathId {
        #[cfg(test)]
        if let Segment::Key(k) = &seg {
            self.bytes_built += k.len();
        }
        let next = PathId(self.nodes.len());
        let id = *self.children.entry((parent, seg)).or_insert(next);
        if id == next {
            self.nodes.push(Vec::new());
        }
        id
    }

    /// Records one occurrence of `path`.
    pub(crate) fn push(&mut self, path: PathId, node: Node) {
        if let Some(all) = self.nodes.get_mut(path.0) {
            all.push(node);
        }
    }

    /// The last occurrence recorded of `path`, to move a block mapping's start.
    pub(crate) fn last_mut(&mut self, path: PathId) -> Option<&mut Node> {
        self.nodes.get_mut(path.0).and_then(|all| all.last_mut())
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
        !self.occurrences(path).is_empty()
    }

    fn lookup(&self, path: &str, nth: usize) -> Option<Node> {
        if let Some(node) = self.occurrences(path).get(nth) {
            return Some(*node);
        }
        let mut path = path;
        loop {
            if let Some(node) = self.occurrences(path).first() {
                return Some(*node);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }

    /// Every occurrence of the path spelled `path`, in file order. A key holding `.` or
    /// `[` makes a spelling ambiguous (`a.b` is a key `a.b` or `b` under `a`); every
    /// reading is tried, as the flat index of full paths this replaces would have.
    fn occurrences(&self, path: &str) -> Vec<Node> {
        let mut found: Vec<Node> = Vec::new();
        let mut seen = HashSet::new();
        let mut todo = vec![(PathId::ROOT, 0usize)];
        while let Some((id, at)) = todo.pop() {
            if !seen.insert((id, at)) {
                continue;
            }
            let rest = &path[at..];
            if rest.is_empty() {
                found.extend(self.nodes.get(id.0).into_iter().flatten());
            }
            if let Some(inner) = rest.strip_prefix('[') {
                if let Some((digits, _)) = inner.split_once(']') {
                    let canonical = digits
                        .parse::<usize>()
                        .ok()
                        .filter(|n| n.to_string() == digits);
                    if let Some(child) =
                        canonical.and_then(|n| self.children.get(&(id, Segment::Index(n))))
                    {
                        todo.push((*child, at + digits.len() + 2));
                    }
                }
            }
            let start = if id == PathId::ROOT && at == 0 {
                0
            } else if rest.starts_with('.') {
                at + 1
            } else {
                continue;
            };
            let ends = path[start..]
                .match_indices(['.', '['])
                .map(|(i, _)| start + i)
                .chain([path.len()]);
            for end in ends {
                let seg = Segment::Key(path[start..end].into());
                if let Some(child) = self.children.get(&(id, seg)) {
                    todo.push((*child, end));
                }
            }
        }
        found.sort_by_key(|n| n.key.unwrap_or(n.value));
        found
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::build;

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

    fn idx(source: &str) -> PositionIndex {
        build(source).expect("within the limits")
    }

    #[test]
    fn block_mappings_start_at_their_first_key() {
        let idx = idx(SRC);
        assert_eq!(idx.value(""), at(1, 1));
        assert_eq!(idx.value("admin"), at(2, 3));
        assert_eq!(idx.value("pools.web.backends[1]"), at(7, 9));
    }

    #[test]
    fn scalars_flow_mappings_and_list_items_are_placed_exactly() {
        let idx = idx(SRC);
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
        let idx = idx(SRC);
        assert!(!idx.contains("pools.web.timeouts.connect"));
        assert!(!idx.contains("pools.web.backends[01]"));
        assert_eq!(idx.key("pools.web.timeouts.connect", 0), at(4, 3));
        assert_eq!(idx.key("listeners[0]", 0), at(1, 1));
    }

    #[test]
    fn duplicate_keys_keep_every_occurrence() {
        let idx = idx("pools:\n  web: {}\n  web: {}\n");
        assert_eq!(idx.key("pools.web", 0), at(2, 3));
        assert_eq!(idx.key("pools.web", 1), at(3, 3));
    }

    #[test]
    fn keys_holding_dots_or_brackets_are_found() {
        let idx = idx("pools:\n  a.b:\n    x[0]: 1\n  a:\n    b: {y: 2}\n");
        assert_eq!(idx.key("pools.a.b.x[0]", 0), at(3, 5));
        assert_eq!(idx.key("pools.a.b.y", 0), at(5, 9));
        // Both readings of `pools.a.b`, in file order.
        assert_eq!(idx.key("pools.a.b", 0), at(2, 3));
        assert_eq!(idx.key("pools.a.b", 1), at(5, 5));
    }

    /// The defect: a path string per node made indexing quadratic. Many fields under one
    /// long key, and brackets nested to the limit, now copy no more than the file holds.
    #[test]
    fn indexing_copies_no_more_than_the_file_holds() {
        let long_key = "k".repeat(100_000);
        let fields: String = (0..20_000).map(|i| format!("  f{i}: 1\n")).collect();
        let wide = format!("? {long_key}\n:\n{fields}");
        let deep = format!("{}{{x: 1}}{}", "{a: ".repeat(60), "}".repeat(60)).repeat(2_000);
        let deep = format!("[{}]", deep.replace("}{", "}, {"));
        for source in [wide, deep] {
            let idx = idx(&source);
            assert!(
                idx.bytes_built <= source.len(),
                "{} bytes built for {} bytes of source",
                idx.bytes_built,
                source.len()
            );
        }
    }
}
