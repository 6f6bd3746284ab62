//! The in-memory topology: CIs indexed by id, name and alias, and the dependency graph in
//! both directions, compact enough for a million CIs and five million relations.
//!
//! Updates are incremental (one CI or relation at a time, no rebuild). Walks are breadth
//! first with a visited set and a hop limit: cycles and huge fan-outs cannot hang or
//! overflow the stack.

use std::collections::VecDeque;

/// Looked up per alert (CI mapping): foldhash, not the default SipHash.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::alert::Labels;

use super::{Ci, CmdbFile, Relation};

/// Index of a CI in the topology. Stable for the life of the process.
pub type Node = u32;

static VERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_version() -> u64 {
    VERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[derive(Debug, Default, Clone)]
pub struct Topology {
    cis: Vec<Ci>,
    by_id: HashMap<String, Node>,
    /// Names and aliases → node. Ids are looked up first, so a CI's id always wins over
    /// another CI's alias of the same text.
    by_name: HashMap<String, Node>,
    /// node → nodes it depends on (where its faults may come from).
    depends_on: Vec<Vec<Node>>,
    /// node → nodes that depend on it (where its faults spread to).
    dependents: Vec<Vec<Node>>,
    /// (source, target) → index into `rel_types`.
    edges: HashMap<u64, u16>,
    rel_types: Vec<String>,
    /// Changes whenever the graph's edges change, unique across instances, so caches of
    /// walks know they are stale.
    version: u64,
}

fn edge_key(source: Node, target: Node) -> u64 {
    (u64::from(source) << 32) | u64::from(target)
}

impl Topology {
    pub fn new() -> Self {
        Self {
            version: next_version(),
            ..Self::default()
        }
    }

    /// Builds from a validated CMDB document. Relations naming unknown CIs are skipped
    /// (validation rejects them before this in every caller).
    pub fn from_file(doc: &CmdbFile) -> Self {
        let mut t = Topology::new();
        t.cis.reserve(doc.cis.len());
        t.by_id.reserve(doc.cis.len());
        t.by_name.reserve(doc.cis.len());
        t.depends_on.reserve(doc.cis.len());
        t.dependents.reserve(doc.cis.len());
        t.edges.reserve(doc.relations.len());
        for ci in &doc.cis {
            t.upsert_ci(ci.clone());
        }
        for r in &doc.relations {
            t.upsert_relation(r);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.cis.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cis.is_empty()
    }
    pub fn relation_count(&self) -> usize {
        self.edges.len()
    }

    pub fn upsert_ci(&mut self, ci: Ci) -> Node {
        if let Some(&node) = self.by_id.get(&ci.id) {
            let old = std::mem::replace(&mut self.cis[node as usize], ci);
            for n in old.name.iter().chain(old.aliases.iter()) {
                if self.by_name.get(n) == Some(&node) {
                    self.by_name.remove(n);
                }
            }
            self.index_names(node);
            node
        } else {
            let node = Node::try_from(self.cis.len()).unwrap_or(Node::MAX);
            self.by_id.insert(ci.id.clone(), node);
            self.cis.push(ci);
            self.depends_on.push(Vec::new());
            self.dependents.push(Vec::new());
            self.index_names(node);
            node
        }
    }

    fn index_names(&mut self, node: Node) {
        let ci = &self.cis[node as usize];
        for n in ci.name.iter().chain(ci.aliases.iter()) {
            self.by_name.entry(n.clone()).or_insert(node);
        }
    }

    /// Adds a relation; returns false when one of its CIs is unknown.
    pub fn upsert_relation(&mut self, r: &Relation) -> bool {
        let (Some(s), Some(t)) = (self.node(&r.source), self.node(&r.target)) else {
            return false;
        };
        if s == t {
            return false;
        }
        let ty = match self.rel_types.iter().position(|x| *x == r.rel_type) {
            Some(i) => i as u16,
            None => {
                self.rel_types.push(r.rel_type.clone());
                (self.rel_types.len() - 1) as u16
            }
        };
        if self.edges.insert(edge_key(s, t), ty).is_none() {
            self.depends_on[s as usize].push(t);
            self.dependents[t as usize].push(s);
            self.version = next_version();
        }
        true
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn node(&self, id: &str) -> Option<Node> {
        self.by_id.get(id).copied()
    }

    /// A CI by id, name or alias (id first).
    pub fn resolve(&self, text: &str) -> Option<Node> {
        self.by_id
            .get(text)
            .or_else(|| self.by_name.get(text))
            .copied()
    }

    pub fn ci(&self, node: Node) -> &Ci {
        &self.cis[node as usize]
    }

    pub fn get(&self, id: &str) -> Option<&Ci> {
        self.node(id).map(|n| self.ci(n))
    }

    pub fn depends_on(&self, node: Node) -> &[Node] {
        &self.depends_on[node as usize]
    }

    pub fn dependents(&self, node: Node) -> &[Node] {
        &self.dependents[node as usize]
    }

    pub fn relation_type(&self, source: Node, target: Node) -> Option<&str> {
        self.edges
            .get(&edge_key(source, target))
            .map(|&i| self.rel_types[i as usize].as_str())
    }

    /// Everything that depends on `node`, transitively, nearest first, with the hop count
    /// and the node it was reached from; at most `limit` nodes and `max_hops` hops.
    pub fn impact(&self, node: Node, max_hops: u32, limit: usize) -> Vec<Reached> {
        self.walk(node, max_hops, limit, |n| self.dependents(n))
    }

    /// Everything `node` depends on, transitively, nearest first.
    pub fn upstream(&self, node: Node, max_hops: u32, limit: usize) -> Vec<Reached> {
        self.walk(node, max_hops, limit, |n| self.depends_on(n))
    }

    fn walk<'a>(
        &'a self,
        start: Node,
        max_hops: u32,
        limit: usize,
        next: impl Fn(Node) -> &'a [Node],
    ) -> Vec<Reached> {
        let mut seen: HashMap<Node, ()> = HashMap::default();
        seen.insert(start, ());
        let mut queue = VecDeque::from([(start, 0u32)]);
        let mut out = Vec::new();
        while let Some((n, hops)) = queue.pop_front() {
            if hops >= max_hops {
                continue;
            }
            for &m in next(n) {
                if out.len() >= limit {
                    return out;
                }
                if seen.insert(m, ()).is_none() {
                    out.push(Reached {
                        node: m,
                        hops: hops + 1,
                        via: n,
                    });
                    queue.push_back((m, hops + 1));
                }
            }
        }
        out
    }

    pub fn all_cis(&self) -> impl Iterator<Item = &Ci> {
        self.cis.iter()
    }
}

/// A node reached by a walk: how far, and from which neighbour (to rebuild the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub node: Node,
    pub hops: u32,
    pub via: Node,
}

/// Maps an alert's labels to a CI: the first label of `order` whose value names a CI.
#[derive(Debug, Clone)]
pub struct CiMapper {
    order: Vec<String>,
}

impl Default for CiMapper {
    fn default() -> Self {
        Self::new(
            [
                "ci", "ci_id", "service", "instance", "host", "hostname", "node", "pod", "job",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
    }
}

impl CiMapper {
    pub fn new(order: Vec<String>) -> Self {
        Self { order }
    }

    pub fn labels(&self) -> &[String] {
        &self.order
    }

    pub fn map(&self, topo: &Topology, labels: &Labels) -> Option<Node> {
        for key in &self.order {
            let Some(value) = labels.get(key) else {
                continue;
            };
            if let Some(n) = topo.resolve(value) {
                return Some(n);
            }
            if key == "instance"
                && let Some(host) = strip_port(value)
                && let Some(n) = topo.resolve(host)
            {
                return Some(n);
            }
        }
        None
    }
}

/// The host an alert names (`instance` without its port, else `host`, `hostname` or
/// `node`): what ties together alerts on a machine the CMDB does not know.
pub fn host_of(labels: &Labels) -> Option<&str> {
    if let Some(i) = labels.get("instance") {
        return Some(strip_port(i).unwrap_or(i));
    }
    ["host", "hostname", "node"]
        .iter()
        .find_map(|k| labels.get(k))
}

/// Where an alert that maps to no CI is grouped: its host (`host:<h>`, see `host_of`);
/// `None` when it names no host (then its alertname decides). Correlation files such an
/// alert's incident under this key and the Kafka forwarder partitions by it, so alerts on
/// one unknown host always meet on one daemon.
pub fn unmapped_key(labels: &Labels) -> Option<compact_str::CompactString> {
    host_of(labels).map(|h| compact_str::format_compact!("host:{h}"))
}

/// `host:9100` → `host`, `[::1]:9100` → `::1`; `None` when there is no port to strip.
fn strip_port(v: &str) -> Option<&str> {
    if let Some(rest) = v.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        return tail
            .strip_prefix(':')
            .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
            .map(|_| host);
    }
    let (host, port) = v.rsplit_once(':')?;
    let digits = !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit());
    (digits && !host.as_bytes().contains(&b':')).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(id: &str, aliases: &[&str]) -> Ci {
        Ci {
            id: id.into(),
            name: None,
            ci_type: None,
            criticality: Default::default(),
            owner_group: None,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn maps_by_alias_and_instance_port() {
        let mut t = Topology::new();
        t.upsert_ci(ci("db-01", &["10.0.4.12", "db-01.prod"]));
        let m = CiMapper::default();
        let mut l = Labels::new();
        l.insert("instance".into(), "10.0.4.12:9187".into());
        assert_eq!(m.map(&t, &l).map(|n| t.ci(n).id.as_str()), Some("db-01"));
        l.insert("ci".into(), "db-01.prod".into());
        assert_eq!(m.map(&t, &l).map(|n| t.ci(n).id.as_str()), Some("db-01"));
        let mut other = Labels::new();
        other.insert("instance".into(), "10.9.9.9:80".into());
        assert_eq!(m.map(&t, &other), None);
        assert_eq!(strip_port("[::1]:9100"), Some("::1"));
        assert_eq!(strip_port("::1"), None);
    }

    #[test]
    fn walks_survive_cycles_and_limits() {
        let mut t = Topology::new();
        for id in ["a", "b", "c"] {
            t.upsert_ci(ci(id, &[]));
        }
        for (s, d) in [("a", "b"), ("b", "c"), ("c", "a")] {
            assert!(t.upsert_relation(&Relation {
                source: s.into(),
                target: d.into(),
                rel_type: "depends_on".into()
            }));
        }
        let a = t.node("a").unwrap();
        assert_eq!(t.impact(a, 10, 100).len(), 2);
        assert_eq!(t.impact(a, 1, 100).len(), 1);
        // renaming drops the old alias
        t.upsert_ci(ci("a", &["alias-1"]));
        t.upsert_ci(ci("a", &["alias-2"]));
        assert_eq!(t.resolve("alias-1"), None);
        assert_eq!(t.resolve("alias-2"), Some(a));
    }
}
