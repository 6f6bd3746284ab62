//! Operator overrides of the learned graph, and the effective graph they make with it.
//!
//! What it is for: an operator who knows better than the history can *pin* an edge (it is
//! in the graph whatever the learner finds, and relearning never takes it out) or *veto*
//! one (a learned `cause → effect` is left out, now and after every relearn). The
//! effective graph, the one correlation reads, is
//! `learned edges − vetoed + pinned`, made by `compose`. What it must not do: I/O or read
//! the wall clock (when an override was made is given by the caller); storing overrides is
//! the store's, serving them the API's.
//!
//! Overrides are directional, as edges are: vetoing `A → B` leaves a learned `B → A` alone.
//! A pin also fixes the direction: a learned edge in the reverse direction of a pinned one
//! is left out of the effective graph (the operator said which way it goes).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Edge, Lag, Learned, Scope};

/// Longest alert type an override may name (a type is label values joined with `/`).
pub const MAX_TYPE_LEN: usize = 1024;
/// Longest note an override may carry.
pub const MAX_NOTE_LEN: usize = 2048;
/// Most overrides one request may name (pins, vetoes and removals together).
pub const MAX_CHANGES: usize = 10_000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    Pin,
    Veto,
}

impl OverrideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Pin => "pin",
            OverrideKind::Veto => "veto",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pin" => Some(OverrideKind::Pin),
            "veto" => Some(OverrideKind::Veto),
            _ => None,
        }
    }
}

/// One operator override of the pair `cause → effect` (at most one per pair).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Override {
    pub cause: String,
    pub effect: String,
    pub kind: OverrideKind,
    /// Pins: where the edge holds (default `same_ci`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Pins: the lag the operator states (default: the learned lag when the learner found
    /// the edge too, else median half the window and p90 the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<Lag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who made it (the token's name, or its role).
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Why an edge is in the effective graph.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Learned,
    Pinned,
}

/// An edge of the effective graph, with where it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EffectiveEdge {
    #[serde(flatten)]
    pub edge: Edge,
    pub origin: Origin,
    /// Whether the learner found it (a pinned edge may also be learned).
    pub learned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A veto, and whether it is holding a learned edge out right now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VetoView {
    pub cause: String,
    pub effect: String,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub suppresses_learned: bool,
}

/// The last learning run as stored: what it learned, when, and from how many stored
/// occurrences (read from the store, before the learner dropped any).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LearnedGraph {
    pub learned: Learned,
    pub learned_at: DateTime<Utc>,
    pub occurrences_read: usize,
    /// Occurrences within the lookback left out by `max_occurrences` (the oldest).
    #[serde(default)]
    pub occurrences_left_out: u64,
}

/// The effective graph with the provenance of each edge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Composed {
    pub edges: Vec<EffectiveEdge>,
    pub vetoes: Vec<VetoView>,
}

impl Composed {
    /// The effective graph as a `Learned` (what correlation reads): its edges, with the
    /// summary and rule holds of the learning run `run` (none when nothing was learned
    /// yet).
    pub fn to_learned(&self, run: Option<&Learned>) -> Learned {
        Learned {
            edges: self.edges.iter().map(|e| e.edge.clone()).collect(),
            summary: run.map(|l| l.summary.clone()).unwrap_or_default(),
            holds: run.map(|l| l.holds.clone()).unwrap_or_default(),
            windows: run.map(|l| l.windows.clone()).unwrap_or_default(),
        }
    }
}

/// `learned − vetoed + pinned` (see the module doc). A pinned edge the learner also found
/// keeps the learned figures (support, lift, lag), with the scope and lag the pin states
/// when it states them; one it did not find has support 0, expected 0, score 0 and
/// q-value 1 (nothing measured) and the pin's lag, or half the window / the window.
/// `window_s` is `[causality] window`. Edges come out highest score first, pins the
/// learner did not find last, each group ordered by (cause, effect).
pub fn compose(learned: &[Edge], overrides: &[Override], window_s: i64) -> Composed {
    let key = |c: &str, e: &str| (c.to_string(), e.to_string());
    let by_pair: HashMap<(String, String), &Override> = overrides
        .iter()
        .map(|o| (key(&o.cause, &o.effect), o))
        .collect();
    let pinned: HashSet<(String, String)> = overrides
        .iter()
        .filter(|o| o.kind == OverrideKind::Pin)
        .map(|o| key(&o.cause, &o.effect))
        .collect();
    let learned_pairs: HashSet<(String, String)> =
        learned.iter().map(|e| key(&e.cause, &e.effect)).collect();

    let mut out = Composed::default();
    let mut used_pins: HashSet<(String, String)> = HashSet::new();
    for e in learned {
        let k = key(&e.cause, &e.effect);
        match by_pair.get(&k) {
            Some(o) if o.kind == OverrideKind::Veto => continue,
            Some(o) => {
                used_pins.insert(k);
                let mut edge = e.clone();
                if let Some(s) = o.scope {
                    edge.scope = s;
                }
                if let Some(l) = o.lag_seconds {
                    edge.lag_seconds = l;
                }
                out.edges.push(pinned_edge(edge, o, true));
            }
            None => {
                if pinned.contains(&(e.effect.clone(), e.cause.clone())) {
                    continue;
                }
                out.edges.push(EffectiveEdge {
                    edge: e.clone(),
                    origin: Origin::Learned,
                    learned: true,
                    pinned_by: None,
                    pinned_at: None,
                    note: None,
                });
            }
        }
    }
    let mut extra: Vec<&Override> = overrides
        .iter()
        .filter(|o| o.kind == OverrideKind::Pin && !used_pins.contains(&key(&o.cause, &o.effect)))
        .collect();
    extra.sort_by(|a, b| (&a.cause, &a.effect).cmp(&(&b.cause, &b.effect)));
    for o in extra {
        let w = window_s.max(1) as f64;
        let edge = Edge {
            cause: o.cause.clone(),
            effect: o.effect.clone(),
            score: 0.0,
            support: 0,
            expected: 0.0,
            q_value: 1.0,
            lag_seconds: o.lag_seconds.unwrap_or(Lag {
                median: (w / 2.0).round(),
                p90: w,
            }),
            scope: o.scope.unwrap_or(Scope::SameCi),
        };
        out.edges.push(pinned_edge(edge, o, false));
    }
    let mut vetoes: Vec<&Override> = overrides
        .iter()
        .filter(|o| o.kind == OverrideKind::Veto)
        .collect();
    vetoes.sort_by(|a, b| (&a.cause, &a.effect).cmp(&(&b.cause, &b.effect)));
    out.vetoes = vetoes
        .into_iter()
        .map(|o| VetoView {
            cause: o.cause.clone(),
            effect: o.effect.clone(),
            by: o.by.clone(),
            at: o.at,
            note: o.note.clone(),
            suppresses_learned: learned_pairs.contains(&key(&o.cause, &o.effect)),
        })
        .collect();
    out
}

fn pinned_edge(edge: Edge, o: &Override, learned: bool) -> EffectiveEdge {
    EffectiveEdge {
        edge,
        origin: Origin::Pinned,
        learned,
        pinned_by: Some(o.by.clone()),
        pinned_at: Some(o.at),
        note: o.note.clone(),
    }
}

/// `PUT /api/v1/causality/edges`: pins, vetoes and removals of overrides, applied together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeChanges {
    #[serde(default)]
    pub pin: Vec<PinRequest>,
    #[serde(default)]
    pub veto: Vec<PairRequest>,
    /// Overrides to take away (the pair goes back to whatever the learner says).
    #[serde(default)]
    pub remove: Vec<PairRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    pub cause: String,
    pub effect: String,
    #[serde(default)]
    pub scope: Option<Scope>,
    #[serde(default)]
    pub lag_seconds: Option<Lag>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairRequest {
    pub cause: String,
    pub effect: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// A pair of alert types: (cause, effect).
pub type Pair = (String, String);

/// A bad field of an `EdgeChanges`: its JSON path (`pin[0].cause`) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ChangeError {
    pub path: String,
    pub reason: String,
}

impl EdgeChanges {
    /// Checks every entry and turns pins and vetoes into overrides made by `by` at `at`;
    /// returns them with the pairs to remove. A pair named twice in one request is an
    /// error (which one should win is not for sift to guess).
    pub fn validate(
        self,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<(Vec<Override>, Vec<Pair>), ChangeError> {
        let err = |path: String, reason: &str| ChangeError {
            path,
            reason: reason.to_string(),
        };
        let total = self.pin.len() + self.veto.len() + self.remove.len();
        if total == 0 {
            return Err(err(
                "body".into(),
                "nothing to change: give pin, veto or remove (each a list of {cause, effect})",
            ));
        }
        if total > MAX_CHANGES {
            return Err(err(
                "body".into(),
                &format!("at most {MAX_CHANGES} changes per request, got {total}"),
            ));
        }
        let mut seen: HashMap<(String, String), String> = HashMap::new();
        let mut check_pair =
            |list: &str, i: usize, cause: &str, effect: &str, note: Option<&str>| {
                for (field, v) in [("cause", cause), ("effect", effect)] {
                    let path = format!("{list}[{i}].{field}");
                    if v.trim().is_empty() {
                        return Err(err(path, "must not be empty"));
                    }
                    if v.len() > MAX_TYPE_LEN {
                        return Err(err(path, &format!("longer than {MAX_TYPE_LEN} bytes")));
                    }
                    if v.trim() != v {
                        return Err(err(path, "has leading or trailing blanks"));
                    }
                }
                if cause == effect {
                    return Err(err(
                        format!("{list}[{i}].effect"),
                        "is the cause itself: an alert type cannot cause itself",
                    ));
                }
                if note.is_some_and(|n| n.len() > MAX_NOTE_LEN) {
                    return Err(err(
                        format!("{list}[{i}].note"),
                        &format!("longer than {MAX_NOTE_LEN} bytes"),
                    ));
                }
                let here = format!("{list}[{i}]");
                if let Some(first) = seen.insert((cause.into(), effect.into()), here.clone()) {
                    return Err(err(
                        here,
                        &format!("names the same pair as {first}: say each pair once"),
                    ));
                }
                Ok(())
            };
        let mut put = Vec::new();
        for (i, p) in self.pin.into_iter().enumerate() {
            check_pair("pin", i, &p.cause, &p.effect, p.note.as_deref())?;
            if let Some(l) = p.lag_seconds {
                for (field, v) in [("median", l.median), ("p90", l.p90)] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(err(
                            format!("pin[{i}].lag_seconds.{field}"),
                            &format!("must be a number of seconds, at least 0, not {v}"),
                        ));
                    }
                }
                if l.p90 < l.median {
                    return Err(err(
                        format!("pin[{i}].lag_seconds.p90"),
                        &format!("must be at least the median ({})", l.median),
                    ));
                }
            }
            put.push(Override {
                cause: p.cause,
                effect: p.effect,
                kind: OverrideKind::Pin,
                scope: p.scope,
                lag_seconds: p.lag_seconds,
                note: p.note,
                by: by.to_string(),
                at,
            });
        }
        for (i, v) in self.veto.into_iter().enumerate() {
            check_pair("veto", i, &v.cause, &v.effect, v.note.as_deref())?;
            put.push(Override {
                cause: v.cause,
                effect: v.effect,
                kind: OverrideKind::Veto,
                scope: None,
                lag_seconds: None,
                note: v.note,
                by: by.to_string(),
                at,
            });
        }
        let mut remove = Vec::new();
        for (i, r) in self.remove.into_iter().enumerate() {
            check_pair("remove", i, &r.cause, &r.effect, r.note.as_deref())?;
            remove.push((r.cause, r.effect));
        }
        Ok((put, remove))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(c: &str, e: &str, score: f64) -> Edge {
        Edge {
            cause: c.into(),
            effect: e.into(),
            score,
            support: 40,
            expected: 2.0,
            q_value: 1e-9,
            lag_seconds: Lag {
                median: 30.0,
                p90: 60.0,
            },
            scope: Scope::Neighbour,
        }
    }

    fn ovr(c: &str, e: &str, kind: OverrideKind) -> Override {
        Override {
            cause: c.into(),
            effect: e.into(),
            kind,
            scope: None,
            lag_seconds: None,
            note: None,
            by: "ops".into(),
            at: "2026-12-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn pairs(c: &Composed) -> Vec<(String, String, Origin)> {
        c.edges
            .iter()
            .map(|e| (e.edge.cause.clone(), e.edge.effect.clone(), e.origin))
            .collect()
    }

    #[test]
    fn effective_graph_is_learned_minus_vetoed_plus_pinned() {
        let learned = vec![edge("A", "B", 9.0), edge("C", "D", 5.0)];
        let o = vec![
            ovr("C", "D", OverrideKind::Veto),
            ovr("X", "Y", OverrideKind::Pin),
            ovr("Q", "R", OverrideKind::Veto),
        ];
        let c = compose(&learned, &o, 600);
        assert_eq!(
            pairs(&c),
            vec![
                ("A".into(), "B".into(), Origin::Learned),
                ("X".into(), "Y".into(), Origin::Pinned),
            ]
        );
        // A pin nothing supports says so: nothing measured, the window's lag.
        let pin = &c.edges[1];
        assert!(!pin.learned);
        assert_eq!((pin.edge.support, pin.edge.score), (0, 0.0));
        assert_eq!(pin.edge.lag_seconds.p90, 600.0);
        assert_eq!(pin.edge.scope, Scope::SameCi);
        // Both vetoes are listed; only one holds a learned edge out.
        let v: Vec<(&str, bool)> = c
            .vetoes
            .iter()
            .map(|v| (v.cause.as_str(), v.suppresses_learned))
            .collect();
        assert_eq!(v, vec![("C", true), ("Q", false)]);
        assert_eq!(c.to_learned(None).edges.len(), 2);
    }

    #[test]
    fn a_pinned_edge_the_learner_also_found_keeps_its_figures_and_the_pins_lag() {
        let mut p = ovr("A", "B", OverrideKind::Pin);
        p.lag_seconds = Some(Lag {
            median: 5.0,
            p90: 9.0,
        });
        let c = compose(&[edge("A", "B", 9.0)], &[p], 600);
        let e = &c.edges[0];
        assert_eq!((e.origin, e.learned), (Origin::Pinned, true));
        assert_eq!(e.edge.support, 40);
        assert_eq!(e.edge.lag_seconds.p90, 9.0);
        assert_eq!(e.edge.scope, Scope::Neighbour);
    }

    #[test]
    fn a_pin_fixes_the_direction_and_a_veto_is_directional() {
        let learned = vec![edge("B", "A", 3.0), edge("C", "D", 2.0)];
        let o = vec![
            ovr("A", "B", OverrideKind::Pin),
            ovr("D", "C", OverrideKind::Veto),
        ];
        let c = compose(&learned, &o, 600);
        assert_eq!(
            pairs(&c),
            vec![
                ("C".into(), "D".into(), Origin::Learned),
                ("A".into(), "B".into(), Origin::Pinned),
            ]
        );
    }

    #[test]
    fn nothing_learned_and_no_overrides_is_an_empty_graph() {
        let c = compose(&[], &[], 600);
        assert!(c.edges.is_empty() && c.vetoes.is_empty());
    }

    fn changes(v: serde_json::Value) -> Result<(Vec<Override>, Vec<Pair>), String> {
        let c: EdgeChanges = serde_json::from_value(v).map_err(|e| e.to_string())?;
        c.validate("ops", Utc::now()).map_err(|e| e.path)
    }

    #[test]
    fn bad_changes_name_the_field() {
        use serde_json::json;
        for (body, path) in [
            (json!({}), "body"),
            (
                json!({"pin": [{"cause": " A", "effect": "B"}]}),
                "pin[0].cause",
            ),
            (
                json!({"veto": [{"cause": "A", "effect": "B"}, {"cause": "A", "effect": "A"}]}),
                "veto[1].effect",
            ),
            (
                json!({"pin": [{"cause": "A", "effect": "B", "lag_seconds": {"median": 1, "p90": -1}}]}),
                "pin[0].lag_seconds.p90",
            ),
            (
                json!({"veto": [{"cause": "A", "effect": "B"}], "remove": [{"cause": "A", "effect": "B"}]}),
                "remove[0]",
            ),
            (
                json!({"pin": [{"cause": "x".repeat(MAX_TYPE_LEN + 1), "effect": "B"}]}),
                "pin[0].cause",
            ),
        ] {
            assert_eq!(changes(body.clone()), Err(path.to_string()), "{body}");
        }
        let (put, remove) = changes(json!({
            "pin": [{"cause": "A", "effect": "B", "scope": "neighbour"}],
            "veto": [{"cause": "B", "effect": "A"}],
            "remove": [{"cause": "C", "effect": "D"}],
        }))
        .unwrap();
        assert_eq!(put.len(), 2);
        assert_eq!(put[0].scope, Some(Scope::Neighbour));
        assert_eq!(put[1].kind, OverrideKind::Veto);
        assert_eq!(remove, vec![("C".to_string(), "D".to_string())]);
    }
}
