// Evaluates IAM requests with @cloud-copilot/iam-simulate, an evaluator
// independent of AWS and of this project (AGPL-3.0, used by tests only).
// stdin: a JSON array of {name, principal, action, resource, resourceAccount,
// context, identityPolicies, resourcePolicy}; stdout: a JSON array of
// {name, result, errors} in the same order, result being "Allowed",
// "ExplicitlyDenied" or "ImplicitlyDenied" (errors: the simulator refused
// the request, e.g. an unknown action or a malformed policy).
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'
import { createValidatedPolicy, validateResourcePolicy } from '@cloud-copilot/iam-policy'

// The simulator recognises variable context keys only after a "/"
// (aws:ResourceTag/K), so it drops kms:EncryptionContext:K from the
// request. Such a request, once validated, is evaluated again without the
// context check.
const colonVariable = /^kms:EncryptionContext:/i

let input = ''
for await (const chunk of process.stdin) input += chunk
const out = []
for (const c of JSON.parse(input)) {
  const sim = {
    request: {
      principal: c.principal,
      action: c.action,
      resource: { resource: c.resource, accountId: c.resourceAccount },
      contextVariables: c.context ?? {},
    },
    identityPolicies: (c.identityPolicies ?? []).map((policy, i) => ({ name: `policy${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.resourcePolicy ?? undefined,
  }
  const res = await runSimulation(sim, {})
  if (res.resultType === 'error') {
    out.push({ name: c.name, errors: res.errors })
    continue
  }
  let result = res.overallResult
  if ((res.result?.ignoredContextKeys ?? []).some((k) => colonVariable.test(k))) {
    if (sim.resourcePolicy) {
      sim.resourcePolicy = createValidatedPolicy(sim.resourcePolicy, validateResourcePolicy, { name: 'resource' })
    }
    result = runUnsafeSimulation(sim, {})
  }
  out.push({ name: c.name, result })
}
process.stdout.write(JSON.stringify(out))
