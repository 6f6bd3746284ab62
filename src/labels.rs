//! `Labels`: a label or annotation set, sorted by name, names unique. The API is the slice
//! of `BTreeMap<String, String>` sift uses; the layout is packed (one string holding every
//! name and value, plus their end offsets), because an alert holds two of these for as
//! long as it is active: a B-tree node is ~560 bytes however few labels it holds, a vector
//! of string pairs 48 bytes per label, the packed set about the bytes of its text. With
//! 200k active alerts that is ~1.4 KB, ~0.25 KB or ~0.1 KB per alert for its labels.

use std::fmt;

use compact_str::CompactString;
use smallvec::SmallVec;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Packed: all names and values in one string (`text`, in name order: name 0, value 0,
/// name 1, …) and the end offset of each in `ends`. Two allocations per set whatever its
/// size, and no per-string header: the load harness's four labels take 96 bytes instead of
/// 192 as pairs of strings.
#[derive(Clone, Default)]
pub struct Labels {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    fn span(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn name(&self, i: usize) -> &str {
        self.span(2 * i)
    }

    fn value(&self, i: usize) -> &str {
        self.span(2 * i + 1)
    }

    /// `Ok(index)` of `name`, or `Err(index)` where it would go. Label sets are small:
    /// a forward scan (what a B-tree does inside a node) beats a binary search there.
    fn find(&self, name: &str) -> Result<usize, usize> {
        let n = self.len();
        if n > 16 {
            let (mut lo, mut hi) = (0, n);
            while lo < hi {
                let mid = (lo + hi) / 2;
                match self.name(mid).cmp(name) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Equal => return Ok(mid),
                    std::cmp::Ordering::Greater => hi = mid,
                }
            }
            return Err(lo);
        }
        // Names as bytes (byte order is `str` order), walked from one end offset to the
        // next; the first byte decides most comparisons without a call to memcmp.
        let (text, want) = (self.text.as_bytes(), name.as_bytes());
        let mut start = 0;
        for i in 0..n {
            let end = self.ends[2 * i] as usize;
            let k = &text[start..end];
            start = self.ends[2 * i + 1] as usize;
            let ord = match k.first().cmp(&want.first()) {
                std::cmp::Ordering::Equal => k.cmp(want),
                o => o,
            };
            match ord {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(i),
                std::cmp::Ordering::Greater => return Err(i),
            }
        }
        Err(n)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.value(i))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The index of `name`, for lookups (ten or so per alert: CI mapping, severity, host,
    /// runbooks): in a small set, names are compared by length first, so a miss costs a
    /// few integer compares per label and a hit one memory compare.
    fn position(&self, name: &str) -> Option<usize> {
        let n = self.len();
        if n > 16 {
            return self.find(name).ok();
        }
        let (text, want) = (self.text.as_bytes(), name.as_bytes());
        let mut start = 0;
        for i in 0..n {
            let end = self.ends[2 * i] as usize;
            if end - start == want.len() && text.get(start..end) == Some(want) {
                return Some(i);
            }
            start = self.ends[2 * i + 1] as usize;
        }
        None
    }

    /// Sets `name`; returns the value it replaced.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let mut pairs = self.to_pairs();
        let old = match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut pairs[i].1, value)),
            Err(i) => {
                pairs.insert(i, (name, value));
                None
            }
        };
        *self = Labels::pack(&pairs);
        old
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.find(name).ok()?;
        let mut pairs = self.to_pairs();
        let (_, v) = pairs.remove(i);
        *self = Labels::pack(&pairs);
        Some(v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut pairs = self.to_pairs();
        pairs.retain(|(k, v)| keep(k, v));
        *self = Labels::pack(&pairs);
    }

    /// The packed form: every name and value in order (name 0, value 0, name 1, …) and
    /// the end offset of each in the text.
    pub fn packed(&self) -> (&[u8], &[u32]) {
        (self.text.as_bytes(), &self.ends)
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator {
        (0..self.len()).map(|i| (self.name(i), self.value(i)))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        (0..self.len()).map(|i| self.name(i))
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        (0..self.len()).map(|i| self.value(i))
    }

    fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Packs pairs already in name order with unique names.
    fn pack<S: AsRef<str>>(pairs: &[(S, S)]) -> Self {
        let len: usize = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(2 * pairs.len());
        for (k, v) in pairs {
            for part in [k.as_ref(), v.as_ref()] {
                text.push_str(part);
                // A label set over 4 GiB cannot arrive: request bodies are capped far
                // below that.
                ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            }
        }
        Labels {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// A set from pairs as a sender wrote them, gathered on the stack (sets are small).
    /// Prometheus and Alertmanager send names in order (Go writes a map's keys sorted):
    /// then nothing is sorted. Otherwise the last value of a repeated name wins.
    pub(crate) fn from_read<S: AsRef<str>>(pairs: SmallVec<[(S, S); 12]>) -> Self {
        let packed = Labels::pack(&pairs);
        if packed.names_ascending() {
            packed
        } else {
            Labels::from_pairs(pairs.into_vec())
        }
    }

    /// Whether the names are strictly ascending: a set as packed from a sender's pairs
    /// is a valid set only then (else it is out of order or repeats a name).
    fn names_ascending(&self) -> bool {
        (1..self.len()).all(|i| self.name(i - 1) < self.name(i))
    }

    /// Sorts and dedups pairs gathered in any order (the last value of a name wins, as
    /// with repeated `insert`s).
    fn from_pairs<S: AsRef<str>>(mut pairs: Vec<(S, S)>) -> Self {
        // Newest first, then a stable sort: among equal names the last one sent comes
        // first and is the one `dedup_by` keeps.
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        pairs.dedup_by(|later, kept| later.0.as_ref() == kept.0.as_ref());
        Labels::pack(&pairs)
    }
}

/// Packs a label set while it is read, part by part (the fast reader's path): the text
/// of each name and value is appended to one buffer, so nothing is gathered or copied per
/// string. Kept between sets, so its buffers are reused; `finish` copies the set out at
/// its exact size.
#[derive(Default)]
pub(crate) struct Packer {
    text: String,
    ends: Vec<u32>,
}

impl Packer {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Where the next name or value is written.
    pub(crate) fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// Ends the name or value written since the last call.
    pub(crate) fn end_part(&mut self) {
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    /// The set: as written when the names came strictly ascending (what Go writes), else
    /// sorted with the last value of a repeated name winning (as `from_read`).
    pub(crate) fn finish(&self) -> Labels {
        let read = Labels {
            text: Box::from(self.text.as_str()),
            ends: Box::from(&self.ends[..self.ends.len() / 2 * 2]),
        };
        if read.names_ascending() {
            return read;
        }
        Labels::from_pairs(read.iter().collect())
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.ends == other.ends
    }
}

impl Eq for Labels {}

/// Pair by pair, as a sorted map of strings compares.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.text.hash(h);
        self.ends.hash(h);
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Labels::from_pairs(iter.into_iter().collect())
    }
}

impl Extend<(String, String)> for Labels {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        let mut pairs = self.to_pairs();
        pairs.extend(iter);
        *self = Labels::from_pairs(pairs);
    }
}

impl<const N: usize> From<[(String, String); N]> for Labels {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl IntoIterator for Labels {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.to_pairs().into_iter()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a str, &'a str)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;
    fn index(&self, name: &str) -> &str {
        self.get(name).expect("no such label")
    }
}

/// In the OpenAPI document: a JSON object of label name to value (as serialized below).
impl utoipa::PartialSchema for Labels {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .description(Some("Label (or annotation) names and their values."))
            .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
            .into()
    }
}

impl utoipa::ToSchema for Labels {}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut pairs: SmallVec<[(Text<'de>, Text<'de>); 12]> = SmallVec::new();
                while let Some((k, v)) = map.next_entry::<Text<'de>, Text<'de>>()? {
                    pairs.push((k, v));
                }
                Ok(Labels::from_read(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

/// A label name or value while a set is read: borrowed from the input when it holds the
/// text as is (no escapes), copied otherwise. Only the packed set is kept.
enum Text<'de> {
    Borrowed(&'de str),
    Copied(CompactString),
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Copied(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct T;
        impl<'de> Visitor<'de> for T {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(s))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text::Copied(CompactString::from(s)))
            }
        }
        d.deserialize_str(T)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_and_plain_text_read_alike() {
        let l: Labels =
            serde_json::from_str(r#"{"job": "a\"b", "inst\u0061nce": "h:1", "z": "plain"}"#)
                .unwrap();
        assert_eq!(l.get("job"), Some("a\"b"));
        assert_eq!(l.get("instance"), Some("h:1"));
        assert_eq!(l.get("z"), Some("plain"));
        // Non-string values are refused, naming what was expected.
        let e = serde_json::from_str::<Labels>(r#"{"job": 5}"#).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut l: Labels =
            serde_json::from_str(r#"{"job": "node", "alertname": "Up", "job": "db"}"#).unwrap();
        assert_eq!(l.keys().collect::<Vec<_>>(), ["alertname", "job"]);
        assert_eq!(l.get("job"), Some("db"), "last value wins");
        assert_eq!(l.insert("instance".into(), "h:1".into()), None);
        assert_eq!(l.insert("job".into(), "web".into()), Some("db".into()));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"alertname":"Up","instance":"h:1","job":"web"}"#
        );
        assert_eq!(l.remove("instance"), Some("h:1".into()));
        assert!(!l.contains_key("instance") && l.len() == 2);
        assert!(serde_json::from_str::<Labels>(r#"{"a": 1}"#).is_err());
        // In order (as Go sends), out of order with a repeat, and past the 12 pairs kept
        // on the stack while reading: the same sets either way.
        let sorted: Labels = serde_json::from_str(r#"{"a":"1","b":"2","c":"3"}"#).unwrap();
        let shuffled: Labels =
            serde_json::from_str(r#"{"c":"3","a":"0","b":"2","a":"1"}"#).unwrap();
        assert_eq!(sorted, shuffled);
        let body: Vec<String> = (0..30).map(|i| format!(r#""k{i:02}":"{i}""#)).collect();
        let many: Labels = serde_json::from_str(&format!("{{{}}}", body.join(","))).unwrap();
        assert_eq!(many.len(), 30);
        assert_eq!(many.get("k29"), Some("29"));
        let body: Vec<String> = (0..30)
            .rev()
            .map(|i| format!(r#""k{i:02}":"{i}""#))
            .collect();
        let reversed: Labels = serde_json::from_str(&format!("{{{}}}", body.join(","))).unwrap();
        assert_eq!(many, reversed);
        let same: Labels = [
            ("job".to_string(), "web".to_string()),
            ("alertname".into(), "Up".into()),
        ]
        .into();
        assert_eq!(l, same);
        // Large sets take the binary-search path.
        let mut big = Labels::new();
        for i in (0..40).rev() {
            big.insert(format!("k{i:02}"), i.to_string());
        }
        assert_eq!(big.len(), 40);
        assert!((0..40).all(|i| big.get(&format!("k{i:02}")) == Some(&i.to_string())));
        assert_eq!(big.keys().next(), Some("k00"));
        assert_eq!(big.get("k99"), None);
    }

    #[test]
    fn packed_layout_keeps_every_string_exactly() {
        let big = "é".repeat(40_000); // 80 KB: offsets past 64 KiB
        let l: Labels = [
            ("zone".to_string(), String::new()),
            (String::new(), "empty name".to_string()),
            ("désc".to_string(), big.clone()),
            ("a".to_string(), "1".to_string()),
        ]
        .into();
        assert_eq!(l.keys().collect::<Vec<_>>(), ["", "a", "désc", "zone"]);
        assert_eq!(l.get(""), Some("empty name"));
        assert_eq!(l.get("zone"), Some(""));
        assert_eq!(l.get("désc"), Some(big.as_str()));
        let back: Labels = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        // Order and equality as a sorted map of strings: pair by pair.
        let ab: Labels = [("a".to_string(), "b".to_string())].into();
        let a_bc: Labels = [("a".to_string(), "bc".to_string())].into();
        let ab_c: Labels = [
            ("a".to_string(), "b".to_string()),
            ("c".to_string(), String::new()),
        ]
        .into();
        assert!(ab < a_bc && ab < ab_c && a_bc > ab_c);
        assert_ne!(ab, Labels::from([("ab".to_string(), String::new())]));
        let mut m = ab_c.clone();
        assert_eq!(m.remove("c"), Some(String::new()));
        assert_eq!(m, ab);
        m.retain(|k, _| k != "a");
        assert!(m.is_empty() && m == Labels::new());
    }
}
