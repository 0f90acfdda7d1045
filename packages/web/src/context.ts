import { createContext, useContext } from 'react';
import type { Me } from './api.ts';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

export interface AppState {
  /** Who is signed in, with their projects and roles (`me.auth === 'off'`: no sign-in, one admin). */
  me: Me;
  /** Asks the server again (after a change of one's own role or projects). */
  refreshMe: () => void;
  project: string;
  setProject: (name: string) => void;
  /** The series selected on the Datasets page (UIDs), for workflows and datasets. */
  selection: Set<string>;
  setSelection: (s: Set<string>) => void;
  /** Shows an error (or a note) in the corner until dismissed; every API error ends here or on its page. */
  report: (err: unknown) => void;
  notify: (text: string) => void;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const s = useContext(AppContext);
  if (!s) throw new Error('useApp outside the app');
  return s;
}
