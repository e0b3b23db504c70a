import { useCallback, useEffect, useMemo, useState } from 'react';
import { BrowserRouter, Route, Routes } from 'react-router';
import { api, configureApi, consoleBase, type Session } from './api.ts';
import { Layout } from './Layout.tsx';
import { ApiError, messageOf } from './problem.ts';
import { capabilities, ConsoleContext, type ConsoleState } from './session.tsx';
import type { Action } from './types.ts';
import { ActionsPage } from './pages/ActionsPage.tsx';
import { ConnectorsPage } from './pages/ConnectorsPage.tsx';
import { DirectorySyncPage } from './pages/DirectorySyncPage.tsx';
import { IntegrationPage } from './pages/IntegrationPage.tsx';
import { NewIntegrationPage } from './pages/NewIntegrationPage.tsx';
import { NotFoundPage } from './pages/NotFoundPage.tsx';
import { RunPage } from './pages/RunPage.tsx';
import { SignedOutPage } from './pages/SignedOutPage.tsx';

/** How often the header's Actions needed count is read again while a page stays open. */
const actionsPollMs = 30_000;

const accountStorageKey = 'dirsync.console.account';

type Shell = { state: 'loading' } | { state: 'signed-out'; reason?: string } | { state: 'error'; message: string } | { state: 'signed-in'; session: Session };

function chooseAccount(session: Session): Session['accounts'][number] | undefined {
  let stored: string | null = null;
  try {
    stored = localStorage.getItem(accountStorageKey);
  } catch {
    stored = null;
  }
  return session.accounts.find((a) => a.id === stored) ?? session.accounts[0];
}

/** The console: the signed-out page, or the signed-in shell with its pages. */
export function App() {
  const [shell, setShell] = useState<Shell>({ state: 'loading' });

  useEffect(() => {
    configureApi({ onUnauthenticated: () => setShell({ state: 'signed-out', reason: 'Your session has ended. Sign in again.' }) });
    api.session().then(
      (session) => setShell({ state: 'signed-in', session }),
      (error: unknown) => {
        if (error instanceof ApiError && error.status === 401) setShell({ state: 'signed-out' });
        else setShell({ state: 'error', message: messageOf(error) });
      },
    );
  }, []);

  if (shell.state === 'loading') {
    return (
      <main id="main" className="centered">
        <p role="status">Loading the console…</p>
      </main>
    );
  }
  if (shell.state === 'error') {
    return (
      <main id="main" className="centered">
        <h1>dirsync console</h1>
        <p role="alert">The console cannot start: {shell.message}</p>
        <button type="button" onClick={() => window.location.reload()}>
          Try again
        </button>
      </main>
    );
  }
  if (shell.state === 'signed-out') return <SignedOutPage {...(shell.reason === undefined ? {} : { reason: shell.reason })} />;
  return <SignedIn session={shell.session} onSignedOut={() => setShell({ state: 'signed-out', reason: 'You have signed out.' })} />;
}

function SignedIn({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
  const [accountId, setAccountId] = useState<string | undefined>(() => chooseAccount(session)?.id);
  const account = session.accounts.find((a) => a.id === accountId);
  const [actions, setActions] = useState<readonly Action[] | undefined>(undefined);
  const [actionsGeneration, setActionsGeneration] = useState(0);

  // Set before any page's request: every request acts on the chosen account.
  configureApi({ accountId, csrfToken: session.csrfToken });

  const refreshActions = useCallback(() => setActionsGeneration((g) => g + 1), []);

  useEffect(() => {
    if (account === undefined) return;
    let live = true;
    const read = () =>
      api.actions().then(
        (answer) => live && setActions(answer.items),
        () => undefined,
      );
    void read();
    const timer = setInterval(() => void read(), actionsPollMs);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [account, actionsGeneration]);

  const switchAccount = (id: string) => {
    try {
      localStorage.setItem(accountStorageKey, id);
    } catch {
      // Private windows may refuse storage; the choice then lasts for this page only.
    }
    setActions(undefined);
    setAccountId(id);
  };

  const state = useMemo<ConsoleState | undefined>(
    () => (account === undefined ? undefined : { session, account, role: account.role, can: capabilities(account.role), actions, refreshActions }),
    [session, account, actions, refreshActions],
  );

  if (state === undefined) {
    return (
      <main id="main" className="centered">
        <h1>No account</h1>
        <p>Your identity has no dirsync account. Ask an administrator for a role.</p>
      </main>
    );
  }
  return (
    <ConsoleContext.Provider value={state}>
      <BrowserRouter basename={consoleBase}>
        <Routes>
          <Route element={<Layout onSwitchAccount={switchAccount} onSignedOut={onSignedOut} />}>
            <Route index element={<DirectorySyncPage key={state.account.id} />} />
            <Route path="integrations/new" element={<NewIntegrationPage key={state.account.id} />} />
            <Route path="integrations/:id" element={<IntegrationPage key={state.account.id} />} />
            <Route path="runs/:id" element={<RunPage key={state.account.id} />} />
            <Route path="connectors" element={<ConnectorsPage key={state.account.id} />} />
            <Route path="actions" element={<ActionsPage key={state.account.id} />} />
            <Route path="*" element={<NotFoundPage />} />
          </Route>
        </Routes>
      </BrowserRouter>
    </ConsoleContext.Provider>
  );
}
