import { useEffect, useState } from 'react';
import { api, consoleBase } from '../api.ts';

/** Shown without a session: "Sign in" through the identity provider, or how to get a sign-in link. */
export function SignedOutPage({ reason }: { reason?: string }) {
  const [oidc, setOidc] = useState<boolean | undefined>(undefined);
  useEffect(() => {
    document.title = 'Sign in · dirsync';
    api.authConfig().then(
      (config) => setOidc(config.oidc),
      () => setOidc(true),
    );
  }, []);
  const here = window.location.pathname.startsWith(`${consoleBase}/`) ? `${window.location.pathname}${window.location.search}` : `${consoleBase}/`;
  const loginUrl = `${consoleBase}/auth/login?returnTo=${encodeURIComponent(here)}`;
  return (
    <main id="main" className="centered signed-out">
      <h1>dirsync console</h1>
      {reason === undefined ? null : <p role="status">{reason}</p>}
      <p>Sign in to manage directory synchronization.</p>
      {oidc === false ? (
        <p>
          Sign-in with an identity provider is not configured here. Ask an operator for a sign-in link (<code>dirsync console login --account &lt;name&gt;</code>).
        </p>
      ) : (
        <a className="button" href={loginUrl}>
          Sign in
        </a>
      )}
    </main>
  );
}
