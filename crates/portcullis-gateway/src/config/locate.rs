//! Where a problem is in the file: the line and column of a dotted key
//! (`route[1].allow.owner`, `cors.origins[2]`), read from toml's spanned
//! document, as `nginx -t` names `file:line`. A key that is absent (a
//! missing required key) is located at its nearest present ancestor.

use toml::de::{DeTable, DeValue};

/// The spanned document of a configuration text.
pub(super) struct Locator<'t> {
    text: &'t str,
    root: Option<toml::Spanned<DeTable<'t>>>,
}

/// A 1-based line and column.
pub(super) type LineCol = (usize, usize);

impl<'t> Locator<'t> {
    pub(super) fn new(text: &'t str) -> Locator<'t> {
        Locator { text, root: DeTable::parse(text).ok() }
    }

    /// The line and column of the key `at` names, or of its nearest
    /// ancestor in the file; `None` when not even its first key is there.
    pub(super) fn find(&self, at: &str) -> Option<LineCol> {
        let root = self.root.as_ref()?;
        let mut table: &DeTable<'t> = root.get_ref();
        let mut best = None;
        'path: for seg in at.split('.') {
            let (name, indices) = split_indices(seg);
            let Some((key, mut value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
                break;
            };
            best = Some(key.span().start);
            for i in indices {
                match value.get_ref() {
                    DeValue::Array(items) => match items.get(i) {
                        Some(item) => {
                            value = item;
                            best = Some(item.span().start);
                        }
                        None => break 'path,
                    },
                    _ => break 'path,
                }
            }
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        best.map(|offset| line_col(self.text, offset))
    }
}

/// `route[1][2]` -> (`route`, [1, 2]); a segment without a valid index is
/// all name.
fn split_indices(seg: &str) -> (&str, Vec<usize>) {
    let Some(open) = seg.find('[') else { return (seg, Vec::new()) };
    let indices: Option<Vec<usize>> = seg[open..]
        .split_terminator(']')
        .map(|part| part.strip_prefix('[').and_then(|n| n.parse().ok()))
        .collect();
    match indices {
        Some(v) if seg.ends_with(']') => (&seg[..open], v),
        _ => (seg, Vec::new()),
    }
}

/// The 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> LineCol {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[upstream]\nurl = \"http://x\"\n\n[cors]\norigins = [\"a\", \"b\",\n  \"c\"]\n\n[[route]]\npath = \"/a\"\n\n[[route]]\npath = \"/b\"\nallow = { roles = [\"x\"], owner = \"id\" }\n";

    #[test]
    fn keys_are_located_and_missing_keys_at_their_ancestor() {
        let l = Locator::new(TEXT);
        assert_eq!(l.find("upstream.url"), Some((2, 1)));
        assert_eq!(l.find("upstream.timeout"), Some((1, 2)), "a missing key: its table");
        assert_eq!(l.find("cors.origins[2]"), Some((6, 3)));
        assert_eq!(l.find("route[1].path"), Some((12, 1)));
        assert_eq!(l.find("route[1].allow.owner"), Some((13, 26)));
        assert_eq!(l.find("route[0]").map(|(line, _)| line), Some(8), "a [[route]] table: its header");
        assert_eq!(l.find("route[7].path").map(|(line, _)| line), Some(8));
        assert_eq!(l.find("nothing.here"), None);
        assert_eq!(Locator::new("[broken").find("upstream.url"), None);
    }

    #[test]
    fn indices_split() {
        assert_eq!(split_indices("route[12]"), ("route", vec![12]));
        assert_eq!(split_indices("a[1][2]"), ("a", vec![1, 2]));
        assert_eq!(split_indices("plain"), ("plain", vec![]));
        assert_eq!(split_indices("odd[x]"), ("odd[x]", vec![]));
    }
}
