//! The CMDB as sift sees it: configuration items (CIs), the relations between them, the
//! file format operators load them from, and the in-memory topology that alerts are mapped
//! onto and correlated over.
//!
//! This module validates and indexes; it does no I/O of its own (the store persists CIs,
//! the CLI reads files) and it never recurses over the graph (CMDBs have cycles and CIs
//! with 100k dependents; every walk is iterative and bounded).

pub mod change;
pub mod topology;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub use change::{Change, ChangeError};
pub use topology::{CiMapper, Topology};

/// How much a CI matters to the business; the root CI's criticality drives ITIL impact.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

/// One configuration item, as in the CMDB file and `PUT /api/v1/cmdb/cis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ci {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub ci_type: Option<String>,
    #[serde(default)]
    pub criticality: Criticality,
    #[serde(default)]
    pub owner_group: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl Ci {
    /// The display name: `name`, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
    pub fn is_business_service(&self) -> bool {
        self.ci_type.as_deref() == Some("business_service")
    }
}

/// `source` depends on `target`: a fault on `target` can cause alerts on `source`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub source: String,
    pub target: String,
    #[serde(rename = "type", default = "default_relation_type")]
    pub rel_type: String,
}

fn default_relation_type() -> String {
    "depends_on".to_string()
}

/// The CMDB file: `cis` and `relations`, YAML or JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdbFile {
    #[serde(default)]
    pub cis: Vec<Ci>,
    #[serde(default)]
    pub relations: Vec<Relation>,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdbError {
    #[error("cannot parse CMDB document: {0}")]
    Parse(String),
    #[error("CI #{index} has an empty id")]
    EmptyId { index: usize },
    #[error("CI id {0:?} appears more than once")]
    DuplicateId(String),
    #[error("relation #{index} ({source_ci} -> {target}) names unknown CI {unknown:?}")]
    UnknownCi {
        index: usize,
        source_ci: String,
        target: String,
        unknown: String,
    },
    #[error("relation #{index} relates CI {0:?} to itself", .ci)]
    SelfRelation { index: usize, ci: String },
}

impl CmdbFile {
    /// Parses YAML or JSON (JSON is tried first when the text starts with `{`, for its
    /// clearer error positions).
    pub fn parse(text: &str) -> Result<Self, CmdbError> {
        if text.trim_start().starts_with('{') {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| CmdbError::Parse(format!("{}: {}", e.path(), e.inner())))
        } else {
            serde_yaml::from_str(text).map_err(|e| CmdbError::Parse(e.to_string()))
        }
    }

    /// Checks the document on its own and against the CIs already known (`known` answers
    /// whether an id exists outside this document). Cycles are allowed: real estates have
    /// them, and every graph walk in sift is cycle-safe.
    pub fn validate(&self, known: impl Fn(&str) -> bool) -> Result<(), CmdbError> {
        validate_cis(&self.cis)?;
        let ids: HashSet<&str> = self.cis.iter().map(|c| c.id.as_str()).collect();
        validate_relations(&self.relations, |id| ids.contains(id) || known(id))
    }
}

pub fn validate_cis(cis: &[Ci]) -> Result<(), CmdbError> {
    let mut seen = HashSet::with_capacity(cis.len());
    for (index, ci) in cis.iter().enumerate() {
        if ci.id.trim().is_empty() {
            return Err(CmdbError::EmptyId { index });
        }
        if !seen.insert(ci.id.as_str()) {
            return Err(CmdbError::DuplicateId(ci.id.clone()));
        }
    }
    Ok(())
}

pub fn validate_relations(
    rels: &[Relation],
    known: impl Fn(&str) -> bool,
) -> Result<(), CmdbError> {
    for (index, r) in rels.iter().enumerate() {
        if r.source == r.target {
            return Err(CmdbError::SelfRelation {
                index,
                ci: r.source.clone(),
            });
        }
        for end in [&r.source, &r.target] {
            if !known(end) {
                return Err(CmdbError::UnknownCi {
                    index,
                    source_ci: r.source.clone(),
                    target: r.target.clone(),
                    unknown: end.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_json_alike() {
        let y = "cis:\n  - id: db-01\n    type: database\n    criticality: high\nrelations: []\n";
        let j = r#"{"cis":[{"id":"db-01","type":"database","criticality":"high"}]}"#;
        let a = CmdbFile::parse(y).unwrap();
        let b = CmdbFile::parse(j).unwrap();
        assert_eq!(a.cis, b.cis);
        assert_eq!(a.cis[0].criticality, Criticality::High);
    }

    #[test]
    fn rejects_bad_documents_with_a_reason() {
        let dup = CmdbFile::parse(r#"{"cis":[{"id":"a"},{"id":"a"}]}"#).unwrap();
        assert!(matches!(dup.validate(|_| false), Err(CmdbError::DuplicateId(id)) if id == "a"));
        let unknown =
            CmdbFile::parse(r#"{"cis":[{"id":"a"}],"relations":[{"source":"a","target":"zz"}]}"#)
                .unwrap();
        let err = unknown.validate(|_| false).unwrap_err().to_string();
        assert!(err.contains("zz"), "{err}");
        let selfrel =
            CmdbFile::parse(r#"{"cis":[{"id":"a"}],"relations":[{"source":"a","target":"a"}]}"#)
                .unwrap();
        assert!(matches!(
            selfrel.validate(|_| false),
            Err(CmdbError::SelfRelation { .. })
        ));
        let bad = CmdbFile::parse(r#"{"cis":[{"id":"a","criticality":"huge"}]}"#).unwrap_err();
        assert!(bad.to_string().contains("cis[0].criticality"), "{bad}");
    }
}
