//! The write step: a batch's `Plan` as store calls, inside the batch's transaction, and
//! the outbound events that commit with it.
//!
//! It decides nothing: what to write is the plan's, when to commit the writer's.

use chrono::Utc;

use super::plan::Plan;
use crate::incident::{Incident, TimelineEntry};
use crate::outbox::{Event, events_of};
use crate::store::{StoreError, WriteTx};

/// Writes every row of the plan, in the order the plan lists them.
pub(super) async fn write(tx: &mut dyn WriteTx, plan: &Plan<'_>) -> Result<(), StoreError> {
    tx.upsert_alerts(&plan.upsert).await?;
    tx.refresh_alerts(&plan.refresh).await?;
    tx.append_journal(&plan.journal).await?;
    if let Some(seq) = plan.fold_through {
        tx.delete_journal_through(seq).await?;
    }
    // In place of their rows and of this batch's new rows for them (`plan.members` has
    // none of these incidents).
    for (id, fps) in &plan.rewrite_members {
        tx.rewrite_members(id, fps).await?;
    }
    tx.upsert_incidents(&plan.incidents).await?;
    tx.add_members(&plan.members).await?;
    tx.append_feedback(plan.feedback).await?;
    tx.append_timeline(plan.timeline).await?;
    Ok(())
}

/// Writes the batch's events into the outbox, inside the batch's transaction, for the
/// subscriptions that want them: an event exists exactly when its incident change does.
/// With no subscription and no live reader (`live`), no event is built at all: an alert
/// storm costs nothing here when nobody listens.
pub(super) async fn enqueue_events(
    tx: &mut dyn WriteTx,
    incidents: &[&Incident],
    timeline: &[TimelineEntry],
    live: bool,
) -> Result<Vec<Event>, StoreError> {
    if timeline.is_empty() {
        return Ok(Vec::new());
    }
    let subs = tx.subscriptions().await?;
    if subs.is_empty() && !live {
        return Ok(Vec::new());
    }
    let events = events_of(tx.state().seq + 1, incidents, timeline);
    if !events.is_empty() && !subs.is_empty() {
        tx.enqueue_outbox(&subs, &events, Utc::now()).await?;
    }
    Ok(events)
}
