//! What sift shows outside: the JSON of an incident and of an alert in API responses, in
//! the webhooks' generic body and in the live event stream (`IncidentView`, `AlertView`).
//!
//! The core's records (`Incident`, `AlertRecord`) are its working state and do not
//! serialize themselves; the store writes documents of its own (`store::incidents`,
//! `store::alerts`). A view borrows a record and is built by destructuring it, so a field
//! added to the core does not compile here until someone decides whether users see it,
//! and a field of the core's bookkeeping never leaks into the contract by accident.
//! Nothing here decides anything or does I/O.

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::alert::{AlertStatus, Fingerprint, Labels, Source};
use crate::correlate::AlertRecord;
use crate::incident::{CorrelationKey, Incident, IncidentStatus, Members, RootCause, Sla};

/// One incident, in the JSON shape of the contract (`docs/api.md`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Incident)]
pub struct IncidentView<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub status: IncidentStatus,
    pub priority: u8,
    pub impact: u8,
    pub urgency: u8,
    pub root_cause_ci: Option<&'a str>,
    /// The root cause in full: `root_cause_ci`, whether that CI is alerting (false: a
    /// suspected root), confidence and reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<&'a RootCause>,
    /// CIs its alerts are on, in the order they joined.
    #[schema(value_type = Vec<String>)]
    pub ci_ids: &'a Members<String>,
    #[schema(value_type = Vec<String>)]
    pub impacted_services: &'a [String],
    pub assignment_group: Option<&'a str>,
    pub assignee: Option<&'a str>,
    /// Member alerts in the order they joined.
    #[schema(value_type = Vec<Fingerprint>)]
    pub alert_fingerprints: &'a Members<Fingerprint>,
    pub alert_count: u64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The grouping key that brought these alerts together (`ci:<id>` or `group:<hash>`).
    #[schema(value_type = String)]
    pub correlation_key: &'a CorrelationKey,
    #[schema(value_type = Object)]
    pub enrichment: &'a serde_json::Map<String, serde_json::Value>,
    /// Response and resolution deadlines of its priority, and whether they were missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<&'a Sla>,
    /// How it was fixed, as the resolver wrote it (`PATCH … {"resolution_note": …}`);
    /// shown to whoever meets a similar incident later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_note: Option<&'a str>,
}

impl<'a> IncidentView<'a> {
    pub fn of(inc: &'a Incident) -> Self {
        let Incident {
            id,
            title,
            status,
            priority,
            impact,
            urgency,
            root_cause_ci,
            root_cause,
            ci_ids,
            impacted_services,
            assignment_group,
            assignee,
            alert_fingerprints,
            alert_count,
            opened_at,
            updated_at,
            acknowledged_at,
            resolved_at,
            closed_at,
            correlation_key,
            enrichment,
            sla,
            resolution_note,
        } = inc;
        IncidentView {
            id,
            title,
            status: *status,
            priority: *priority,
            impact: *impact,
            urgency: *urgency,
            root_cause_ci: root_cause_ci.as_deref(),
            root_cause: root_cause.as_ref(),
            ci_ids,
            impacted_services,
            assignment_group: assignment_group.as_deref(),
            assignee: assignee.as_deref(),
            alert_fingerprints,
            alert_count: *alert_count,
            opened_at: *opened_at,
            updated_at: *updated_at,
            acknowledged_at: *acknowledged_at,
            resolved_at: *resolved_at,
            closed_at: *closed_at,
            correlation_key,
            enrichment,
            sla: sla.as_ref(),
            resolution_note: resolution_note.as_deref(),
        }
    }

    pub fn all(incs: &'a [Incident]) -> Vec<Self> {
        incs.iter().map(Self::of).collect()
    }
}

/// One deduplicated alert as sift knows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AlertRecord)]
pub struct AlertView<'a> {
    #[schema(value_type = Fingerprint)]
    pub fingerprint: &'a Fingerprint,
    pub status: AlertStatus,
    #[schema(value_type = Labels)]
    pub labels: &'a Labels,
    #[schema(value_type = Labels)]
    pub annotations: &'a Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<&'a str>,
    pub source: Source,
    #[schema(value_type = Option<String>)]
    pub ci_id: Option<&'a CompactString>,
    #[schema(value_type = Option<String>)]
    pub incident_id: Option<&'a CompactString>,
    /// Events received for this alert (firing re-sends and resolves included).
    pub count: u64,
    pub flapping: bool,
    pub suppressed: bool,
    /// The maintenance change that suppresses this alert, while it does.
    pub suppressed_by: Option<&'a str>,
    /// When it last changed state (firing ↔ resolved), within the flap window.
    #[schema(value_type = Vec<DateTime<Utc>>)]
    pub flips: &'a [DateTime<Utc>],
    /// Event time of the last change to this alert.
    pub last_event_at: DateTime<Utc>,
}

impl<'a> AlertView<'a> {
    pub fn of(rec: &'a AlertRecord) -> Self {
        let AlertRecord {
            fingerprint,
            status,
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            source,
            ci_id,
            incident_id,
            count,
            flapping,
            suppressed,
            suppressed_by,
            flips,
            last_event_at,
            // The writer's bookkeeping of what the store holds: nobody's business outside.
            persisted: _,
        } = rec;
        AlertView {
            fingerprint,
            status: *status,
            labels,
            annotations,
            starts_at: *starts_at,
            ends_at: *ends_at,
            generator_url: generator_url.as_deref(),
            source: *source,
            ci_id: ci_id.as_ref(),
            incident_id: incident_id.as_ref(),
            count: *count,
            flapping: *flapping,
            suppressed: *suppressed,
            suppressed_by: suppressed_by.as_deref(),
            flips,
            last_event_at: *last_event_at,
        }
    }

    pub fn all(recs: &'a [AlertRecord]) -> Vec<Self> {
        recs.iter().map(Self::of).collect()
    }
}
