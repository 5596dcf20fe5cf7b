"""Support's resend of one step for a lifecycle that has already closed.

A running lifecycle takes a resend as its `resend` signal; a closed one cannot, so support starts
this one-step workflow instead (id `resend-<audit id>`). It runs the same email activity on the
same rate-limited queue, so the send is retried, rate limited and recorded like any other, under
the audit entry's idempotency key.
"""

import dataclasses
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.emails import EmailActivities
    from workflows.contract import SendStep, StepResult
    from workflows.lifecycle import PATCH_WAIT_FOR_UNCONFIRMED_SEND, SEND_RETRY, SEND_TIMEOUT
    from workflows.unconfirmed import next_check


@dataclass
class ResendInput:
    shop_id: str
    order_id: str
    lifecycle_id: str
    step: str
    idempotency_key: str
    email_task_queue: str = "loyalloop-emails"
    marketing: bool = True


@workflow.defn
class ResendStep:
    @workflow.run
    async def run(self, input: ResendInput) -> StepResult:
        request = SendStep(
            shop_id=input.shop_id, order_id=input.order_id, workflow_id=input.lifecycle_id,
            step=input.step, now=workflow.now(), marketing=input.marketing,
            idempotency_key=input.idempotency_key,
            wait_if_unconfirmed=workflow.patched(PATCH_WAIT_FOR_UNCONFIRMED_SEND),
        )
        result = await self._attempt(input, request)
        checks = 0
        while result.status == "unconfirmed" and result.resend_at is not None:
            await workflow.sleep(next_check(workflow.now(), result.resend_at, checks))
            checks += 1
            result = await self._attempt(input, dataclasses.replace(request, now=workflow.now()))
        return result

    async def _attempt(self, input: ResendInput, request: SendStep) -> StepResult:
        return await workflow.execute_activity_method(
            EmailActivities.send_step,
            request,
            task_queue=input.email_task_queue,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
        )
