"""A careless change to the lifecycle, for the replay test to catch: a pause before the first
activity, made without `workflow.patched`. In a module of its own, as the workflow sandbox
re-imports a workflow's module."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import LifecycleInput, LifecycleSummary
    from workflows.lifecycle import PurchaseLifecycle


@workflow.defn(name="PurchaseLifecycle")
class WaitsBeforeStarting(PurchaseLifecycle):
    @workflow.run
    async def run(self, input: LifecycleInput) -> LifecycleSummary:
        await workflow.sleep(1)
        return await super().run(input)
