import { createContext, useContext } from 'react';
import { roleAllows, type Role, type Session } from './api.ts';
import type { Action } from './types.ts';

/** One of the signed-in user's accounts. */
export type Account = Session['accounts'][number];

/** What every page knows: who is signed in, on which account, with which role. */
export interface ConsoleState {
  readonly session: Session;
  readonly account: Account;
  readonly role: Role;
  /** Whether the role may use routes needing `scope` (the API decides in the end). */
  readonly can: (scope: 'read' | 'sync' | 'admin') => boolean;
  /** The account's actions needed, once read. */
  readonly actions: readonly Action[] | undefined;
  /** Reads the actions again (after anything that may change them). */
  readonly refreshActions: () => void;
}

/** The console's state, given by the signed-in shell. */
export const ConsoleContext = createContext<ConsoleState | null>(null);

/** The console's state; only pages inside the signed-in shell use it. */
export function useConsole(): ConsoleState {
  const state = useContext(ConsoleContext);
  if (state === null) throw new Error('useConsole outside the signed-in shell');
  return state;
}

/** Builds the `can` of a role. */
export function capabilities(role: Role): ConsoleState['can'] {
  return (scope) => roleAllows(role, scope);
}
