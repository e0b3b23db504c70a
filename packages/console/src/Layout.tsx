import { useState } from 'react';
import { Link, NavLink, Outlet, useNavigate } from 'react-router';
import { api } from './api.ts';
import { messageOf } from './problem.ts';
import { useConsole } from './session.tsx';

/** Header (home link, navigation, account, Actions needed, Sign out) around every signed-in page. */
export function Layout({ onSwitchAccount, onSignedOut }: { onSwitchAccount: (id: string) => void; onSignedOut: () => void }) {
  const { session, account, actions } = useConsole();
  const navigate = useNavigate();
  const [signOutError, setSignOutError] = useState<string | undefined>(undefined);
  const count = actions?.length;

  const signOut = async () => {
    try {
      await api.logout();
      onSignedOut();
    } catch (error) {
      setSignOutError(messageOf(error));
    }
  };

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <div className="header-row">
          <Link to="/" className="brand">
            dirsync
          </Link>
          <nav aria-label="Main">
            <ul>
              <li>
                <NavLink to="/" end>
                  Directory Synchronization
                </NavLink>
              </li>
              <li>
                <NavLink to="/connectors">Connectors</NavLink>
              </li>
            </ul>
          </nav>
        </div>
        <div className="header-row header-tools">
          {session.accounts.length > 1 ? (
            <span className="account-switcher">
              <label htmlFor="account-switcher">Account</label>
              <select
                id="account-switcher"
                value={account.id}
                onChange={(e) => {
                  onSwitchAccount(e.target.value);
                  navigate('/');
                }}
              >
                {session.accounts.map((a) => (
                  <option key={a.id} value={a.id}>
                    {a.name} ({a.role})
                  </option>
                ))}
              </select>
            </span>
          ) : (
            <span className="account-name">
              Account <strong>{account.name}</strong> ({account.role})
            </span>
          )}
          <button type="button" className={`actions-button${count !== undefined && count > 0 ? ' has-actions' : ''}`} onClick={() => navigate('/actions')}>
            Actions needed{count === undefined ? '' : ` (${count})`}
          </button>
          <span className="user-name" title={session.user.email ?? undefined}>
            {session.user.name}
          </span>
          <button type="button" className="secondary" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
        {signOutError === undefined ? null : (
          <p role="alert" className="message message-error">
            Sign out failed: {signOutError}
          </p>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
