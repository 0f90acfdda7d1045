import type { FastifyInstance } from 'fastify';
import { TesseraError } from '@tessera/model';
import { platformRoutes } from '@tessera/api';
import { serve } from '../http/serve-route.ts';
import { visibleNames, type AccessControl } from '../auth/access-control.ts';
import { visibleProjects } from '../auth/principal.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { EVENT_TYPES, type Delivered, type EventBus, type EventType } from './event-bus.ts';

export interface EventRoutesOptions {
  bus: EventBus;
  projects: ProjectStore;
  /** A comment line is sent this often, so that proxies and clients see the stream alive (default 15 s). */
  heartbeatMs: number;
  /**
   * A client that leaves more than this many bytes unread for `drainMs` (or four times
   * as many at any moment) is disconnected (default 1 MiB, 10 s).
   */
  maxBufferBytes: number;
  drainMs: number;
  /** The open streams' end functions (the server ends them when it closes). */
  streams: Set<() => void>;
  /** When access changes (a member removed, a sign-out, a token revoked), each open stream checks its caller again. */
  access?: AccessControl;
}

/** The event stream: GET /api/events, server-sent events of every state change. */
export async function eventRoutes(app: FastifyInstance, opts: EventRoutesOptions): Promise<void> {
  const { bus } = opts;
  const open = opts.streams;

  serve(app, platformRoutes.events, async (request, reply) => {
    const q = request.query;
    const project = q.project !== undefined ? (await opts.projects.require(q.project)).name : undefined;
    // Without a project: the events of the caller's projects (and those of none, such as extensions'); checked again when access changes.
    let names = await visibleNames(request, opts.projects);
    let types: Set<EventType> | undefined;
    if (q.types !== undefined) {
      const asked = q.types.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = asked.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
      if (bad.length > 0 || asked.length === 0) {
        throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown event type ${bad.length ? bad.map((b) => `"${b}"`).join(', ') : '(none given)'} in types; use ${EVENT_TYPES.join(', ')}`, {
          details: [{ where: 'querystring.types', message: `must be among ${EVENT_TYPES.join(', ')}` }],
        });
      }
      types = new Set(asked as EventType[]);
    }

    if (request.method === 'HEAD') return reply.type('text/event-stream; charset=utf-8').header('cache-control', 'no-store').send('');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let closed = false;
    let slow: NodeJS.Timeout | undefined;
    const drop = (): void => {
      request.log.warn(`event stream client ${request.ip} left ${res.writableLength} bytes unread; disconnected`);
      close();
      res.destroy();
    };
    const write = (text: string): void => {
      if (closed) return;
      res.write(text);
      // A client that does not read: its unread bytes pile up here. Drop it rather than hold them
      // (a burst a reading client takes in a moment is let through).
      if (res.writableLength > opts.maxBufferBytes * 4) drop();
      else if (res.writableLength > opts.maxBufferBytes && !slow) {
        slow = setTimeout(drop, opts.drainMs);
        res.once('drain', () => {
          clearTimeout(slow);
          slow = undefined;
        });
      }
    };
    const onEvent = ({ seq, event }: Delivered): void => {
      if (types && !types.has(event.type)) return;
      if (project !== undefined && 'project' in event && event.project !== project) return;
      if (names && 'project' in event && typeof event.project === 'string' && !names.has(event.project)) return;
      write(`id: ${seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    };
    const unsubscribe = bus.subscribe(onEvent);
    // Access changed somewhere: is this caller still who they were? A stream whose credential
    // ended (signed out, revoked, user disabled), or whose project is no longer theirs, ends;
    // otherwise it goes on with the projects the caller has now.
    let checking = false;
    const recheck = async (): Promise<void> => {
      if (closed || checking || !opts.access) return;
      checking = true;
      try {
        const principal = await opts.access.authenticate(request.headers);
        if (closed) return;
        if (!principal) return end();
        const visible = visibleProjects(principal);
        names = visible === 'all' ? undefined : new Set((await Promise.all([...visible].map((id) => opts.projects.findById(id)))).flatMap((p) => (p ? [p.name] : [])));
        if (project !== undefined && names && !names.has(project)) end();
      } catch (err) {
        request.log.warn(`checking an event stream's caller again failed: ${(err as Error).message}; the stream ends`);
        end();
      } finally {
        checking = false;
      }
    };
    const stopWatching = opts.access?.enabled ? opts.access.onInvalidate(() => void recheck()) : () => undefined;
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), opts.heartbeatMs);
    heartbeat.unref();
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(slow);
      unsubscribe();
      stopWatching();
      open.delete(end);
    };
    const end = (): void => {
      close();
      res.end();
    };
    open.add(end);
    res.once('close', close);
    res.once('error', close);
    write(`retry: 3000\nevent: ready\ndata: ${JSON.stringify({ type: 'ready', project: project ?? null, types: types ? [...types] : EVENT_TYPES })}\n\n`);
  });
}
