import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from './api.ts';
import { finalRunStatuses } from './format.ts';
import type { Run } from './types.ts';

/** State of a load: the data once there, or the error that stopped it. */
export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  /** Loads again (after a change); the previous data stays shown meanwhile. */
  readonly reload: () => void;
}

/** Loads `load()` when mounted and whenever `deps` change; answers that arrive after unmount are dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    loadRef.current().then(
      (data) => live && setState({ data, error: undefined, loading: false }),
      (error: unknown) => live && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [generation, ...deps]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { ...state, reload };
}

/** How often a run in progress is read again. */
export const runPollMs = 1500;

/**
 * Follows a run until it reaches a final status, reading `GET /v1/runs/{id}` every
 * {@link runPollMs}; `onFinal` is called once with the final run.
 */
export function useRunWatch(runId: string | undefined, onFinal?: (run: Run) => void): { run: Run | undefined; error: unknown } {
  const [run, setRun] = useState<Run | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const onFinalRef = useRef(onFinal);
  onFinalRef.current = onFinal;
  useEffect(() => {
    if (runId === undefined) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const current = await api.run(runId);
        if (!live) return;
        setRun(current);
        setError(undefined);
        if (finalRunStatuses.has(current.status)) {
          onFinalRef.current?.(current);
          return;
        }
      } catch (e) {
        if (!live) return;
        setError(e);
      }
      timer = setTimeout(() => void poll(), runPollMs);
    };
    void poll();
    return () => {
      live = false;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [runId]);
  return { run, error };
}
