// Live updates. The server's event stream (GET /api/events, server-sent events) is taken as
// a hint: on an event, the pages that care fetch what they show again. When the stream is
// not there (an older server) or drops, every subscriber is called every 2 s instead, and
// the stream is tried again every 30 s.
import { useEffect, useRef, useSyncExternalStore } from 'react';

export type Topic = 'runs' | 'series' | 'datasets' | 'extensions' | 'applications' | 'workflows' | 'system';

type Listener = (topics: Set<Topic> | 'all') => void;
const listeners = new Set<Listener>();
let mode: 'connecting' | 'events' | 'polling' = 'connecting';
const modeListeners = new Set<() => void>();
let source: EventSource | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let pending = new Set<Topic>();
let flushTimer: ReturnType<typeof setTimeout> | undefined;

function setMode(m: typeof mode) {
  mode = m;
  for (const l of modeListeners) l();
}

/** Which pages an event concerns, from its name and its data (names like `run.updated`, `task.state`, `series.stored`). */
const BY_TYPE: Record<string, Topic[]> = {
  run: ['runs'],
  task: ['runs'],
  job: ['runs'],
  series: ['series'],
  import: ['series', 'datasets'],
  dataset: ['datasets', 'series'],
  extension: ['extensions', 'workflows', 'applications'],
  application: ['applications'],
};

export function topicsOf(name: string, data: string): Set<Topic> | 'all' {
  const known = BY_TYPE[name];
  if (known) return new Set(known);
  if (name === 'ready') return new Set();
  const text = `${name} ${data.slice(0, 400)}`.toLowerCase();
  const out = new Set<Topic>();
  if (/\b(run|task|job)s?\b|run[._]|task[._]|job[._]/.test(text)) out.add('runs');
  if (/series|instance|import|dicom|thumbnail/.test(text)) out.add('series');
  if (/dataset/.test(text)) out.add('datasets');
  if (/extension|install|package/.test(text)) {
    out.add('extensions');
    out.add('workflows');
  }
  if (/workflow/.test(text)) out.add('workflows');
  if (/application|app[._]|instance/.test(text)) out.add('applications');
  return out.size ? out : 'all';
}

function emit(topics: Set<Topic> | 'all') {
  for (const l of listeners) l(topics);
}

function queue(topics: Set<Topic> | 'all') {
  if (topics !== 'all' && topics.size === 0) return;
  if (topics === 'all') {
    for (const t of ['runs', 'series', 'datasets', 'extensions', 'applications', 'workflows', 'system'] as Topic[]) pending.add(t);
  } else for (const t of topics) pending.add(t);
  // Bursts of events (a run of 100 tasks) become one refetch per 250 ms.
  flushTimer ??= setTimeout(() => {
    flushTimer = undefined;
    const t = pending;
    pending = new Set();
    emit(t);
  }, 250);
}

function startPolling() {
  setMode('polling');
  pollTimer ??= setInterval(() => emit('all'), 2000);
  retryTimer ??= setTimeout(() => {
    retryTimer = undefined;
    connect();
  }, 30_000);
}

function connect() {
  if (typeof EventSource === 'undefined') return startPolling();
  source?.close();
  const es = new EventSource('/api/events');
  source = es;
  let opened = false;
  es.onopen = () => {
    opened = true;
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = undefined;
    setMode('events');
    // What changed while we were not listening: also at the first connect, since a page may
    // have loaded its data before the stream opened, and a change in between (a run that
    // ended) would otherwise never show.
    queue('all');
  };
  es.onmessage = (e: MessageEvent<string>) => queue(topicsOf(e.type, e.data));
  // Named events (`event: run`) do not reach onmessage: listen for the usual names too.
  for (const name of ['run', 'task', 'job', 'series', 'dataset', 'extension', 'application', 'workflow', 'import', 'state', 'change']) {
    es.addEventListener(name, (e) => queue(topicsOf(name, (e as MessageEvent<string>).data ?? '')));
  }
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED || !opened) {
      opened = false;
      es.close();
      if (source === es) source = undefined;
      startPolling();
    }
    // else: the browser reconnects by itself
  };
}

let started = false;
function ensureStarted() {
  if (started) return;
  started = true;
  // The stream holds one of the browser's six connections to the server: it opens once the
  // first page has loaded, so that the first screen's thumbnails get all six.
  const go = () => setTimeout(connect, 1000);
  if (document.readyState === 'complete') go();
  else window.addEventListener('load', go, { once: true });
}

/** Calls `refetch` whenever something of `topics` may have changed. */
export function useLive(topics: Topic[], refetch: () => void): void {
  const ref = useRef(refetch);
  ref.current = refetch;
  const key = topics.join(',');
  useEffect(() => {
    ensureStarted();
    const wanted = new Set(key.split(',') as Topic[]);
    const l: Listener = (t) => {
      if (t === 'all' || [...t].some((x) => wanted.has(x))) ref.current();
    };
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, [key]);
}

/** `events` (the server's stream), `polling` (every 2 s) or `connecting`. */
export function useLiveMode(): typeof mode {
  return useSyncExternalStore(
    (cb) => {
      modeListeners.add(cb);
      ensureStarted();
      return () => modeListeners.delete(cb);
    },
    () => mode,
  );
}
