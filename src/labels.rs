//! `Labels`: a label or annotation set, sorted by name, names unique. The API is the slice
//! of `BTreeMap<String, String>` sift uses; the layout is one vector of pairs, because an
//! alert holds two of these for as long as it is active: a B-tree node is ~560 bytes
//! however few labels it holds, the vector is 48 bytes per label. With 200k active alerts
//! that is the difference between ~1.4 and ~0.4 KB of memory per alert for its labels.

use std::fmt;

use compact_str::CompactString;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(CompactString, CompactString)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// `Ok(index)` of `name`, or `Err(index)` where it would go. Label sets are small:
    /// a forward scan (what a B-tree does inside a node) beats a binary search there.
    fn find(&self, name: &str) -> Result<usize, usize> {
        if self.0.len() > 16 {
            return self.0.binary_search_by(|(k, _)| k.as_str().cmp(name));
        }
        for (i, (k, _)) in self.0.iter().enumerate() {
            match k.as_str().cmp(name) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(i),
                std::cmp::Ordering::Greater => return Err(i),
            }
        }
        Err(self.0.len())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.0[i].1.as_str())
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name`; returns the value it replaced.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        let value = CompactString::from(value);
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value).into_string()),
            Err(i) => {
                self.0.insert(i, (CompactString::from(name), value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.find(name)
            .ok()
            .map(|i| self.0.remove(i).1.into_string())
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v.as_str())
    }

    /// Drops spare capacity (sets built by pushing keep none once stored).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    /// Sorts and dedups pairs gathered in any order (the last value of a name wins, as
    /// with repeated `insert`s).
    fn from_pairs<S: Into<CompactString> + Ord>(mut pairs: Vec<(S, S)>) -> Self {
        // Stable: equal names keep their arrival order, so the last one can win.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(CompactString, CompactString)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        out.shrink_to_fit();
        Labels(out)
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
        let mut pairs = std::mem::take(&mut self.0);
        pairs.extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
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
    type IntoIter = std::iter::Map<
        std::vec::IntoIter<(CompactString, CompactString)>,
        fn((CompactString, CompactString)) -> (String, String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_iter()
            .map(|(k, v)| (k.into_string(), v.into_string()))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, CompactString)>,
        fn(&'a (CompactString, CompactString)) -> (&'a str, &'a str),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::ops::Index<&str> for Labels {
    type Output = str;
    fn index(&self, name: &str) -> &str {
        self.get(name).expect("no such label")
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
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
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(4).min(64));
                while let Some((k, v)) = map.next_entry::<CompactString, CompactString>()? {
                    pairs.push((k, v));
                }
                Ok(Labels::from_pairs(pairs))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
