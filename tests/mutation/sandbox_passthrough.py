"""pytest plugin for mutation runs only (`-p tests.mutation.sandbox_passthrough`, set in
pyproject's [tool.mutmut]). The workflow sandbox re-imports every module a workflow imports:
without this, mutmut's trampolines in `workflows/` would run in a sandbox copy of `mutmut`
whose test-to-function stats never reach the real one, and every workflow mutant would look
reached by no test."""

from temporalio.worker.workflow_sandbox import SandboxRestrictions

SandboxRestrictions.default.passthrough_modules.add("mutmut")
