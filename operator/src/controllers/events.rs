//! Events on the custom resources.

use kube::runtime::events::{Event, EventType};
use kube::Resource;

use crate::context::Context;

/// Publishes an Event about `object`; a failure to publish is logged, never
/// fails the reconcile (events are best effort).
pub async fn publish<K>(ctx: &Context, object: &K, warning: bool, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(error = %error, reason, "failed to publish an event");
    }
}
