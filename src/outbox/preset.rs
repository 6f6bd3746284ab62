//! Request bodies per preset, and the HMAC signature over them.
//!
//! The outbox stores the generic body (`{event, event_id, occurred_at, incident}`); a
//! preset reshapes it at delivery into the field names of the receiving product: the
//! ServiceNow Table API `incident` record or a Jira Service Management request. Every
//! shape carries `event_id`, the idempotency key.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Preset;
use crate::incident::Incident;

/// The body to send for `generic` (the stored body, unchanged) or another preset. A stored
/// body whose incident cannot be read goes out generic rather than not at all.
pub fn shape(preset: Preset, generic: &Value) -> Value {
    let inc: Option<Incident> = generic
        .get("incident")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let (Some(inc), false) = (inc, preset == Preset::Generic) else {
        return generic.clone();
    };
    let event = generic.get("event").and_then(Value::as_str).unwrap_or("");
    let event_id = generic.get("event_id").cloned().unwrap_or(Value::Null);
    let merged_into = generic.get("merged_into").and_then(Value::as_str);
    match preset {
        Preset::Generic => generic.clone(),
        Preset::Servicenow => servicenow(&inc, event, event_id, merged_into),
        Preset::Jira => jira(&inc, event, event_id, merged_into),
    }
}

fn description(inc: &Incident) -> String {
    let mut d = format!("{}\n", inc.title);
    if let Some(ci) = &inc.root_cause_ci {
        d.push_str(&format!("Probable root cause CI: {ci}\n"));
    }
    if !inc.ci_ids.is_empty() {
        let cis: Vec<&str> = inc.ci_ids.iter().map(String::as_str).collect();
        d.push_str(&format!("Affected CIs: {}\n", cis.join(", ")));
    }
    if !inc.impacted_services.is_empty() {
        d.push_str(&format!(
            "Impacted services: {}\n",
            inc.impacted_services.join(", ")
        ));
    }
    d.push_str(&format!(
        "Alerts: {} (priority P{}, impact {}, urgency {})\nsift incident {}",
        inc.alert_count, inc.priority, inc.impact, inc.urgency, inc.id
    ));
    d
}

fn work_note(inc: &Incident, event: &str, merged_into: Option<&str>) -> String {
    match merged_into {
        Some(into) => format!("sift {event}: {} merged into {into}", inc.id),
        None => format!(
            "sift {event}: status {}, {} alerts, priority P{}",
            inc.status.as_str(),
            inc.alert_count,
            inc.priority
        ),
    }
}

/// ServiceNow incident `state`: 1 New, 2 In Progress, 6 Resolved, 7 Closed.
fn servicenow(inc: &Incident, event: &str, event_id: Value, merged_into: Option<&str>) -> Value {
    use crate::incident::IncidentStatus::*;
    let state = match inc.status {
        Open => 1,
        Acknowledged => 2,
        Resolved => 6,
        Closed => 7,
    };
    let mut rec = json!({
        "short_description": inc.title,
        "description": description(inc),
        "urgency": inc.urgency.to_string(),
        "impact": inc.impact.to_string(),
        "priority": inc.priority.to_string(),
        "assignment_group": inc.assignment_group.clone().unwrap_or_default(),
        "cmdb_ci": inc.root_cause_ci.clone().unwrap_or_default(),
        "state": state.to_string(),
        "correlation_id": inc.id,
        "correlation_display": "sift",
        "work_notes": work_note(inc, event, merged_into),
        "event": event,
        "event_id": event_id,
    });
    if matches!(inc.status, Resolved | Closed) {
        rec["close_code"] = json!("Solved (Permanently)");
        rec["close_notes"] = json!(work_note(inc, event, merged_into));
    }
    rec
}

/// Jira priority names for ITIL P1..P5.
fn jira_priority(p: u8) -> &'static str {
    match p {
        1 => "Highest",
        2 => "High",
        3 => "Medium",
        4 => "Low",
        _ => "Lowest",
    }
}

fn jira(inc: &Incident, event: &str, event_id: Value, merged_into: Option<&str>) -> Value {
    let mut labels = vec![
        "sift".to_string(),
        inc.id.clone(),
        format!("p{}", inc.priority),
    ];
    labels.extend(inc.impacted_services.iter().map(|s| format!("service-{s}")));
    json!({
        "fields": {
            "summary": inc.title,
            "description": description(inc),
            "priority": {"name": jira_priority(inc.priority)},
            "labels": labels,
            "components": inc.assignment_group.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
        },
        "update": {"comment": [{"add": {"body": work_note(inc, event, merged_into)}}]},
        "sift": {"event": event, "event_id": event_id, "incident_id": inc.id, "status": inc.status.as_str()},
        "event_id": event_id,
    })
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this branch is unreachable in practice.
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for b in bytes.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(status: &str, merged_into: Option<&str>) -> Value {
        let mut b = json!({
            "event": "incident.closed", "event_id": "INC0000007:9:incident.closed",
            "occurred_at": "2026-11-23T10:00:00Z",
            "incident": {
                "id": "INC0000007", "title": "db-01: PostgresDown", "status": status,
                "priority": 1, "impact": 1, "urgency": 1, "root_cause_ci": "db-01",
                "ci_ids": ["db-01"], "impacted_services": ["checkout"],
                "assignment_group": "dba-team", "assignee": null, "alert_fingerprints": [],
                "alert_count": 1, "opened_at": "2026-11-23T09:00:00Z",
                "updated_at": "2026-11-23T10:00:00Z", "acknowledged_at": null,
                "resolved_at": null, "closed_at": null, "correlation_key": "ci:db-01",
                "enrichment": {}
            }
        });
        if let Some(m) = merged_into {
            b["merged_into"] = json!(m);
        }
        b
    }

    #[test]
    fn servicenow_and_jira_shapes() {
        let sn = shape(Preset::Servicenow, &generic("closed", Some("INC0000003")));
        assert_eq!(sn["state"], "7");
        assert_eq!(sn["cmdb_ci"], "db-01");
        assert_eq!(sn["assignment_group"], "dba-team");
        assert_eq!(sn["correlation_id"], "INC0000007");
        assert_eq!(sn["event_id"], "INC0000007:9:incident.closed");
        assert!(
            sn["work_notes"]
                .as_str()
                .unwrap()
                .contains("merged into INC0000003")
        );
        assert_eq!(
            shape(Preset::Servicenow, &generic("acknowledged", None))["state"],
            "2"
        );
        let j = shape(Preset::Jira, &generic("open", None));
        assert_eq!(j["fields"]["priority"]["name"], "Highest");
        assert_eq!(j["fields"]["summary"], "db-01: PostgresDown");
        assert_eq!(
            j["fields"]["labels"],
            json!(["sift", "INC0000007", "p1", "service-checkout"])
        );
        let g = generic("open", None);
        assert_eq!(shape(Preset::Generic, &g), g);
    }

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
