// driver.mjs drives Debian's chromium with playwright-core for the Go
// package browser (its only client), which embeds it and runs it with
// `node --input-type=module -e`. One process, one chromium, many pages.
//
// Protocol, one JSON document per line:
//   stdin, first line: {"modules": "<node_modules>", "chromium": "<path>", "args": ["--headless", ...]}
//   stdout: {"ready": true, "version": "<chromium version>"} or {"fatal": "..."}
//   stdin, then requests: {"id": N, "op": "...", "page": "p1", "timeout_ms": N, ...}
//   stdout, for each: {"id": N, "result": <any>} or {"id": N, "error": "..."}
// Requests run concurrently; replies come in any order. The ops are the
// methods of ops below. End of stdin (the Go side closed it, or died)
// closes chromium, which removes its temporary profile, and exits.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

let browser;
const pages = new Map(); // "p1" -> {context, page, errors}
let pageCount = 0;
let axeExpression;

let exiting;
function exit(code) {
  exiting ??= (async () => {
    try {
      await browser?.close();
    } catch {}
    process.exit(code);
  })();
  return exiting;
}
process.on('SIGINT', () => exit(130));
process.on('SIGTERM', () => exit(143));

// axe-core schedules its work with setTimeout(…, 0), and a page whose
// JavaScript is disabled runs no timers, not even an isolated world's. In
// axe's own world (never the page's), zero delays become microtasks; real
// delays are only axe's give-up timers.
const timerShim = `{
  const native = globalThis.setTimeout.bind(globalThis);
  globalThis.setTimeout = (fn, ms, ...args) => {
    if (ms > 0) return native(fn, ms, ...args);
    queueMicrotask(() => fn(...args));
    return 0;
  };
}`;

// Only violations are returned, in a shape the Go side decodes (Violation).
// iframes: false, because axe lives in an isolated world of the top
// document only; it would otherwise wait for frames to answer.
const axeRun = `axe.run(document, {resultTypes: ['violations'], iframes: false}).then((r) =>
  r.violations.map((v) => ({
    id: v.id, impact: v.impact ?? '', help: v.help, help_url: v.helpUrl,
    nodes: v.nodes.map((n) => ({
      target: n.target.map((t) => (Array.isArray(t) ? t.join(' >>> ') : String(t))),
      html: n.html, summary: n.failureSummary ?? '',
    })),
  })))`;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const ops = {
  async open(m) {
    const context = await browser.newContext({
      viewport: { width: m.width, height: m.height },
      isMobile: m.mobile,
      hasTouch: m.mobile,
      deviceScaleFactor: 1,
      locale: m.locale,
      javaScriptEnabled: m.javascript,
    });
    const page = await context.newPage();
    const entry = { context, page, errors: [] };
    // Errors belong to the document they happened in.
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) entry.errors = [];
    });
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      // The document's own status is Goto's and Click's answer, and the
      // favicon is chromium's own request (the first time it sees a site),
      // not the page's: neither is the page's error.
      if (msg.text().startsWith('Failed to load resource')) {
        const where = msg.location().url;
        if (where === page.url() || new URL(where, page.url()).pathname === '/favicon.ico') return;
      }
      entry.errors.push(msg.text());
    });
    page.on('pageerror', (e) => entry.errors.push(String(e?.message ?? e)));
    const id = `p${++pageCount}`;
    pages.set(id, entry);
    return id;
  },

  async close(m, { context }) {
    pages.delete(m.page);
    await context.close();
    return null;
  },

  async goto(m, { page }) {
    const response = await page.goto(m.url, { timeout: m.timeout_ms, waitUntil: 'load' });
    return response ? response.status() : 0; // null: the same document (a #fragment)
  },

  async url(m, { page }) {
    return page.url();
  },

  async text(m, { page }) {
    return page.locator(m.selector || 'body').innerText({ timeout: m.timeout_ms });
  },

  async count(m, { page }) {
    return page.locator(m.selector).count();
  },

  async visible(m, { page }) {
    return page.locator(m.selector).isVisible();
  },

  async attr(m, { page }) {
    return page.locator(m.selector).getAttribute(m.name, { timeout: m.timeout_ms });
  },

  async fill(m, { page }) {
    await page.locator(m.selector).fill(m.text, { timeout: m.timeout_ms });
    return null;
  },

  // Playwright's click waits for a navigation the click started to commit;
  // the document's response is recorded on the way, then its load awaited.
  async click(m, { page }) {
    let nav = null;
    const onResponse = (r) => {
      if (r.frame() === page.mainFrame() && r.request().isNavigationRequest()) nav = r;
    };
    page.on('response', onResponse);
    try {
      await page.locator(m.selector).click({ timeout: m.timeout_ms });
    } finally {
      page.off('response', onResponse);
    }
    if (!nav) return 0;
    await page.waitForLoadState('load', { timeout: m.timeout_ms });
    return nav.status();
  },

  async screenshot(m, { page }) {
    await page.screenshot({
      path: m.path, type: 'png', fullPage: true, animations: 'disabled', caret: 'hide', timeout: m.timeout_ms,
    });
    return null;
  },

  async errors(m, entry) {
    return entry.errors.slice();
  },

  // axe runs in an isolated world: the page's scripts cannot see or
  // disturb it, its Content-Security-Policy does not apply, and it works
  // when the page's JavaScript is disabled.
  async axe(m, { context, page }) {
    const cdp = await context.newCDPSession(page);
    try {
      const { frameTree } = await cdp.send('Page.getFrameTree');
      const { executionContextId } = await cdp.send('Page.createIsolatedWorld', {
        frameId: frameTree.frame.id, worldName: 'sshguard-unban-axe',
      });
      const r = await withTimeout(cdp.send('Runtime.evaluate', {
        contextId: executionContextId, expression: axeExpression, awaitPromise: true, returnByValue: true,
      }), m.timeout_ms, 'axe');
      if (r.exceptionDetails) {
        throw new Error(`axe: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      }
      return r.result.value;
    } finally {
      await cdp.detach().catch(() => {});
    }
  },
};

async function handle(m) {
  try {
    const op = ops[m.op];
    if (!op) throw new Error(`unknown op ${JSON.stringify(m.op)}`);
    let entry;
    if (m.op !== 'open') {
      entry = pages.get(m.page);
      if (!entry) throw new Error(`no page ${JSON.stringify(m.page)} (closed?)`);
    }
    send({ id: m.id, result: (await op(m, entry)) ?? null });
  } catch (e) {
    send({ id: m.id, error: String(e?.message ?? e) });
  }
}

async function start(cfg) {
  const require = createRequire(cfg.modules + '/');
  const { chromium } = require('playwright-core');
  axeExpression = `${timerShim}\n${readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')}\n;${axeRun}`;
  // Playwright's launch gives chromium a fresh temporary profile
  // (--user-data-dir) and removes it on close.
  browser = await chromium.launch({ executablePath: cfg.chromium, args: cfg.args, headless: true, timeout: 30000 });
  return browser.version();
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
let started;
lines.on('line', (line) => {
  if (!line.trim()) return;
  let m;
  try {
    m = JSON.parse(line);
  } catch (e) {
    send({ fatal: `bad request line: ${e.message}` });
    return;
  }
  if (!started) {
    started = start(m).then(
      (version) => send({ ready: true, version }),
      (e) => {
        send({ fatal: String(e?.message ?? e) });
        exit(1);
      },
    );
    return;
  }
  started.then(() => handle(m));
});
lines.on('close', () => exit(0));
