"""What one lifecycle costs in Temporal: history events, history bytes and billable actions,
counted from the recorded histories themselves."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

# Temporal Cloud bills these history events as one action each (an activity also per retry).
BILLABLE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "workflow start",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search attribute upsert",
    EventType.EVENT_TYPE_MARKER_RECORDED: "marker (local activity, side effect)",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child workflow",
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signal sent",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continue-as-new",
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: "memo upsert",
}


@dataclass
class LifecycleCost:
    lifecycles: int = 0
    events: int = 0
    bytes: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    activities: Counter[str] = field(default_factory=Counter)

    def per_lifecycle(self, total: int) -> float:
        return round(total / max(self.lifecycles, 1), 2)

    @property
    def events_per_lifecycle(self) -> float:
        return self.per_lifecycle(self.events)

    @property
    def bytes_per_lifecycle(self) -> float:
        return self.per_lifecycle(self.bytes)

    @property
    def actions_per_lifecycle(self) -> float:
        return self.per_lifecycle(sum(self.actions.values()))

    def breakdown(self) -> dict[str, float]:
        found = {name: self.per_lifecycle(n) for name, n in sorted(self.actions.items())}
        found |= {f"activity {name}": self.per_lifecycle(n)
                  for name, n in sorted(self.activities.items())}
        return found


async def measure(client: Client, workflow_ids: list[str]) -> LifecycleCost:
    cost = LifecycleCost()
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        cost.lifecycles += 1
        cost.events += len(history.events)
        cost.bytes += sum(event.ByteSize() for event in history.events)
        for event in history.events:
            kind = BILLABLE.get(event.event_type)
            if kind is None:
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    retries = event.activity_task_started_event_attributes.attempt - 1
                    cost.actions["activity retry"] += retries
                continue
            cost.actions[kind] += 1
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                name = attributes.activity_type.name
                if name == "baseline_noop":
                    name = "no-op"
                cost.activities[name] += 1
    if not cost.actions["activity retry"]:
        del cost.actions["activity retry"]
    return cost
