//! Bounds on what a configuration file may cost to load: its size, and for YAML the number of
//! nodes once aliases are expanded (a ten-line "billion laughs" file otherwise expands into
//! gigabytes inside the YAML loader). Used for the config file and the web config file.

use std::io::Read as _;
use std::path::Path;

use yaml_rust2::parser::{Event, EventReceiver, Parser};

/// The config file's size limit (a 10,000-hostname config is about 0.5 MB).
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;
/// The web config's size limit (a few keys and bcrypt hashes).
pub const MAX_WEB_CONFIG_BYTES: u64 = 1024 * 1024;
/// YAML nodes (scalars, sequences, mappings) a file may hold once every alias is expanded.
pub const MAX_YAML_NODES: u64 = 250_000;

/// Why [`read_bounded`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is larger than the limit.
    #[error("it is larger than {} KiB", .0 / 1024)]
    TooLarge(u64),
    /// The file is not UTF-8 text.
    #[error("it is not valid UTF-8")]
    NotUtf8,
}

/// Reads `path` as UTF-8, refusing files larger than `max_bytes`.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge(max_bytes));
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

/// Fails when `text`, as YAML, would expand to more than `max_nodes` nodes (aliases counted
/// as copies of what they refer to, as the loader builds them). Syntax errors are left to
/// the real loader, which reports them with a position.
pub fn check_yaml_expansion(text: &str, max_nodes: u64) -> Result<(), String> {
    let mut counter = NodeCounter::default();
    if Parser::new_from_str(text).load(&mut counter, true).is_err() {
        return Ok(());
    }
    if counter.total > max_nodes {
        return Err(format!(
            "it expands to more than {max_nodes} YAML nodes (aliases counted as copies); \
             refusing to load it"
        ));
    }
    Ok(())
}

/// Sizes of anchored nodes and of the collections being read, from the parser's events.
#[derive(Default)]
struct NodeCounter {
    /// Expanded size per anchor id (ids start at 1).
    anchors: Vec<u64>,
    /// Open sequences and mappings: (anchor id, nodes so far including itself).
    open: Vec<(usize, u64)>,
    total: u64,
}

impl NodeCounter {
    fn finish_node(&mut self, anchor: usize, size: u64) {
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, 0);
            }
            self.anchors[anchor] = size;
        }
        self.add(size);
    }

    fn add(&mut self, size: u64) {
        match self.open.last_mut() {
            Some((_, count)) => *count = count.saturating_add(size),
            None => self.total = self.total.saturating_add(size),
        }
    }
}

impl EventReceiver for NodeCounter {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Scalar(_, _, anchor, _) => self.finish_node(anchor, 1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((anchor, 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, size)) = self.open.pop() {
                    self.finish_node(anchor, size);
                }
            }
            Event::Alias(anchor) => {
                let size = self.anchors.get(anchor).copied().unwrap_or(1).max(1);
                self.add(size);
            }
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

    const BOMB: &str = "a: &a [x, x, x, x, x, x, x, x, x, x]\n\
                        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
                        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n\
                        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n\
                        h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                        i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";

    #[test]
    fn an_alias_bomb_is_refused_before_it_is_expanded() {
        let error = check_yaml_expansion(BOMB, MAX_YAML_NODES).unwrap_err();
        assert!(
            error.contains("expands to more than 250000 YAML nodes"),
            "{error}"
        );
    }

    #[test]
    fn ordinary_files_and_modest_aliases_pass() {
        let text = "defaults: &defaults {zone_level: true, discover_hostnames: false}\n\
                    zones:\n  - {id: a, <<: *defaults}\n  - {id: b, <<: *defaults}\n";
        assert_eq!(check_yaml_expansion(text, MAX_YAML_NODES), Ok(()));
        // Exactly at the limit passes, one over fails: the count is exact.
        let list = "[1, 2, 3]"; // the sequence plus three scalars
        assert_eq!(check_yaml_expansion(list, 4), Ok(()));
        assert!(check_yaml_expansion(list, 3).is_err());
        // 1 outer + 3 anchored + 3 for the alias' copy.
        assert!(check_yaml_expansion("[&x [1, 2], *x]", 7).is_ok());
        assert!(check_yaml_expansion("[&x [1, 2], *x]", 6).is_err());
    }

    #[test]
    fn files_over_the_size_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(&path, "x".repeat(2048)).unwrap();
        assert_eq!(read_bounded(&path, 2048).unwrap().len(), 2048);
        let error = read_bounded(&path, 1024).unwrap_err().to_string();
        assert_eq!(error, "it is larger than 1 KiB");
    }
}
