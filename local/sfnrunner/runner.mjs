// runner.mjs executes Amazon States Language definitions with
// aws-local-stepfunctions, for the Go package sfnrunner (its only client).
//
// It is one long-lived process so that each definition is parsed and
// validated once (about 200 ms) while a run costs under a millisecond.
//
// Protocol, one JSON document per line:
//   stdin, first line: the config (sfnrunner.runnerConfig):
//     {"modules": "<dir of node_modules>", "machines": {"<name>": "<ASL text>"},
//      "substitutions": {"Key": "value"}, "account": "…", "region": "…",
//      "defaults": <overrides>}
//   stdout: {"type": "ready"} or {"type": "fatal", "fatal": "..."}
//   stdin, then: {"type": "run", "id": "...", "machine": "unban", "name": "...",
//                 "input": {...}, "overrides": <overrides>}
//                {"type": "stop", "id": "..."}   (aborts a running execution)
//                {"type": "task_success", "id": "...", "token": "...", "output": <JSON>}
//                {"type": "task_failure", "id": "...", "token": "...", "error": "...", "cause": "..."}
//                {"type": "task_heartbeat", "id": "...", "token": "..."}
//   stdout, for each task_*: {"type": "task_answer", "id": "...", "code": "", "message": "..."}
//     where code is "" (accepted) or what Step Functions answers: "InvalidToken"
//     (not a token's form), "TaskDoesNotExist" (never issued) or "TaskTimedOut"
//     (its task is closed: answered, timed out, or its execution ended);
//   stdout: {"type": "result", "id": "...", "status": "SUCCEEDED"|"FAILED"|"TIMED_OUT"|"ABORTED",
//            "output": ..., "error": "...", "cause": "...", "transitions": N,
//            "states": ["ReadTheMessage", ...], "entered_ms": [unix ms, ...], "retries": N, "max_state_bytes": N,
//            "start_ms": N, "stop_ms": N, "inputs": {"<state>": <its last input>}}
//   where <overrides> is {"bridge_url": "http://127.0.0.1:N",
//      "wait_ms": {"*": 0, "<state>": 5}, "retry_interval_ms": {"*": 0},
//      "task_timeout_seconds": {"*": 1, "<state>": 2}, "heartbeat_seconds": {"*": 0.2},
//      "execution_timeout_seconds": 0,
//      "latency": {"transition_ms": [p50, p95], "wait_overshoot_ms": [p50, p95], "seed": N},
//      "redrive": {"start_at": "<state>", "start_ms": N}};
//   a run's overrides replace the
//   defaults field by field. Overrides are per run so that one process (one
//   ~0.4 s start) serves many isolated test environments.
//
// Each Task calls the task bridge (local/taskbridge) over the Lambda Invoke
// API, so a handler error arrives as {errorType, errorMessage} and is
// rethrown with .name = errorType: Retry and Catch match it by ErrorEquals
// exactly as in AWS. A Task may name the function (Resource: its ARN) or
// use the Lambda integration (arn:aws:states:::lambda:invoke), which is how
// an asynchronous (InvocationType Event) call is written.
//
// The callback pattern (arn:aws:states:::lambda:invoke.waitForTaskToken),
// which the library does not know: each attempt of such a Task gets a new
// unguessable token where its Parameters ask for "$$.Task.Token" (the
// definition carries a placeholder, replaced per attempt), the function is
// invoked (a function error fails the Task at once), and the Task then
// waits for task_success (its output is the Task's result), task_failure
// (the Task fails with that Error and Cause), TimeoutSeconds from the
// Task's start (States.Timeout) or HeartbeatSeconds from the last heartbeat
// (States.HeartbeatTimeout, which a States.Timeout retrier or catcher also
// matches, as in the States Language). The execution's end (success,
// failure, timeout, stop) closes its tokens.

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

// One broken execution must not end the others: Node exits on an unhandled
// rejection by default.
process.on('unhandledRejection', (e) => {
  process.stderr.write(`sfnrunner: unhandled rejection: ${e?.stack ?? e}\n`);
});

// Step Functions' limit on a state's input or output (and a task's result).
const maxPayloadBytes = 256 * 1024;

// The optimized Lambda integration: the Task's Parameters are the Invoke
// call (FunctionName, InvocationType, Payload) and its result is the Invoke
// answer ({StatusCode, Payload}); InvocationType Event answers 202 at once.
const lambdaInvokeResource = 'arn:aws:states:::lambda:invoke';
const lambdaCallbackResource = 'arn:aws:states:::lambda:invoke.waitForTaskToken';

// What a callback Task's Parameters carry instead of "$$.Task.Token" until
// an attempt replaces it by its own token. Random per process, so that no
// input can forge it.
const tokenPlaceholder = `sfnrunner-task-token-${randomBytes(12).toString('hex')}`;
// Node's longest timer (about 24.8 days); a longer timeout never fires here.
const maxTimerMs = 2 ** 31 - 1;

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
const iter = lines[Symbol.asyncIterator]();

let cfg;
let lib;
const machines = new Map(); // name -> {definition, variants: Map(key -> StateMachine), tasks}
const running = new Map(); // id -> abort()
// Task tokens issued, by token: {run, open, succeed(output), fail(error),
// heartbeat()}. Closed ones are kept (up to maxClosedTokens) so that a late
// or second callback is answered TaskTimedOut, as Step Functions answers it.
const taskTokens = new Map();
const maxClosedTokens = 100000;
let closedTokens = 0;
// The library's States.Timeout error class, which it does not export: its
// retriers and catchers tell a timeout from other errors by the class
// (States.TaskFailed does not match it). Obtained from a probe run.
let StatesTimeoutError;

try {
  const first = await iter.next();
  if (first.done) process.exit(0);
  cfg = JSON.parse(first.value);
  // The library is loaded from the project's node_modules, wherever this
  // script was copied to (the Go package embeds it).
  const require = createRequire(join(cfg.modules, 'noop.js'));
  lib = require('aws-local-stepfunctions');
  StatesTimeoutError = await timeoutErrorClass();
  for (const [name, text] of Object.entries(cfg.machines ?? {})) {
    machines.set(name, load(name, text));
  }
  send({ type: 'ready' });
} catch (e) {
  send({ type: 'fatal', fatal: String(e?.stack ?? e) });
  process.exit(1);
}

// load substitutes ${Key} (as CloudFormation does with CDK's
// DefinitionSubstitutions) and validates the definition as written.
function load(name, text) {
  const subs = cfg.substitutions ?? {};
  const substituted = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (m, key) => {
    if (!(key in subs)) throw new Error(`${name}: no substitution for \${${key}}`);
    return subs[key];
  });
  const definition = JSON.parse(substituted);
  new lib.StateMachine(definition); // throws with the validator's messages
  const tasks = {}; // Task state name -> function name
  forEachState(definition, (stateName, state) => {
    if (state.Type !== 'Task') return;
    if (state.Resource === lambdaInvokeResource) tasks[stateName] = { integration: true };
    else if (state.Resource === lambdaCallbackResource) tasks[stateName] = checkCallback(`${name}.${stateName}`, state);
    else if (state.Resource.startsWith('arn:aws:states:::')) throw new Error(`${name}.${stateName}: unsupported integration ${state.Resource}`);
    else tasks[stateName] = functionName(state.Resource);
  });
  return { definition, tasks, variants: new Map() };
}

// timeoutErrorClass runs a Task that times out at once and returns the
// class of the error the library raised.
async function timeoutErrorClass() {
  const probe = new lib.StateMachine(
    { StartAt: 'T', States: { T: { Type: 'Task', Resource: 'arn:aws:lambda:local:000000000000:function:probe', TimeoutSeconds: 0.001, End: true } } },
    { validationOptions: { noValidate: true } },
  );
  const never = () => new Promise(() => {});
  try {
    await probe.run({}, { overrides: { taskResourceLocalHandlers: { T: never } } }).result;
  } catch (e) {
    if (e?.cause?.name === 'States.Timeout') return e.cause.constructor;
  }
  throw new Error('aws-local-stepfunctions: cannot find its States.Timeout error class');
}

// checkCallback validates a callback Task beyond the schema: it must pass
// its token on (or nobody could ever answer it), and the timeouts this
// runner keeps itself must be literal.
function checkCallback(where, state) {
  if (!refersToToken(state.Parameters)) throw new Error(`${where}: a .waitForTaskToken Task must pass "key.$": "$$.Task.Token" in its Parameters`);
  for (const f of ['TimeoutSecondsPath', 'HeartbeatSecondsPath']) {
    if (f in state) throw new Error(`${where}: ${f} is not served by the local runner on a callback Task; use ${f.slice(0, -4)}`);
  }
  if (state.HeartbeatSeconds !== undefined && state.TimeoutSeconds !== undefined && state.HeartbeatSeconds >= state.TimeoutSeconds) {
    throw new Error(`${where}: HeartbeatSeconds must be smaller than TimeoutSeconds`);
  }
  return { integration: true, callback: true, timeoutSeconds: state.TimeoutSeconds, heartbeatSeconds: state.HeartbeatSeconds };
}

function refersToToken(tmpl) {
  if (Array.isArray(tmpl)) return tmpl.some(refersToToken);
  if (tmpl === null || typeof tmpl !== 'object') return false;
  return Object.entries(tmpl).some(([k, v]) => (k.endsWith('.$') && v === '$$.Task.Token') || refersToToken(v));
}

// placeToken replaces every "k.$": "$$.Task.Token" in a payload template by
// "k": the placeholder; withToken replaces the placeholder in a resolved
// payload by an attempt's token.
function placeToken(tmpl) {
  if (Array.isArray(tmpl)) return tmpl.map(placeToken);
  if (tmpl === null || typeof tmpl !== 'object') return tmpl;
  const out = {};
  for (const [k, v] of Object.entries(tmpl)) {
    if (k.endsWith('.$') && v === '$$.Task.Token') out[k.slice(0, -2)] = tokenPlaceholder;
    else out[k] = placeToken(v);
  }
  return out;
}

function withToken(v, token) {
  if (v === tokenPlaceholder) return token;
  if (Array.isArray(v)) return v.map((x) => withToken(x, token));
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withToken(x, token)]));
}

// variant returns the machine with the run's timeouts applied. Building one
// without validation is cheap; variants are cached by their timeouts. The
// shortened copy may use fractional timeouts, which the ASL schema rejects:
// the definition itself was validated as written.
function variant(m, o) {
  const key = JSON.stringify([o.task_timeout_seconds ?? null, o.execution_timeout_seconds ?? null, o.redrive ?? null]);
  let sm = m.variants.get(key);
  if (sm) return sm;
  const runnable = structuredClone(m.definition);
  if (o.redrive) {
    // A redriven execution continues at the unsuccessful state and keeps
    // its $$.Execution.StartTime; the library always sets StartTime to
    // now, so the original is written into the definition instead.
    runnable.StartAt = o.redrive.start_at;
    const started = new Date(o.redrive.start_ms).toISOString();
    forEachState(runnable, (_, state) => {
      for (const field of ['Parameters', 'ItemSelector']) {
        if (state[field]) state[field] = pinStartTime(state[field], started);
      }
    });
  }
  const t = o.task_timeout_seconds ?? {};
  forEachState(runnable, (stateName, state) => {
    if (state.Type !== 'Task') return;
    if (state.Resource === lambdaCallbackResource) {
      // The token's handler keeps this Task's timeouts (they close the
      // token); the library's own timer must never fire first.
      state.Parameters = placeToken(state.Parameters);
      state.TimeoutSeconds = Math.floor(maxTimerMs / 1000);
      // A heartbeat timeout is also a States.Timeout in the States
      // Language; the library matches one name per error.
      for (const r of [...(state.Retry ?? []), ...(state.Catch ?? [])]) {
        if (r.ErrorEquals.includes('States.Timeout') && !r.ErrorEquals.includes('States.HeartbeatTimeout')) r.ErrorEquals.push('States.HeartbeatTimeout');
      }
      return;
    }
    const v = t[stateName] ?? t['*'];
    if (v !== undefined) state.TimeoutSeconds = v;
  });
  if (o.execution_timeout_seconds) runnable.TimeoutSeconds = o.execution_timeout_seconds;
  sm = new lib.StateMachine(runnable, { validationOptions: { noValidate: true } });
  m.variants.set(key, sm);
  return sm;
}

// pinStartTime replaces every "k.$": "$$.Execution.StartTime" in a
// payload template by "k": the given time.
function pinStartTime(tmpl, started) {
  if (Array.isArray(tmpl)) return tmpl.map((v) => pinStartTime(v, started));
  if (tmpl === null || typeof tmpl !== 'object') return tmpl;
  const out = {};
  for (const [k, v] of Object.entries(tmpl)) {
    if (k.endsWith('.$') && v === '$$.Execution.StartTime') out[k.slice(0, -2)] = started;
    else out[k] = pinStartTime(v, started);
  }
  return out;
}

// forEachState visits every state, nested ones (Map, Parallel) included:
// the library keys its overrides by state name at any depth.
function forEachState(def, fn) {
  for (const [name, state] of Object.entries(def.States ?? {})) {
    fn(name, state);
    for (const b of state.Branches ?? []) forEachState(b, fn);
    if (state.Iterator) forEachState(state.Iterator, fn);
    if (state.ItemProcessor) forEachState(state.ItemProcessor, fn);
  }
}

// expand turns {"*": v, "<state>": w} into one entry per state name (of
// the given type, or any type with Retry when type is null).
function expand(def, type, spec) {
  const out = {};
  if (!spec) return out;
  forEachState(def, (name, state) => {
    if (type ? state.Type !== type : !state.Retry) return;
    const v = spec[name] ?? spec['*'];
    if (v !== undefined) out[name] = v;
  });
  return out;
}

// functionName maps a Lambda ARN (or a bare name) to the bridge's function
// name: arn:aws:lambda:region:account:function:NAME[:qualifier] -> NAME.
function functionName(resource) {
  const m = /^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)/.exec(resource);
  return m ? m[1] : resource;
}

// The latency model (local/latency): Standard Step Functions persists every
// state it enters, which costs time the interpreter does not spend. Each
// Task call first pays for the states entered since the previous call (the
// event log counts them), then the bridge adds the Lambda side.
function makeRng(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // A log-normal with the given median and 95th percentile (as Go's
  // latency.Dist), from a Box-Muller normal.
  return ([p50, p95]) => {
    if (!p50) return 0;
    const z = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    const sigma = p95 > p50 ? (Math.log(p95) - Math.log(p50)) / 1.6448536269514722 : 0;
    return Math.exp(Math.log(p50) + sigma * z);
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// invoker calls a function through the bridge. fn is the function for a
// Task whose Resource is the function's ARN (the input is the payload, the
// result the function's answer), or null for the Lambda integration.
function invoker(bridgeURL, fn, execution, pay) {
  return async (input) => {
    await pay();
    const integration = fn === null;
    const target = integration ? functionName(input.FunctionName ?? '') : fn;
    const type = integration ? (input.InvocationType ?? 'RequestResponse') : 'RequestResponse';
    const out = await invoke(bridgeURL, target, type, integration ? input.Payload ?? {} : input, execution);
    if (type === 'Event' && out === undefined) return { StatusCode: 202, Payload: '' };
    return integration ? { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: out } : out;
  };
}

// invoke makes one Invoke call and returns the function's answer (parsed),
// or undefined for an accepted Event; a failure throws the error name
// Step Functions reports.
async function invoke(bridgeURL, target, type, payload, execution) {
  const url = `${bridgeURL}/2015-03-31/functions/${encodeURIComponent(target)}/invocations`;
  let res;
  let body;
  try {
    res = await fetch(url, {
      method: 'POST',
      // The execution name lets the bridge attribute calls (logs, test
      // assertions); Step Functions sends no such header.
      headers: { 'content-type': 'application/json', 'x-sfnrunner-execution': execution, 'x-amz-invocation-type': type },
      body: JSON.stringify(payload),
    });
    body = await res.text();
  } catch (e) {
    // The Lambda service could not be reached: the name AWS uses for a
    // client-side failure, which the ASL retries.
    throw named('Lambda.SdkClientException', String(e?.cause?.message ?? e?.message ?? e));
  }
  if (res.status === 429) throw named('Lambda.TooManyRequestsException', body);
  if (res.status >= 500) throw named('Lambda.ServiceException', body);
  if (res.status === 202 && type === 'Event') return undefined;
  if (res.status !== 200) throw named('Lambda.AWSLambdaException', body);
  if (res.headers.get('x-amz-function-error')) {
    let info = {};
    try { info = JSON.parse(body); } catch { /* keep the raw text as cause */ }
    // As in AWS, Error is the Lambda errorType and Cause the whole error
    // payload ({"errorMessage":…,"errorType":…}) as a string.
    throw named(info.errorType || 'Lambda.Unknown', body);
  }
  if (Buffer.byteLength(body) > maxPayloadBytes) {
    // As in AWS: a terminal error that no Retry or Catch handles.
    const e = named('States.DataLimitExceeded', `The task result is ${Buffer.byteLength(body)} bytes, over the 262144-byte limit`);
    e.isRetryable = false;
    e.isCatchable = false;
    throw e;
  }
  return body === '' ? null : JSON.parse(body);
}

// callbackInvoker serves a .waitForTaskToken Task: per attempt a new token,
// the Invoke call, then the wait for the token's callback or a timeout.
// spec holds the definition's timeouts; o the run's overrides.
function callbackInvoker(bridgeURL, stateName, spec, runID, execution, pay, o) {
  const pick = (m) => m?.[stateName] ?? m?.['*'];
  const timeoutS = pick(o.task_timeout_seconds) ?? spec.timeoutSeconds;
  const heartbeatS = pick(o.heartbeat_seconds) ?? spec.heartbeatSeconds;
  return async (input) => {
    const token = randomBytes(48).toString('base64url');
    const task = openTask(token, runID, timeoutS, heartbeatS);
    const invokeThenWait = (async () => {
      await pay();
      const target = functionName(input.FunctionName ?? '');
      const type = input.InvocationType ?? 'RequestResponse';
      // AWS answers the Invoke call first; a function error fails the
      // Task without waiting for the token.
      await invoke(bridgeURL, target, type, withToken(input.Payload ?? {}, token), execution);
      return task.settled;
    })();
    try {
      return await Promise.race([invokeThenWait, task.settled]);
    } finally {
      task.close();
    }
  };
}

// openTask registers a token and starts its clocks: TimeoutSeconds from
// now, HeartbeatSeconds from now and from every heartbeat.
function openTask(token, runID, timeoutS, heartbeatS) {
  const { promise: settled, resolve, reject } = Promise.withResolvers();
  settled.catch(() => {}); // observed through the race; never unhandled
  const timer = (seconds, error) => {
    const ms = seconds * 1000;
    return ms < maxTimerMs ? setTimeout(() => reject(error()), ms) : null;
  };
  const timeout = (name, message) => () => {
    const e = new StatesTimeoutError();
    e.name = name;
    e.message = message;
    return e;
  };
  const timedOut = timeout('States.Timeout', 'The task did not complete within its TimeoutSeconds');
  const heartbeatLost = timeout('States.HeartbeatTimeout', 'No heartbeat within the task\'s HeartbeatSeconds');
  const t = {
    run: runID,
    open: true,
    settled,
    succeed: (output) => resolve(output),
    fail: (error) => reject(error),
    heartbeat: () => {
      if (heartbeatS === undefined) return;
      clearTimeout(t.heartbeatTimer);
      t.heartbeatTimer = timer(heartbeatS, heartbeatLost);
    },
    close: () => {
      if (!t.open) return;
      t.open = false;
      clearTimeout(t.timeoutTimer);
      clearTimeout(t.heartbeatTimer);
      t.succeed = t.fail = t.heartbeat = null;
      if (++closedTokens > maxClosedTokens) {
        for (const [k, v] of taskTokens) {
          if (!v.open) { taskTokens.delete(k); closedTokens--; break; }
        }
      }
    },
  };
  t.timeoutTimer = timeoutS === undefined ? null : timer(timeoutS, timedOut);
  t.heartbeatTimer = heartbeatS === undefined ? null : timer(heartbeatS, heartbeatLost);
  taskTokens.set(token, t);
  return t;
}

// closeTasks closes the tokens of an execution that has ended: the waits
// are abandoned with it, and late callbacks are answered TaskTimedOut.
function closeTasks(runID) {
  for (const t of taskTokens.values()) if (t.open && t.run === runID) t.close();
}

// callback answers a task_success, task_failure or task_heartbeat line.
function callback(req) {
  const answer = (code, message = '') => send({ type: 'task_answer', id: req.id, code, message });
  const token = typeof req.token === 'string' ? req.token : '';
  if (!/^[A-Za-z0-9_-]{64}$/.test(token)) return answer('InvalidToken', 'Invalid Token');
  const t = taskTokens.get(token);
  if (!t) return answer('TaskDoesNotExist', 'Task Does Not Exist');
  if (!t.open) return answer('TaskTimedOut', "Task Timed Out: 'Provided task does not exist anymore'");
  if (req.type === 'task_success') t.succeed(req.output ?? null);
  else if (req.type === 'task_failure') t.fail(named(req.error ?? '', req.cause ?? ''));
  else t.heartbeat();
  return answer('');
}

function named(name, message) {
  const e = new Error(message);
  e.name = name;
  return e;
}

async function run(req) {
  const m = machines.get(req.machine);
  const started = Date.now();
  const result = { type: 'result', id: req.id, transitions: 0, states: [], entered_ms: [], retries: 0, max_state_bytes: 0, start_ms: started, inputs: {} };
  if (!m) {
    send({ ...result, status: 'FAILED', error: 'StateMachineDoesNotExist', cause: `no machine ${req.machine}`, stop_ms: Date.now() });
    return;
  }
  const o = { ...(cfg.defaults ?? {}), ...(req.overrides ?? {}) };
  const region = cfg.region ?? 'local';
  const account = cfg.account ?? '000000000000';
  const name = req.name ?? req.id;
  const context = {
    Execution: {
      Id: `arn:aws:states:${region}:${account}:execution:${req.machine}:${name}`,
      Name: name,
      RoleArn: `arn:aws:iam::${account}:role/local`,
    },
    StateMachine: { Id: `arn:aws:states:${region}:${account}:stateMachine:${req.machine}`, Name: req.machine },
  };
  const lat = o.latency;
  const sample = lat ? makeRng(lat.seed ?? 1) : null;
  let unpaid = 0; // states entered since the last Task call
  const pay = async () => {
    if (!sample) return;
    let ms = 0;
    for (; unpaid > 0; unpaid--) ms += sample(lat.transition_ms ?? [0, 0]);
    if (ms > 0) await sleep(ms);
  };
  const handlers = {};
  for (const [stateName, fn] of Object.entries(m.tasks)) {
    handlers[stateName] = fn.callback
      ? callbackInvoker(o.bridge_url, stateName, fn, req.id, name, pay, o)
      : invoker(o.bridge_url, typeof fn === 'string' ? fn : null, name, pay);
  }
  let waits = expand(m.definition, 'Wait', o.wait_ms);
  if (sample && !o.wait_ms) {
    // The definition's own Seconds, ending a little late as in AWS.
    waits = {};
    forEachState(m.definition, (stateName, state) => {
      if (state.Type === 'Wait' && typeof state.Seconds === 'number') {
        waits[stateName] = state.Seconds * 1000 + sample(lat.wait_overshoot_ms ?? [0, 0]);
      }
    });
  }
  const execution = variant(m, o).run(req.input ?? {}, {
    overrides: {
      taskResourceLocalHandlers: handlers,
      waitTimeOverrides: waits,
      retryIntervalOverrides: expand(m.definition, null, o.retry_interval_ms),
    },
    context,
  });
  running.set(req.id, execution.abort);
  // Count from the event log what AWS bills as state transitions: every
  // state entered, plus every retry of a state.
  const counting = (async () => {
    for await (const ev of execution.eventLogs) {
      if (ev.type === 'StateEntered') {
        unpaid++;
        result.transitions++;
        result.states.push(ev.state.name);
        result.entered_ms.push(ev.timestamp ?? Date.now());
        result.inputs[ev.state.name] = ev.state.input ?? null;
      } else if (ev.type === 'StateRetried') {
        result.transitions++;
        result.retries++;
      } else if (ev.type === 'StateExited') {
        const n = Buffer.byteLength(JSON.stringify(ev.state.output ?? null));
        if (n > result.max_state_bytes) result.max_state_bytes = n;
      }
    }
  })();
  try {
    result.output = await execution.result;
    result.status = 'SUCCEEDED';
  } catch (e) {
    if (e instanceof lib.ExecutionTimeoutError) {
      result.status = 'TIMED_OUT';
      result.error = 'States.Timeout';
    } else if (e instanceof lib.ExecutionAbortedError) {
      result.status = 'ABORTED';
    } else {
      result.status = 'FAILED';
      const cause = e?.cause ?? e;
      result.error = cause?.name ?? 'Error';
      result.cause = cause?.message ?? String(cause);
    }
  } finally {
    running.delete(req.id);
    closeTasks(req.id);
  }
  await counting;
  result.stop_ms = Date.now();
  send(result);
}

for (;;) {
  const next = await iter.next();
  if (next.done) break;
  if (!next.value.trim()) continue;
  let req;
  try {
    req = JSON.parse(next.value);
  } catch (e) {
    send({ type: 'fatal', fatal: `bad request line: ${e.message}` });
    continue;
  }
  if (req.type === 'stop') {
    running.get(req.id)?.();
    closeTasks(req.id); // at once: a callback on the next line finds them closed
    continue;
  }
  if (req.type === 'task_success' || req.type === 'task_failure' || req.type === 'task_heartbeat') {
    callback(req);
    continue;
  }
  run(req).catch((e) => send({ type: 'result', id: req.id, status: 'FAILED', error: 'Runner.Error', cause: String(e?.stack ?? e) }));
}
// stdin closed: the Go side is gone or closing; executions still running
// have nobody to report to.
process.exit(0);
