import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, errorText } from './api.ts';
import { useLive, type Topic } from './live.ts';

/**
 * Loads something from the API, again when `deps` change and on live hints of `topics`.
 * The error is kept (and shown by the page) until a load succeeds.
 */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], topics: Topic[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const loadRef = useRef(load);
  loadRef.current = load;
  const seq = useRef(0);
  const inflight = useRef<AbortController | undefined>(undefined);
  const reload = useCallback(() => {
    const n = ++seq.current;
    inflight.current?.abort();
    const ctl = new AbortController();
    inflight.current = ctl;
    setLoading(true);
    loadRef.current(ctl.signal).then(
      (d) => {
        if (n !== seq.current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (n !== seq.current || (err as Error).name === 'AbortError') return;
        setError(errorText(err));
        setLoading(false);
      },
    );
  }, []);
  useEffect(reload, deps);
  useEffect(() => () => inflight.current?.abort(), []);
  useLive(topics, reload);
  return { data, error, loading, reload, setData };
}

/** Runs an action (a POST) and reports its error; returns undefined when it failed. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  /** The fields the server named in its refusal (details[].where -> message), for forms. */
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    setFieldErrors({});
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApiError) setFieldErrors(err.fieldErrors());
      setError(errorText(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, fieldErrors, setError, run };
}
